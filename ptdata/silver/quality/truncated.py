"""truncated: the final reply has an unclosed ``` fence or stops mid-sentence (`ending`)."""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

_FENCE_LINE = re.compile(r"^[ \t]*```", re.MULTILINE)
# sentence ends in Latin, CJK, Arabic and Devanagari scripts, and the closers that may follow one
_TERMINAL = frozenset(".!?…。！？．؟۔।\"'”’»›)]}>*_`~|")
# a reply that stops on one of these stopped in the middle of something
_CONNECTORS = frozenset(",:([{-–—/\\&+=、，：；")
_URL_AT_END = re.compile(r"(?:https?://|www\.)\S+$")
_LIST_ITEM = re.compile(r"^\s*(?:[-*+•]|\d{1,3}[.)]|[a-zA-Z][.)])\s")
_RULE_LINE = re.compile(r"^\s*[-=*_]{3,}\s*$")
_CODE_LINE = re.compile(
    r"^(?: {4}|\t)|[;{}]\s*$|=>|==|!=|\)\s*$"
    r"|^\s*(?:def|class|return|import|from|if|elif|else|for|while|try|except|with|const|let|var|function|public"
    r"|private|SELECT|#include|print|echo|cd|pip|npm|git)\b"
)
# sentence-internal words: a reply ending on one was cut (compared case-sensitively, so "Vitamin A" ends well)
_FUNCTION_WORDS = frozenset(
    # English
    "a an the and or but nor because although whose my your our their its of to with from into onto than"
    # German, French, Spanish, Italian, Portuguese, Dutch
    " der die das und oder aber mit von zu den dem des ein eine einen einem le la les un une et ou du avec pour"
    " el los las una y con para del por il lo gli di per os um uma com het een en van".split()
)
_SENTENCE_ENDS = ".!?。！？"
_SENTENCE_END_INSIDE = re.compile(rf"[{_SENTENCE_ENDS}][\"'”’)\]]*\s+")


def _is_emoji_or_symbol(ch: str) -> bool:
    return unicodedata.category(ch) in ("So", "Sk") or ord(ch) >= 0x1F000


def _last_word(t: str) -> str:
    """The run of word characters (\\w: alphanumeric or "_") that ends `t`, or its last line ("$" also matches
    before a final newline), read from the end: what re.search(r"\\w+$", t) finds by trying every position."""
    end = len(t) - 1 if t.endswith("\n") else len(t)
    i = end
    while i and (t[i - 1].isalnum() or t[i - 1] == "_"):
        i -= 1
    return t[i:end]


def ending(text: str) -> Literal["ok", "unfinished", "cut"]:
    """How the final reply ends: "cut" fails the truncated rule, "unfinished" only lowers the score.

    cut: an odd number of ``` fence lines; a last character that continues something (comma, colon, open
    bracket, dash, operator); a last word that cannot end a sentence ("the", "and", "with", ...); or a plain
    word ending a line that already holds a finished sentence, where the unfinished one has 3+ words.
    Never cut: a closed fence, a URL, a code line, a table row, a heading, a rule, terminal punctuation, an
    emoji. A list item or a short line without punctuation is only "unfinished".
    """
    # the substring tests in front of the patterns are exact (a fence line holds ```, a URL :// or www.) and
    # cost a memchr where a pattern tries every position of the reply
    if "```" in text and len(_FENCE_LINE.findall(text)) % 2:
        return "cut"
    t = text.rstrip().rstrip("\ufe0f\u200d")  # emoji presentation selector and joiner trail some emoji
    if not t or t.endswith("```") or (("://" in t or "www." in t) and _URL_AT_END.search(t)):
        return "ok"
    last_line = t[t.rfind("\n") + 1 :]
    if _CODE_LINE.search(last_line) or _RULE_LINE.match(last_line) or last_line.lstrip().startswith(("|", "#")):
        return "ok"
    last = t[-1]
    if last in _TERMINAL or _is_emoji_or_symbol(last):
        return "ok"
    if last in _CONNECTORS:
        return "cut"
    if _last_word(t) in _FUNCTION_WORDS:
        return "cut"
    if last.isdigit():
        return "unfinished"
    if _LIST_ITEM.match(last_line):
        # items may go without a full stop ("1. Open the app"), unless the author ended the previous one with
        # one: then a long last item without it was cut
        previous = t[: t.rfind("\n")].rstrip().rsplit("\n", 1)[-1] if "\n" in t else ""
        if _LIST_ITEM.match(previous) and previous[-1] in _SENTENCE_ENDS and len(last_line.split()) >= 5:
            return "cut"
        return "unfinished"
    parts = _SENTENCE_END_INSIDE.split(last_line)
    if len(parts) > 1 and len(parts[-1].split()) >= 3:
        return "cut"
    return "unfinished"
