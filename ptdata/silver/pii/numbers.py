"""Structured numbers: card numbers (Luhn and brand), IBANs (mod 97) and US SSNs."""

from __future__ import annotations

import re
from collections.abc import Iterator

from ptdata.silver.pii.types import Span

# 13-19 digits with optional single spaces or dashes, not part of a longer number or a decimal
_CARD_SEPARATOR = re.compile(r"[ -]")
_CARD_RE = re.compile(r"\d(?<![\w.,]\d)(?<!\d[ -]\d)(?:[ -]?\d){12,18}(?![ -]?\d)(?![.,]\d)(?!\w)")


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _card_brand_ok(d: str) -> bool:
    """A known issuer (IIN) prefix with a length that issuer uses; unknown prefixes are not cards."""
    n, p2, p3, p4, p6 = len(d), int(d[:2]), int(d[:3]), int(d[:4]), int(d[:6])
    if d[0] == "4":
        return n in (13, 16, 19)  # Visa
    if 51 <= p2 <= 55 or 2221 <= p4 <= 2720:
        return n == 16  # Mastercard
    if p2 in (34, 37):
        return n == 15  # American Express
    if p4 == 6011 or 644 <= p3 <= 649 or p2 == 65 or 622126 <= p6 <= 622925:
        return 16 <= n <= 19  # Discover
    if 3528 <= p4 <= 3589:
        return 16 <= n <= 19  # JCB
    if 300 <= p3 <= 305 or p4 == 3095 or p2 in (36, 38, 39):
        return 14 <= n <= 19  # Diners Club
    if p2 in (62, 81):
        return 16 <= n <= 19  # UnionPay
    if 2200 <= p4 <= 2204:
        return 16 <= n <= 19  # Mir
    if p4 in (5018, 5020, 5038, 5893, 6304, 6759, 6761, 6762, 6763):
        return 13 <= n <= 19  # Maestro
    return False


def find_cards(text: str, runs: list[re.Match[str]]) -> Iterator[Span]:
    """Cards inside the number runs (a card is one: 13+ digits with single spaces or dashes)."""
    long_runs = (r for r in runs if r.end() - r.start() >= 13)
    for run in long_runs:
        # two characters past the run let the lookaheads see a ",5" decimal tail the run stops before
        for m in _CARD_RE.finditer(text, run.start(), min(len(text), run.end() + 2)):
            groups = [len(g) for g in _CARD_SEPARATOR.split(m.group())]
            # printed cards group by four (Amex and Diners 4-6-5 / 4-6-4); other layouts are ids such as UUIDs
            if len(groups) > 1 and groups[:-1] != [4] * (len(groups) - 1) and groups[:2] != [4, 6]:
                continue
            digits = m.group().replace(" ", "").replace("-", "")
            if _card_brand_ok(digits) and _luhn_ok(digits):
                yield Span(m.start(), m.end(), "CREDIT_CARD", m.group())


# IBAN lengths per country (SWIFT IBAN registry)
_IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BI": 27, "BR": 29,
    "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28, "EE": 20, "EG": 29,
    "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28,
    "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28,
    "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20,
    "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29, "PT": 25,
    "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27,
    "SO": 23, "ST": 25, "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip
_IBAN_START = re.compile(r"([A-Z](?<![A-Za-z0-9][A-Z])[A-Z])\d{2}(?=[ ]?[A-Z0-9])")


def _iban_checksum_ok(iban: str) -> bool:
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def find_ibans(text: str) -> Iterator[Span]:
    for m in _IBAN_START.finditer(text):
        length = _IBAN_LENGTHS.get(m.group(1))
        if length is None:
            continue
        # walk exactly the country's length: printed IBANs group by four with single spaces, electronic ones
        # have none, and stopping at the length keeps a following uppercase word out of the span
        chars, pos = [m.group()], m.end()
        need = length - 4
        while need and pos < len(text):
            ch = text[pos]
            if ch == " " and pos + 1 < len(text) and text[pos + 1] != " ":
                pos += 1
                continue
            if not ("A" <= ch <= "Z" or "0" <= ch <= "9"):
                break
            chars.append(ch)
            need -= 1
            pos += 1
        if need or (pos < len(text) and text[pos].isalnum()):
            continue
        if _iban_checksum_ok("".join(chars)):
            yield Span(m.start(), pos, "IBAN", text[m.start() : pos])


# anchored on the first dash (a literal the engine jumps to) with the area digits checked behind it
_SSN_RE = re.compile(r"-(?<=(?<![\w-])\d{3}-)\d\d-\d{4}(?![\w-])")


def find_ssns(text: str) -> Iterator[Span]:
    for m in _SSN_RE.finditer(text):
        start = m.start() - 3
        area, group, serial = text[start : m.end()].split("-")
        # the SSA never issues area 000, 666 or 900-999, group 00, or serial 0000
        if area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000":
            yield Span(start, m.end(), "US_SSN", text[start : m.end()])
