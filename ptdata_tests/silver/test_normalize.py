"""normalize_text repairs text without changing what it says; dedup_key_text folds it for comparison only."""

from __future__ import annotations

import copy

import pytest

from ptdata.silver.normalize import dedup_key_text, normalize_record, normalize_text

PYTHON = (
    "class Stack:\n"
    '    """A LIFO stack."""\n'
    "\n"
    "    def __init__(self) -> None:\n"
    "        self.items: list[int] = []\n"
    "\n"
    "    def pop(self) -> int:\n"
    "        if not self.items:\n"
    '            raise IndexError("pop from an empty stack")\n'
    "        return self.items.pop()\n"
)
MAKEFILE = "build:\n\tgo build ./...\n\ttest -f bin/app  &&  echo ok\n"
YAML = "a:\n  b:\n    - c: 1\n      d: 'x  y'\n"


@pytest.mark.parametrize(
    ("dirty", "clean"),
    [
        ("cafÃ©", "café"),
        ("donâ€™t", "don’t"),  # the repaired apostrophe stays curly: uncurl_quotes is off
        ("Ã©tÃ© Ã  Paris", "été à Paris"),
        ("SÃ£o Paulo, ZÃ¼rich, KrakÃ³w", "São Paulo, Zürich, Kraków"),
        ("â€œquotedâ€\x9d", "“quoted”"),
        ("smile \ud83d\ude00", "smile 😀"),  # UTF-16 surrogate pair from a lenient JSON decoder
    ],
)
def test_mojibake_is_repaired(dirty: str, clean: str) -> None:
    assert normalize_text(dirty) == clean


@pytest.mark.parametrize(
    "text",
    [
        "He said “don’t” — twice – and left…",  # curly quotes and dashes are content
        "ﬁnancial ﬂows",  # ligatures are folded only in dedup keys
        "你好，世界！请问？",  # fullwidth CJK punctuation is correct in Chinese
        "Ｆｕｌｌｗｉｄｔｈ and x² and ½",  # compatibility characters stay (NFC, not NFKC)
        "In HTML write &amp; for & and &lt; for <",  # entities in a chat about HTML are content
        "Café naïve résumé CAPS stay CAPS!?",
        "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f flag of Scotland",  # tag characters kept
        "👩‍💻 ZWJ sequence, ❤️ with VS16",
        "x = a\t+ b  # tabs and double spaces inside a line",
    ],
)
def test_correct_text_is_unchanged(text: str) -> None:
    assert normalize_text(text) == text


@pytest.mark.parametrize("code", [PYTHON.rstrip("\n"), MAKEFILE.rstrip("\n"), YAML.rstrip("\n")])
def test_code_indentation_is_kept_byte_for_byte(code: str) -> None:
    assert normalize_text(code) == code
    assert normalize_text(code.replace("\n", "\r\n")) == code


def test_trailing_whitespace_goes_but_leading_indentation_stays() -> None:
    dirty = "\n\n    indented first line   \n\tsecond\t \n  \u00a0\n\n  third\u3000\n\n"
    assert normalize_text(dirty) == "    indented first line\n\tsecond\n\n\n  third"


@pytest.mark.parametrize(
    ("dirty", "clean"),
    [
        ("a\r\nb\r\nc", "a\nb\nc"),
        ("old\rmac\rline", "old\nmac\nline"),
        ("mixed\r\nends\rand\nlf", "mixed\nends\nand\nlf"),
        ("line\u2028separator\u2029paragraph", "line\nseparator\nparagraph"),
        ("page one\x0cpage two", "page one\npage two"),  # a form feed separates, it does not glue
    ],
)
def test_line_endings_become_lf(dirty: str, clean: str) -> None:
    assert normalize_text(dirty) == clean


@pytest.mark.parametrize(
    ("dirty", "clean"),
    [
        ("nul\x00 bell\x07 backspace\x08 del\x7f", "nul bell backspace del"),
        ("keeps\ttabs\nand newlines", "keeps\ttabs\nand newlines"),
        ("\x1b[31mERROR\x1b[0m health check failed\x07", "ERROR health check failed"),
        ("\x1b]0;window title\x07prompt$ ls", "prompt$ ls"),
        ("\ufeffBOM at the start and\ufeff inside", "BOM at the start and inside"),
        # C1 controls are Windows-1252 text read as Latin-1 (ftfy's fix_c1_controls); one with no
        # Windows-1252 meaning is dropped
        ("it\x92s 5\x80", "it’s 5€"),
        ("C1\x81 control", "C1 control"),
    ],
)
def test_control_characters_are_removed(dirty: str, clean: str) -> None:
    assert normalize_text(dirty) == clean


def test_nfc_composes_and_never_lowercases() -> None:
    decomposed = "Cafe\u0301 NAI\u0308VE A\u030a"
    assert normalize_text(decomposed) == "Café NAÏVE Å"
    assert normalize_text("Hello, World! Don't STOP.") == "Hello, World! Don't STOP."


