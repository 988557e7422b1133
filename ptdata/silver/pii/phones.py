"""Phone numbers: found and validated by phonenumbers, with NANP grouping rules and a cue for bare runs."""

from __future__ import annotations

import re
from collections.abc import Iterator

import phonenumbers

from ptdata.silver.pii.allowlist import Allowlist
from ptdata.silver.pii.types import Span

# A run of digits with short separators, at least 7 digits after a "+" and 8 otherwise: the only text worth
# handing to the (slow) phone matcher (a "(" before it is inside the matcher's window), and where card numbers
# are looked for. One scan serves both detectors. Every regex here starts with a plain character class, not a
# lookbehind, so that the regex engine can skip ahead to the candidates (five times faster on prose).
NUMBER_RUN = re.compile(r"[+\d](?:[().\-/ \t]{0,3}\d){6,}")
_DIGIT_GROUPS = re.compile(r"\d+")
_PHONE_EXTENSION = re.compile(r"(?i)\s*(?:ext\.?|x|#|extension)\s*\d+$")
_PHONE_CUE = re.compile(  # "(?<!<)": the <PHONE> placeholder of an earlier round is not a cue
    r"(?i)(?<!<)\b(?:call(?:ed|ing)?|phone|tel|telephone|mobile|cell|fax|sms|text(?:ed)?|whats ?app|signal|contact|"
    r"reach|dial|ph|mob|ring)\b"
)
_WINDOW_BEFORE = 8  # the matcher looks one or two characters back (a letter or "+" glued to the number)
_WINDOW_AFTER = 24  # and forward, for extensions ("ext. 1234") and timestamp suffixes (":30")
_NANP_GROUPED = ((3, 3, 4), (1, 3, 3, 4))
_NANP_BARE = ((10,), (11,))
# a candidate run holds a 3-3-4 grouped number somewhere (a 1-3-3-4 one contains one too)
_NANP_IN_RUN = re.compile(r"(?<!\d)\d{3}\D{1,3}\d{3}\D{1,3}\d{4}(?!\d)")


def _has_cue(text: str, start: int) -> bool:
    return _PHONE_CUE.search(text, max(0, start - 40), start) is not None


def find_phones(text: str, runs: list[re.Match[str]], allow: Allowlist, region: str) -> Iterator[Span]:
    nanp = phonenumbers.country_code_for_region(region) == 1
    windows: list[list[int]] = []
    for m in runs:
        run = m.group()
        if run.isdigit():  # a bare run (ids, timestamps): a phone only after a cue word, checked before the matcher
            worth = (not nanp or len(run) in (10, 11)) and _has_cue(text, m.start())
        elif run.startswith("+"):
            worth = True  # the run regex already asks for seven digits
        else:
            worth = not nanp or _NANP_IN_RUN.search(run) is not None
        if not worth:
            continue
        lo, hi = max(0, m.start() - _WINDOW_BEFORE), min(len(text), m.end() + _WINDOW_AFTER)
        if windows and lo <= windows[-1][1]:
            windows[-1][1] = hi
        else:
            windows.append([lo, hi])
    for lo, hi in windows:
        for match in phonenumbers.PhoneNumberMatcher(text[lo:hi], region, leniency=phonenumbers.Leniency.VALID):
            start, end, raw = lo + match.start, lo + match.end, match.raw_string
            national = _PHONE_EXTENSION.sub("", raw)
            groups = [len(g) for g in _DIGIT_GROUPS.findall(national)]
            if not raw.startswith("+"):
                shape = tuple(groups)
                if nanp and shape not in _NANP_GROUPED and shape not in _NANP_BARE:
                    continue
                if len(groups) == 1 and not _has_cue(text, start):
                    continue
            number = match.number
            if allow.fictional_phones and number.country_code == 1 and number.national_number % 10**7 // 100 == 55501:
                continue
            yield Span(start, end, "PHONE", raw)
