"""The batch language ID against py3langid's own classify, text by text: the same labels and probabilities within
float32's rounding (py3langid scores in float32, ptdata in float64); and ptdata's probabilities the same, bit for
bit, with numpy's CPU-dispatched kernels turned off (the quality score rounds 1 - p to 6 decimals, so a changed bit
can change the lake)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zstandard
from py3langid.langid import visit_counts

from ptdata.demo.generate import write_demo_landing
from ptdata.silver import langid
from ptdata.silver.langid import MAX_CHARS, MIN_CONFIDENCE, UNDETERMINED, classify, detect_langs, prose
from ptdata_tests.silver.test_langid import CHAT, CODE

FIXTURES = Path(langid.__file__).parents[1] / "demo" / "fixtures"


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _fixture_texts() -> list[str]:
    # read the files directly: the generator's fixture() records what it reads, and a test checks that record
    texts: list[str] = []
    for path in sorted(FIXTURES.glob("*.json.zst")):
        data = zstandard.ZstdDecompressor().decompressobj().decompress(path.read_bytes())
        texts += _strings(json.loads(data))
    return texts


def _landing_texts(home: Path) -> list[str]:
    """Every string of the demo's landing zone: messages, prompts, replies, notes and web pages."""
    texts: list[str] = []
    for path in sorted((home / "landing").rglob("*")):
        if path.suffix in (".txt", ".html"):
            texts.append(path.read_text(encoding="utf-8"))
            continue
        if path.suffix == ".gz":
            # as much as there is: one planted file is cut short
            raw = zlib.decompressobj(wbits=31).decompress(path.read_bytes())
        elif path.suffix == ".zst":
            raw = zstandard.ZstdDecompressor().decompressobj().decompress(path.read_bytes())
        elif path.suffix in (".json", ".jsonl"):
            raw = path.read_bytes()
        else:
            continue
        if path.name.split(".")[1] == "json":
            texts += _strings(json.loads(raw))
            continue
        for line in raw.decode("utf-8", errors="replace").splitlines():
            try:
                texts += _strings(json.loads(line))
            except ValueError:
                texts.append(line)  # the planted malformed lines are text too
    return texts


def _varied_texts() -> list[str]:
    """Short and long, every script the model knows and some it does not, code, emoji, capitals, decomposed
    accents, control characters, lone surrogates, and random code points."""
    rng = random.Random(12)
    chat = [t for texts in CHAT.values() for t in texts]
    texts = [*chat, *CODE, "", " ", "a", "ok", "42", "!!!", "😀", "😀😀😀 👍🏽", "Yes.", "是的。", "Ja, genau."]
    texts += [t.upper() for t in chat] + [t.replace("é", "e\u0301") for t in chat]
    texts += ["\ud800", "abc\udfffdef", "Hallo \ud83d Welt", "\x00\x01\t\n\x7f", "\ufeffBOM", "\u0130stanbul"]
    texts += ["\n".join(rng.choices(chat, k=n)) for n in (40, 80, 200)]  # well over MAX_CHARS
    for _ in range(700):
        n = rng.choice((1, 2, 5, 20, 100, 400))
        texts.append(
            "".join(chr(rng.choice((rng.randrange(32, 0x250), rng.randrange(0x250, 0x3000)))) for _ in range(n))
        )
        texts.append("".join(rng.choices(chat, k=3))[: rng.randrange(1, 300)])
        texts.append(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200))).decode("latin-1"))
    return texts


