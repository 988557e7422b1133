"""Text normalization of canonical records, and the folded keys that dedup and decontamination compare.

`normalize_text` repairs a string without changing what it says: mojibake, Unicode composition, line
endings, control characters and trailing whitespace. It never lowercases, never removes punctuation and
never touches leading whitespace, so code keeps its indentation byte for byte. Folding case, compatibility
forms and punctuation is lossy, so it lives only in `dedup_key_text`, whose output is a comparison key and is
never stored as training text.

ftfy is the slow part, so it runs only on text that can need it: text that ftfy's own mojibake detector
(`ftfy.badness.is_bad`) flags, or that holds UTF-16 surrogates. ftfy's `fix_encoding` starts with that very
test and leaves text that passes it unchanged, so the gate loses no repair. `is_bad` itself runs at only
~3.5M chars/s, so it is skipped for text without a single character that a byte 0x80-0xFF decodes to in one
of the single-byte encodings ftfy repairs from (all mojibake is made of those): ASCII, emoji and most
Chinese and Japanese text never pay for it. Everything else is a handful of C-speed scans. Measured on the
demo's message texts: ~20M chars/s for ASCII and CJK text, ~2-3M chars/s for accented Latin text (the is_bad
scan), ~1M chars/s for mojibake (the repair); ftfy.fix_text with its defaults does 1.3-2.5M chars/s on all.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import Any

import ftfy
import ftfy.bad_codecs  # noqa: F401 - registers the "sloppy-windows-125x" codecs named in CHARMAP_ENCODINGS
import numpy as np
from ftfy.badness import is_bad
from ftfy.chardata import CHARMAP_ENCODINGS

from ptdata.core.regimes import map_text_fields

# The ftfy options, chosen one by one. On: the mojibake repairs (fix_encoding and the steps under it,
# restore_byte_a0, replace_lossy_sequences, decode_inconsistent_utf8, fix_c1_controls) and fix_surrogates.
# Off, because they rewrite correct text:
#   unescape_html: "&amp;" in a chat about HTML is content; markup is resolved by the web extractor, not here.
#   uncurl_quotes: "don’t" is what the author wrote; quote folding belongs to the dedup key.
#   fix_latin_ligatures: "ﬁ" → "fi" is an NFKC-style fold; the dedup key (NFKC) already treats them as equal.
#   fix_character_width: would turn the fullwidth punctuation of Chinese and Japanese text ("，", "？") into
#       ASCII, which is wrong for those languages.
# Off, because normalize_text does them itself on every string, ftfy-gated or not, so both paths agree:
#   remove_terminal_escapes, fix_line_breaks, remove_control_chars and normalization (NFC).
# ftfy's remove_control_chars would also delete the Unicode tag characters that spell subdivision flag
# emoji (🏴 + tags for Scotland), which our own control-character set leaves alone.
_FTFY_CONFIG = ftfy.TextFixerConfig(
    unescape_html=False,
    remove_terminal_escapes=False,
    fix_latin_ligatures=False,
    fix_character_width=False,
    uncurl_quotes=False,
    fix_line_breaks=False,
    remove_control_chars=False,
    normalization=None,
    explain=False,
)

_SURROGATES = re.compile("[\ud800-\udfff]")
# Every character that mojibake can be made of: what the bytes 0x80-0xFF decode to in the encodings ftfy
# tries. Text without any of them is left unchanged by ftfy's fix_encoding, whatever is_bad would say.
_MOJIBAKE_CHARS = re.compile(
    "[{}]".format(
        re.escape("".join(sorted({c for enc in CHARMAP_ENCODINGS for c in bytes(range(0x80, 0x100)).decode(enc)})))
    )
)
# ANSI/VT100 escape sequences (colours from pasted terminal output): CSI "ESC [ params final", OSC
# "ESC ] ... BEL|ST" and the two-byte forms. Removed whole, so no "[31m" is left behind.
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
# Vertical tab and form feed separate lines (page breaks in text files, sections in old C and Lisp sources);
# deleting them would glue the words on either side together, so they become line breaks. U+2028 and U+2029
# are Unicode's own line and paragraph separators.
_BREAK_CHARS = "\r\x0b\x0c\u2028\u2029"
_LINE_BREAKS = re.compile(f"\r\n?|[{_BREAK_CHARS}]")
# C0 controls except tab and newline (CR, VT and FF are gone by now), DEL, C1 controls left over after ftfy
# (those that were not Windows-1252 mojibake), and the byte-order mark that file concatenation leaves inside
# text.
_CONTROL = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f\ufeff]")
# Whitespace other than the newline at the end of a line: spaces, tabs, NBSP, ideographic space.
_TRAILING_WS = re.compile(r"[^\S\n]+$", re.MULTILINE)


def normalize_text(s: str) -> str:
    """Repair `s` without changing its content: mojibake, NFC, LF line ends, no control characters, no
    trailing whitespace on any line and no blank lines at either end. Leading indentation is kept."""
    ascii_only = s.isascii()
    if not ascii_only and (_SURROGATES.search(s) or (_MOJIBAKE_CHARS.search(s) and is_bad(s))):
        s = ftfy.fix_text(s, _FTFY_CONFIG)
    if "\x1b" in s:
        s = _ANSI.sub("", s)
    # The line-break and trailing-whitespace passes were most of the time this took on text that needs neither
    # (most text): their patterns start with an alternation or a class, so the regex engine tries every position.
    # The substring tests in front of them run at memchr speed and are exact: the line-break pass changes nothing
    # without one of its characters, and in ASCII text whose line breaks and control characters are gone the
    # only whitespace besides "\n" is " " and "\t", so a line ends in whitespace only before a "\n" or at the end.
    if any(map(s.__contains__, _BREAK_CHARS)):
        s = _LINE_BREAKS.sub("\n", s)
    s = _CONTROL.sub("", s)
    if not ascii_only and not unicodedata.is_normalized("NFC", s):
        s = unicodedata.normalize("NFC", s)
    if not ascii_only or " \n" in s or "\t\n" in s or s.endswith((" ", "\t")):
        s = _TRAILING_WS.sub("", s)
    # every line is right-stripped now, so blank lines at the ends are bare "\n"s; the first line's
    # indentation survives because only newlines are stripped
    return s.strip("\n")


def normalize_record(regime: str, record: dict[str, Any]) -> dict[str, Any]:
    """A copy of a canonical record with every text field normalized; other columns are passed through."""
    return map_text_fields(regime, record, normalize_text)


class _PunctuationToSpace(dict[int, str]):
    """A `str.translate` table mapping every Unicode punctuation character (general category P*) to a space
    and every other character to itself.

    Filled lazily per code point: building it for all 1.1M code points up front costs a third of a second at
    import, while real text touches a few hundred distinct characters."""

    def __missing__(self, codepoint: int) -> str:
        char = chr(codepoint)
        value = " " if unicodedata.category(char).startswith("P") else char
        self[codepoint] = value
        return value


_PUNCTUATION = _PunctuationToSpace()


def dedup_key_text(s: str) -> str:
    """The comparison form of `s` for dedup and decontamination keys only, never for stored text: NFKC,
    casefolded, punctuation replaced by spaces, whitespace runs collapsed to one space."""
    if s.isascii():
        s = s.lower()  # casefold is lower for ASCII, and ASCII is already NFKC
    else:
        # casefold can yield text that is not NFKC again ("ǰ" → "ǰ"), hence the second pass
        s = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", s).casefold())
    # a space rather than nothing, so "end.Start" does not become one word
    return " ".join(s.translate(_PUNCTUATION).split())


# Characters per pass of dedup_key_texts: bounds its arrays (4 bytes a character for non-ASCII text).
_KEY_CHUNK = 1 << 22
# The separators of a key text among ASCII characters: what str.split() splits on, and punctuation (category P*);
# as bytes.translate tables: separator → 1 (else 0), and separator → space (else itself); 0x80 is the mark
# between texts in the ASCII pass of _collapse_separators
_ASCII_SEPARATORS = [c for c in range(128) if chr(c).isspace() or _PUNCTUATION[c] == " "]
_IS_SEPARATOR = bytes(int(c in _ASCII_SEPARATORS or c == 0x80) for c in range(256))
_TO_SPACE = bytes(32 if c in _ASCII_SEPARATORS else c for c in range(256))
# the mark between texts in the UTF-32 pass of _collapse_separators: one past the last code point
_MARK = 0x110000


def dedup_key_texts(texts: Sequence[str]) -> list[str]:
    """`dedup_key_text` of every text, the same strings: the case and NFKC folds per text (C-speed str methods),
    then the punctuation and whitespace pass, the slow part of `dedup_key_text` (a Python table lookup per
    character in `translate`), over the code points of many texts at once."""
    folded = [
        s.lower() if s.isascii() else unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", s).casefold())
        for s in texts
    ]
    out = [""] * len(folded)
    for ascii_only in (True, False):
        rows = [i for i, s in enumerate(folded) if s.isascii() == ascii_only]
        lo = 0
        while lo < len(rows):
            hi, chars = lo, 0
            while hi < len(rows) and (hi == lo or chars + len(folded[rows[hi]]) <= _KEY_CHUNK):
                chars += len(folded[rows[hi]])
                hi += 1
            keys = _collapse_separators([folded[i] for i in rows[lo:hi]], ascii_only)
            for i, key in zip(rows[lo:hi], keys, strict=True):
                out[i] = key
            lo = hi
    return out


def _collapse_separators(texts: list[str], ascii_only: bool) -> list[str]:
    """Each text's words (maximal runs of non-separators) joined by one space, from one array of the code points
    of all texts: bytes for ASCII, UTF-32 otherwise, so that an index is a character in both.

    The texts are joined by a marker that no text can hold (byte 0x80 after ASCII, code point 0x110000 in
    UTF-32), a separator that is always kept. Of each run of other separators only the first is kept, as a
    space, and only after a word; so between two markers stands a text's words, one space apart, and perhaps
    one space after the last."""
    sizes = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    marks = np.cumsum(sizes + 1) - 1
    if ascii_only:
        raw = ("\x80".join(texts) + "\x80").encode("latin-1")
        sep = np.frombuffer(raw.translate(_IS_SEPARATOR), dtype=bool)
        codes = np.frombuffer(raw.translate(_TO_SPACE), dtype=np.uint8)
    else:
        codes = np.frombuffer((" ".join(texts) + " ").encode("utf-32-le", "surrogatepass"), dtype="<u4").copy()
        sep = _separators(codes)
        codes[sep] = 32
        codes[marks] = _MARK
    word = ~sep
    keep = word.copy()
    keep[1:] |= word[:-1]
    keep[marks] = True
    kept = codes[keep]
    if ascii_only:
        spans = kept.tobytes().decode("latin-1").split("\x80")[:-1]
    else:
        ends = np.flatnonzero(kept == _MARK)
        kept[ends] = 32
        text = kept.tobytes().decode("utf-32-le", "surrogatepass")
        spans = [
            text[b:e] for b, e in zip((np.concatenate(([-1], ends[:-1])) + 1).tolist(), ends.tolist(), strict=True)
        ]
    return [span[:-1] if span.endswith(" ") else span for span in spans]


def _separators(codes: np.ndarray) -> np.ndarray:
    """Whether each code point separates words in a key text (whitespace or punctuation)."""
    sep = np.zeros(codes.size, dtype=bool)
    low = codes < 128
    sep[low] = np.frombuffer(_IS_SEPARATOR, dtype=bool)[codes[low]]
    high = np.flatnonzero(~low)
    if high.size:
        distinct, inverse = np.unique(codes[high], return_inverse=True)
        flags = np.array([_is_separator(int(c)) for c in distinct], dtype=bool)
        sep[high] = flags[inverse]
    return sep


def _is_separator(codepoint: int) -> bool:
    return _PUNCTUATION[codepoint] == " " or chr(codepoint).isspace()