@pytest.mark.parametrize(
    "text", ["cafÃ©\r\n\x1b[1mbold\x1b[0m  \n", PYTHON, "e\u0301\u2028x\t \n\n", "", "   ", "plain ascii"]
)
def test_idempotent(text: str) -> None:
    once = normalize_text(text)
    assert normalize_text(once) == once


def test_blank_text_becomes_empty() -> None:
    assert normalize_text("") == ""
    assert normalize_text(" \n\t\r\n ") == ""


def test_normalize_record_sft_touches_only_message_content() -> None:
    record = {
        "record_id": "r1",
        "messages": [
            {"role": "user", "content": "cafÃ©?\r\n"},
            {"role": "assistant", "content": "```python\ndef f():\n    return 1   \n```\r\n"},
        ],
        "source": "chat",
    }
    before = copy.deepcopy(record)
    out = normalize_record("sft", record)
    assert record == before  # the input is not mutated
    assert out["messages"] == [
        {"role": "user", "content": "café?"},
        {"role": "assistant", "content": "```python\ndef f():\n    return 1\n```"},
    ]
    assert out["record_id"] == "r1" and out["source"] == "chat"


def test_normalize_record_preference_rlvr_text() -> None:
    pref = normalize_record(
        "preference",
        {
            "prompt": [{"role": "user", "content": "Q\r\n"}],
            "chosen": [{"role": "assistant", "content": "donâ€™t  "}],
            "rejected": [{"role": "assistant", "content": "no\x00"}],
        },
    )
    assert [m["content"] for k in ("prompt", "chosen", "rejected") for m in pref[k]] == ["Q", "don’t", "no"]

    args = '{"tests": ["assert f(1) == 2   "]}'
    rlvr = normalize_record(
        "rlvr",
        {
            "prompt": [{"role": "user", "content": "2+2?\r\n"}],
            "answer": " 4 \r\n",
            "verifier": "math",
            "verifier_args": args,
        },
    )
    assert rlvr["prompt"][0]["content"] == "2+2?"
    assert rlvr["answer"] == " 4"  # leading whitespace is indentation as far as normalization knows
    assert rlvr["verifier_args"] == args  # JSON compared byte for byte by verifiers: left alone

    assert normalize_record("text", {"text": "Ã©tÃ©\r\n"})["text"] == "été"
    assert normalize_record("text", {"text": None})["text"] is None


def test_normalize_record_rejects_an_unknown_regime() -> None:
    with pytest.raises(ValueError, match="unknown regime"):
        normalize_record("chat", {})


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Hello,   World!", "hello world"),
        ("STRASSE", "Straße"),  # casefold, not lower
        ("ﬁnance", "finance"),  # NFKC
        ("Ｆｕｌｌ ｗｉｄｔｈ", "full width"),
        ("“Don’t” — stop.", "don t stop"),
        ("line\none\r\n\ttwo", "line one two"),
        ("Café", "Cafe\u0301"),
    ],
)
def test_dedup_keys_fold_case_width_punctuation_and_space(a: str, b: str) -> None:
    assert dedup_key_text(a) == dedup_key_text(b)


def test_dedup_key_separates_words_at_punctuation_and_keeps_symbols() -> None:
    assert dedup_key_text("end.Start") == "end start"
    assert dedup_key_text("x^2 + 1 = $5") == "x^2 + 1 = $5"  # symbols (Sm, Sc, Sk) are not punctuation
    assert dedup_key_text("¿Qué? ¡Sí!") == "qué sí"


def _normalize_every_pass(s: str) -> str:
    """normalize_text with every regex pass run unconditionally: what the substring tests in front of the
    line-break and trailing-whitespace passes must not change."""
    from ptdata.silver import normalize as n

    ascii_only = s.isascii()
    if not ascii_only and (n._SURROGATES.search(s) or (n._MOJIBAKE_CHARS.search(s) and n.is_bad(s))):
        s = n.ftfy.fix_text(s, n._FTFY_CONFIG)
    s = n._ANSI.sub("", s)
    s = n._CONTROL.sub("", n._LINE_BREAKS.sub("\n", s))
    if not ascii_only:
        s = n.unicodedata.normalize("NFC", s)
    return n._TRAILING_WS.sub("", s).strip("\n")


def test_the_fast_paths_change_nothing_the_passes_would_not() -> None:
    import random

    # every character class the passes treat differently, ASCII and not, and the sequences that form them
    alphabet = [
        "a", "Z", "1", ".", " ", "  ", "\t", "\n", "\n\n", "\r", "\r\n", "\x0b", "\x0c", "\x00", "\x08", "\x1c",
        "\x1f", "\x7f", "\x1b[31m", "\x1b", "é", "e\u0301", "\u2028", "\u2029", "\xa0", "\u3000", "\x85", "\ufeff",
        "中", "😀",
    ]  # fmt: skip
    rng = random.Random(12)
    for _ in range(20_000):
        text = "".join(rng.choices(alphabet, k=rng.randint(0, 12)))
        assert normalize_text(text) == _normalize_every_pass(text), repr(text)