@pytest.fixture(scope="module")
def demo_texts(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    home = tmp_path_factory.mktemp("demo-landing")
    write_demo_landing(home)
    return list(dict.fromkeys(_landing_texts(home) + _fixture_texts()))


def reference_detect(text: str) -> tuple[str, float]:
    """detect_lang as it was, one py3langid classify per text."""
    text = prose(text)
    if len(langid._LETTER.findall(text)) < langid.MIN_LETTERS:
        return UNDETERMINED, 0.0
    code, p = langid._identifier().classify(text)
    return (UNDETERMINED, p) if code == "zxx" or p < MIN_CONFIDENCE else (code, p)


# py3langid's float32 sums of up to ~4,000 features against float64 ones: measured at most 1.4e-5 on the varied
# texts, 2.9e-6 on the demo's
P_TOLERANCE = 5e-5


def same_as_py3langid(expected: tuple[str, float], found: tuple[str, float]) -> bool:
    return expected[0] == found[0] and abs(expected[1] - found[1]) <= P_TOLERANCE


def _assert_same_as_py3langid(texts: list[str], batch: int) -> None:
    identifier = langid._identifier()
    expected = [identifier.classify(t) for t in texts]
    found = [r for start in range(0, len(texts), batch) for r in classify(texts[start : start + batch])]
    differ = [(t[:60], e, f) for t, e, f in zip(texts, expected, found, strict=True) if not same_as_py3langid(e, f)]
    assert not differ, f"{len(differ)} of {len(texts)} texts differ from py3langid, first {differ[:3]}"


def test_varied_texts_classify_exactly_as_py3langid() -> None:
    texts = _varied_texts()
    assert len(texts) > 2000
    assert max(map(len, texts)) > 4 * MAX_CHARS
    _assert_same_as_py3langid(texts, batch=500)


@pytest.mark.parametrize("batch", [1, 7, 1024])
def test_the_demo_texts_classify_exactly_as_py3langid(demo_texts: list[str], batch: int) -> None:
    texts = demo_texts if batch > 1 else demo_texts[:: max(1, len(demo_texts) // 300)]
    assert len(texts) > (3000 if batch > 1 else 250)
    _assert_same_as_py3langid(texts, batch)


def test_detect_langs_gives_the_labels_one_classify_per_text_gave(demo_texts: list[str]) -> None:
    texts = demo_texts + _varied_texts()
    found, expected = detect_langs(texts), [reference_detect(t) for t in texts]
    assert all(same_as_py3langid(e, f) for e, f in zip(expected, found, strict=True))


_CLASSIFY_IN_A_CHILD = """
import json, sys
from ptdata.silver.langid import classify
texts = json.load(sys.stdin)
json.dump([(code, p.hex()) for code, p in classify(texts)], sys.stdout)
"""


def test_the_probabilities_do_not_depend_on_the_cpu(demo_texts: list[str]) -> None:
    """A child with numpy's dispatched kernels off (baseline SIMD only) and OpenBLAS's oldest x86-64 kernel gives
    the labels this process gives, which uses the best the CPU has, and the probabilities up to exp's last bit
    (numpy's kernels for exp differ there): the lake, which keeps 1 - p to 6 decimals, does not change with the
    machine. py3langid's float32 BLAS product moved p by up to 8e-5 here."""
    from numpy._core import _multiarray_umath as umath

    texts = demo_texts[::4] + _varied_texts()[::2]
    dispatched = [f for f in umath.__cpu_dispatch__ if umath.__cpu_features__.get(f)]
    env = {**os.environ, "NPY_DISABLE_CPU_FEATURES": " ".join(dispatched), "OPENBLAS_CORETYPE": "Prescott"}
    child = subprocess.run(
        [sys.executable, "-c", _CLASSIFY_IN_A_CHILD],
        input=json.dumps(texts),
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    theirs = [(code, float.fromhex(p)) for code, p in json.loads(child.stdout)]
    ours = classify(texts)
    assert [code for code, _ in theirs] == [code for code, _ in ours]
    assert max(abs(p - q) for (_, p), (_, q) in zip(theirs, ours, strict=True)) <= 4e-16


def test_feature_counts_are_py3langids() -> None:
    identifier = langid._identifier()
    _, counter, _, _ = langid._scorer()
    texts = _varied_texts()[::3]
    encoded = [identifier._encode(t) for t in texts]
    found = counter.count(encoded)
    for k, data in enumerate(encoded):
        a, b = found.offsets[k], found.offsets[k + 1]
        ours = list(zip(found.features[a:b].tolist(), found.counts[a:b].tolist(), strict=True))
        theirs = visit_counts(identifier.tk_nextmove, identifier._rowbase, identifier.tk_output, data)
        assert ours == sorted((theirs or {}).items()), texts[k][:60]
