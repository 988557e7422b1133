"""The bundled demo: a deterministic generator whose landing zone holds every planted defect it documents."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import re
import sqlite3
import zlib
from collections import Counter, defaultdict
from itertools import combinations
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import zstandard

from ptdata.core.config import BUNDLED_DEMO_CONFIG, load_config
from ptdata.demo.common import FIXTURES, READ
from ptdata.demo.generate import DEMO_DAYS, EVAL_SET_PATH, LEAKED_EVAL, SOURCES, write_demo_landing, write_eval_set

D1, D2, D3 = (d.isoformat() for d in DEMO_DAYS)
C0, C1, C2 = "conversations-000.jsonl", "conversations-001.jsonl", "conversations-002.jsonl.gz"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict[str, int]]]:
    home = tmp_path_factory.mktemp("demo")
    return home, write_demo_landing(home)


@pytest.fixture(scope="module")
def home(demo: tuple[Path, dict[str, dict[str, int]]]) -> Path:
    return demo[0]


def digests(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def raw(path: Path) -> bytes:
    data = path.read_bytes()
    if path.suffix == ".gz":
        return gzip.decompress(data)
    if path.suffix == ".zst":
        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    return data


def lines(home: Path, source: str, day: str, name: str) -> list[bytes]:
    return raw(home / "landing" / source / day / name).split(b"\n")[:-1]


def rec(home: Path, source: str, day: str, name: str, line: int) -> Any:
    return json.loads(lines(home, source, day, name)[line - 1])


def content(r: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in r.items() if k != "id"}


def words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def grams(text: str, n: int) -> set[str]:
    w = words(text)
    return {" ".join(w[i : i + n]) for i in range(len(w) - n + 1)}


def jaccard(a: str, b: str) -> float:
    x, y = grams(a, 5), grams(b, 5)
    return len(x & y) / len(x | y)


def user_text(r: dict[str, Any]) -> str:
    return next(m["content"] for m in r["messages"] if m["role"] == "user")


def strings(value: Any) -> str:
    """Every string inside a parsed JSON value, joined."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return "\n".join(strings(v) for v in value.values())
    if isinstance(value, list):
        return "\n".join(strings(v) for v in value)
    return ""


def eval_items() -> dict[str, dict[str, str]]:
    with gzip.open(EVAL_SET_PATH, "rt", encoding="utf-8") as f:
        return {item["task_id"]: item for item in map(json.loads, f)}


def count_records(path: Path) -> int:
    """Input records of one landing file, by the rules the file reader follows."""
    name = path.name
    if path.stat().st_size == 0:
        return 0
    if ".jsonl" in name:
        try:
            return sum(1 for line in raw(path).split(b"\n") if line.strip())
        except EOFError:  # a truncated gzip: the complete lines before the break, plus one for the break
            with gzip.open(path, "rb") as f:
                n = 0
                try:
                    for line in f:
                        n += bool(line.strip())
                except EOFError:
                    return n + 1
    if ".json" in name:
        value = json.loads(raw(path))
        return len(value["data"] if isinstance(value, dict) else value)
    if name.endswith(".csv"):
        return sum(1 for _ in csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"), newline=""))) - 1
    if name.endswith(".parquet"):
        return pq.read_metadata(path).num_rows
    return 1  # .txt and .html: one document per file


# sha256 of the sorted "<path> <sha256>" lines of every file the demo writes under home (landing zone and sqlite).
# A change of the fixtures or the generator that changes the output fails here: update it on purpose, with the
# new value, once the change of output is intended.
LANDING_DIGEST = "35afb67e9d5bce607186d26cc798df02923ec385b3df84b6f89dc2cfa7245a8f"


def fixture_banks() -> dict[str, Any]:
    """Every fixture file's content by name."""
    dctx = zstandard.ZstdDecompressor()
    return {
        p.name.removesuffix(".json.zst"): json.loads(dctx.decompressobj().decompress(p.read_bytes()))
        for p in sorted(FIXTURES.glob("*.json.zst"))
    }


def bank_paths(prefix: str, value: Any) -> set[str]:
    """`<fixture>/<bank>/<bank>...` of every bank, through nested JSON objects (a list is one bank)."""
    if not isinstance(value, dict):
        return set()
    return {f"{prefix}/{k}" for k in value} | {p for k, v in value.items() for p in bank_paths(f"{prefix}/{k}", v)}


def test_fixtures_load_are_non_empty_and_all_used(home: Path, tmp_path: Path) -> None:
    banks = fixture_banks()
    assert banks and all(isinstance(data, dict) and data for data in banks.values())
    paths = set().union(*(bank_paths(name, data) for name, data in banks.items()))
    for path in paths:
        name, *keys = path.split("/")
        value = banks[name]
        for key in keys:
            value = value[key]
        assert value not in ("", [], {}), f"empty bank {path}"
    write_eval_set(tmp_path / "e.jsonl.gz")  # with the landing zone of `home`, every part of the generator ran
    assert READ <= paths, "the generator reads a bank no fixture has"
    assert paths - READ == set(), "fixture banks the generator never reads"


def test_landing_zone_digest_is_the_committed_one(home: Path) -> None:
    lines = "".join(f"{path} {digest}\n" for path, digest in sorted(digests(home).items()))
    assert hashlib.sha256(lines.encode()).hexdigest() == LANDING_DIGEST


def test_two_runs_give_identical_bytes_and_a_rerun_replaces_only_its_folders(home: Path, tmp_path: Path) -> None:
    first = digests(home)
    write_demo_landing(tmp_path)
    assert digests(tmp_path) == first
    stray, foreign = tmp_path / "landing" / "chat_openai" / D1 / "stray.jsonl", tmp_path / "landing" / "mine" / "x.txt"
    stray.write_text("{}\n")
    foreign.parent.mkdir(parents=True)
    foreign.write_text("keep me")
    write_demo_landing(tmp_path)
    assert not stray.exists() and foreign.read_text() == "keep me"
    foreign.unlink()
    foreign.parent.rmdir()
    assert digests(tmp_path) == first


def test_every_source_and_day_with_the_counts_returned(demo: tuple[Path, dict[str, dict[str, int]]]) -> None:
    home, counts = demo
    assert sorted(p.name for p in (home / "landing").iterdir()) == sorted(SOURCES)
    assert list(counts) == list(SOURCES)
    con = sqlite3.connect(home / "external" / "problems.sqlite")
    for source in SOURCES:
        assert list(counts[source]) == [D1, D2, D3]
        for day in (D1, D2, D3):
            folder = home / "landing" / source / day
            assert folder.is_dir()
            if source == "math_rlvr":
                found = con.execute("SELECT count(*) FROM problems WHERE substr(created_at, 1, 10) = ?", (day,))
                assert found.fetchone()[0] == counts[source][day]
                assert not any(folder.iterdir())  # the sql source lands nothing; its rows are in the database
            else:
                assert sum(count_records(p) for p in folder.rglob("*") if p.is_file()) == counts[source][day], source
    for day in (D1, D2, D3):
        assert sum(c[day] for c in counts.values()) >= 2000


def test_demo_config_loads(home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PTDATA_HOME", str(home))
    cfg = load_config(BUNDLED_DEMO_CONFIG)
    p = cfg.pipeline
    assert [s.name for s in p.sources] == list(SOURCES) and p.start_date == DEMO_DAYS[0]
    sql = next(s for s in p.sources if s.kind == "sql")
    assert sql.uri == f"sqlite:///{home}/external/problems.sqlite" and (home / "external" / "problems.sqlite").is_file()
    assert cfg.resolve(p.eval_sets[0].path) == EVAL_SET_PATH.resolve() and p.eval_sets[0].fields == ["prompt"]
    assert (p.dedup.threshold, p.decontam.ngram, p.packing.seq_len) == (0.8, 13, 4096)


def test_committed_eval_set_is_current_and_well_formed(tmp_path: Path) -> None:
    assert write_eval_set(tmp_path / "e.jsonl.gz").read_bytes() == EVAL_SET_PATH.read_bytes()
    assert EVAL_SET_PATH.read_bytes()[4:8] == b"\0\0\0\0"  # gzip mtime 0
    items = eval_items()
    assert len(items) == 60 and len({i["prompt"] for i in items.values()}) == 60
    assert all(set(i) == {"task_id", "prompt", "answer"} and len(i["prompt"].split()) >= 25 for i in items.values())
    assert sum(t.startswith("demo-math") for t in items) == 30


def test_malformed_chat_lines(home: Path) -> None:
    def fails(day: str, name: str = C0) -> list[int]:
        bad = []
        for i, line in enumerate(lines(home, "chat_openai", day, name), 1):
            try:
                json.loads(line)
            except ValueError:  # invalid JSON and invalid UTF-8 (UnicodeDecodeError is a ValueError)
                bad.append(i)
        return bad

    assert fails(D1) == [12, 13, 90] and fails(D2) == [17, 18, 19, 50] and fails(D3) == [16, 17]  # blank lines fail too
    assert [lines(home, "chat_openai", d, C0)[i - 1] for d, i in ((D1, 13), (D1, 90), (D2, 18), (D3, 17))] == [b""] * 4
    with pytest.raises(UnicodeDecodeError):
        lines(home, "chat_openai", D2, C0)[16].decode("utf-8")
    assert [type(rec(home, "chat_openai", D1, C0, i)) for i in (14, 20, 21)] == [list, int, str]
    assert rec(home, "chat_openai", D2, C0, 6)["messages"][0]["content"] == 42
    assert rec(home, "chat_openai", D2, C0, 8)["messages"] == "hello"
    assert rec(home, "chat_openai", D2, C0, 11)["messages"][0]["role"] == "wizard"
    assert rec(home, "chat_openai", D2, C0, 14)["messages"] == []
    huge = lines(home, "chat_openai", D3, C1)[149]
    assert len(huge) > 5_500_000 and json.loads(huge)["messages"][-1]["role"] == "assistant"
    assert (home / "landing" / "chat_openai" / D1 / "empty.jsonl").stat().st_size == 0


def test_truncated_gzip_and_the_other_file_quirks(home: Path) -> None:
    truncated = home / "landing" / "prefs_hh" / D2 / "part-1.jsonl.gz"
    with pytest.raises(EOFError):
        gzip.decompress(truncated.read_bytes())
    day2 = (home / "landing" / "alpaca_csv" / D2 / "instructions.csv").read_bytes()
    assert day2.startswith(b"\xef\xbb\xbf") and b"\r\n" in day2
    day1 = (home / "landing" / "alpaca_csv" / D1 / "instructions.csv").read_bytes()
    assert not day1.startswith(b"\xef\xbb\xbf") and b"\r\n" not in day1
    rows = list(csv.DictReader(io.StringIO(day1.decode(), newline="")))
    assert any("\n" in r["output"] for r in rows)  # multi-line outputs survive quoting
    assert (home / "landing" / "sharegpt_export" / D3 / "export.json.zst").exists()
    assert isinstance(json.loads((home / "landing" / "code_rlvr" / D1 / "tasks.json").read_text())["data"], list)
    pages = list((home / "landing" / "web_docs" / D1).glob("*.html"))
    assert pages and all(
        all(tag in p.read_text() for tag in ("<nav>", "cookie-banner", "<article>", "<aside", "<footer>"))
        for p in pages
    )
    notes = {
        p.relative_to(home / "landing" / "notes_txt" / D1).parts[:2]
        for p in (home / "landing" / "notes_txt" / D1).rglob("*.txt")
    }
    assert notes == {("notes", "a"), ("notes", "b")}


def test_exact_duplicates(home: Path) -> None:
    chat = [
        rec(home, "chat_openai", d, f, i)
        for d, f, i in ((D1, C0, 3), (D1, C0, 9), (D1, C2, 10), (D2, C0, 3), (D3, C0, 4))
    ]
    forum = [rec(home, "forum_dump", d, "posts-000.jsonl", i) for d, i in ((D1, 2), (D1, 4), (D2, 3), (D3, 5))]
    exports = {
        d: json.loads(raw(home / "landing" / "sharegpt_export" / d / n))
        for d, n in ((D1, "export.json"), (D2, "export.json"), (D3, "export.json.zst"))
    }
    sharegpt = [exports[D1][2], exports[D1][10], exports[D2][5], exports[D3][7]]
    for group in (chat, forum, sharegpt):
        assert all(content(r) == content(group[0]) for r in group)
        assert len({r["id"] for r in group}) == len(group)


def test_near_duplicates(home: Path) -> None:
    chat = [user_text(rec(home, "chat_openai", d, C0, i)) for d, i in ((D1, 25), (D1, 31), (D2, 22), (D3, 10))]
    forum = [
        rec(home, "forum_dump", d, "posts-000.jsonl", i)["text"] for d, i in ((D1, 8), (D1, 15), (D2, 9), (D3, 11))
    ]
    by_title = defaultdict(list)
    for page in sorted((home / "landing" / "web_docs").rglob("*.html")):
        html = page.read_text()
        body = " ".join(re.findall(r"<p>(.*?)</p>", html))
        by_title[re.search(r"<h1>(.*?)</h1>", html).group(1)].append(
            (re.search(r'class="logo"[^>]*>(.*?)<', html).group(1), body)
        )
    web = max(by_title.values(), key=len)
    assert len(web) == 4 and len({site for site, _ in web}) == 4
    for group in (chat, forum, [body for _, body in web]):
        assert len(group[0].split()) >= 150 and len(set(group)) == 4
        assert all(jaccard(group[0], other) >= 0.8 for other in group[1:])


PII_PATTERNS = {
    "email": r"\b[\w.+-]+@(?!example\.)[\w-]+\.[\w.]+\b",
    "us_phone": r"\(\d{3}\) 555-\d{4}|\b\d{3}-555-\d{4}\b|\+1 \d{3} 555 \d{4}",
    "intl_phone": r"\+(?:44|49|33|81|351) \d",
    "ipv4": r"\b(?:\d{1,3}\.){3}\d{1,3}\b",
    "ipv6": r"\b2a02:[0-9a-f]{1,4}(?::[0-9a-f]{1,4}){6}\b",
    "ssn": r"\b\d{3}-\d{2}-\d{4}\b",
    "aws_key_id": r"\bAKIA[A-Z2-7]{16}\b",
    "aws_secret": r"aws_secret_access_key ?= ?[A-Za-z0-9+/]{40}|secret {5}[A-Za-z0-9+/]{40}",
    "github_token": r"\bghp_[A-Za-z0-9]{36}\b",
    "jwt": r"\beyJ[\w-]+\.eyJ[\w-]+\.[\w-]+",
    "rsa_key": r"-----BEGIN RSA PRIVATE KEY-----",
    "url_password": r"https://[\w-]+:[^@\s/]+@[\w.-]+",
    "iban": r"\b(?:GB|DE)\d{2}(?: [A-Z0-9]{4}){4}(?: [A-Z0-9]{2,4})?\b",
    "card": r"\b\d{4}[ -]?\d{4}[ -]?\d{4}[ -]?\d{4}\b",
}


def luhn(number: str) -> bool:
    digits = [int(c) for c in number if c.isdigit()]
    return sum(d if i % 2 == 0 else (d * 2 - 9 if d > 4 else d * 2) for i, d in enumerate(reversed(digits))) % 10 == 0


def iban_valid(iban: str) -> bool:
    s = iban.replace(" ", "")
    return int("".join(str(int(c, 36)) for c in s[4:] + s[:4])) % 97 == 1


def test_pii_and_hard_negatives(home: Path) -> None:
    texts = {
        "chat_openai": "\n".join(
            raw(p).decode("utf-8", "replace")
            for p in (home / "landing" / "chat_openai").rglob("*")
            if p.is_file() and p.stat().st_size < 1_000_000
        ),
        "forum_dump": "\n".join(p.read_text() for p in (home / "landing" / "forum_dump").rglob("*.jsonl")),
        "notes_txt": "\n".join(p.read_text() for p in (home / "landing" / "notes_txt").rglob("*.txt")),
    }
    for kind, pattern in PII_PATTERNS.items():
        found = {source: re.findall(pattern, text) for source, text in texts.items()}
        assert any(found.values()), kind
    everything = "\n".join(texts.values())
    cards = re.findall(PII_PATTERNS["card"], everything)
    assert any(luhn(c) for c in cards) and any(not luhn(c) for c in cards)  # real cards and a look-alike order number
    assert any(iban_valid(i) for i in re.findall(PII_PATTERNS["iban"], everything))
    for pii in ("email", "ipv4", "github_token", "jwt", "aws_key_id"):  # spread over more than one source
        assert sum(bool(re.search(PII_PATTERNS[pii], t)) for t in texts.values()) >= 2, pii
    for negative in (
        r"user@example\.com",
        r"ISBN 978-\d-\d{4}-\d{4}-\d",
        r"\b\d{1,2}\.\d\.\d{1,2}\.\d{3,4}\b",
        r"0x[0-9A-F]{8}",
        r"\b2026-\d{2}-\d{2}\b",
    ):
        assert re.search(negative, texts["forum_dump"]) and re.search(negative, texts["chat_openai"]), negative


def test_quality_defects(home: Path) -> None:
    replies = {
        (d, f, i): rec(home, "chat_openai", d, f, i)["messages"][-1]["content"]
        for d, f, i in ((D1, C0, 66), (D2, C1, 9), (D3, C2, 3), (D1, C0, 70), (D1, C1, 15), (D1, C1, 18), (D3, C0, 21))
    }
    assert replies[(D1, C0, 66)] == replies[(D2, C1, 9)] == replies[(D3, C2, 3)] == ""
    assert "as an AI language model" in replies[(D1, C0, 70)]
    assert not replies[(D1, C1, 15)].rstrip().endswith((".", "!", "?", "```"))
    assert replies[(D1, C1, 18)].count("```") % 2 == 1 and replies[(D3, C0, 21)].count("```") % 2 == 1
    pairs = pq.read_table(home / "landing" / "prefs_pairs" / D1 / "pairs.parquet").to_pylist()
    assert pairs[13]["chosen"] == pairs[13]["rejected"]
    assert sum(r["chosen"] == r["rejected"] for r in pairs) == 1
    msgs = rec(home, "prefs_pairs", D2, "pairs-msgs.jsonl", 5)
    assert msgs["chosen"] == msgs["rejected"]
    con = sqlite3.connect(home / "external" / "problems.sqlite")
    assert con.execute("SELECT answer FROM problems WHERE id = 17").fetchone()[0] == "see above"
    answers = [a for (a,) in con.execute("SELECT answer FROM problems")]
    assert sum(a.startswith("\\boxed{") for a in answers) > 100
    assert re.search("Ã|â€", json.dumps(rec(home, "chat_openai", D1, C0, 75), ensure_ascii=False))
    assert re.search("\x1b|\x07|\x00", user_text(rec(home, "chat_openai", D1, C0, 80)))
    journal = (home / "landing" / "notes_txt" / D3 / "notes" / "a" / "021-journal.txt").read_text()
    assert "\x00" in journal and "â€™" in journal


def test_eval_leaks_and_look_alikes(home: Path) -> None:
    items = eval_items()
    eval_grams = {n: {g: tid for tid, i in items.items() for g in grams(i["prompt"], n)} for n in (8, 13)}
    verbatim = rec(home, "chat_openai", D1, C0, 40)
    assert user_text(verbatim) == items[LEAKED_EVAL["chat_openai"]]["prompt"]
    leaked = json.loads(lines(home, "qa_pairs", D2, "qa-000.jsonl.zst")[6])["prompt"]
    target = items[LEAKED_EVAL["qa_pairs"]]["prompt"]
    assert "\r\n" in leaked and target not in leaked and " ".join(words(target)) in " ".join(words(leaked))
    con = sqlite3.connect(home / "external" / "problems.sqlite")
    partial = con.execute("SELECT question FROM problems WHERE id = 280").fetchone()[0]
    full = words(items[LEAKED_EVAL["math_rlvr"]]["prompt"])
    shared = next(i for i, (a, b) in enumerate(zip(words(partial) + [""], full, strict=False)) if a != b)
    assert 0.6 <= shared / len(full) <= 0.8
    look_alikes = [
        json.dumps(rec(home, "chat_openai", D3, C0, 26)),
        json.dumps(json.loads((home / "landing" / "code_rlvr" / D2 / "tasks.json").read_text())["data"][12]),
    ]
    assert all(not (grams(t, 8) & eval_grams[8].keys()) for t in look_alikes)
    assert "box office" in look_alikes[0] and "roman" in look_alikes[1].lower()
    # the planted records are the only ones of these sources that share a 13-gram with the eval set
    hits = Counter()
    for source in ("chat_openai", "qa_pairs"):
        for p in sorted((home / "landing" / source).rglob("*.jsonl*")):
            for line in raw(p).split(b"\n"):
                try:
                    text = strings(json.loads(line)) if len(line) < 1_000_000 else ""
                except ValueError:
                    continue
                hits[source] += bool(grams(text, 13) & eval_grams[13].keys())
    hits["math_rlvr"] = sum(
        bool(grams(q, 13) & eval_grams[13].keys()) for (q,) in con.execute("SELECT question FROM problems")
    )
    assert hits == {"chat_openai": 1, "qa_pairs": 1, "math_rlvr": 1}


def test_code_rlvr_solutions_pass_their_tests(home: Path) -> None:
    n = 0
    for path in sorted((home / "landing" / "code_rlvr").rglob("tasks.json")):
        for task in json.loads(path.read_text())["data"]:
            ns: dict[str, Any] = {}
            exec(task["solution"], ns)
            assert task["verifier_args"]["entry_point"] in ns
            for test in task["verifier_args"]["tests"]:
                exec(test, ns)
                n += 1
    assert n > 1000


def near_pairs(docs: dict[Any, str], threshold: float) -> list[tuple[float, Any, Any]]:
    """Pairs of documents whose word 5-gram Jaccard is at least `threshold`. Candidates come from a fixed quarter
    of each document's 5-grams (chosen by hash, so equal texts sample equally); common 5-grams are skipped."""
    shingles = {key: grams(text, 5) for key, text in docs.items()}
    sampled = {key: {g for g in sh if zlib.crc32(g.encode()) % 4 == 0} for key, sh in shingles.items()}
    index: dict[str, list[Any]] = defaultdict(list)
    for key, sh in sampled.items():
        for g in sh:
            index[g].append(key)
    shared: Counter[tuple[Any, Any]] = Counter()
    for keys in index.values():
        if len(keys) <= 50:
            shared.update(combinations(keys, 2))
    out = []
    for (a, b), n in shared.items():
        if n * 2 >= min(len(sampled[a]), len(sampled[b])):
            j = len(shingles[a] & shingles[b]) / len(shingles[a] | shingles[b])
            if j >= threshold:
                out.append((j, a, b))
    return out


def test_unrelated_records_are_not_near_duplicates(home: Path) -> None:
    """Outside the planted groups no two records share most of their word 5-grams (the pipeline's dedup unit)."""
    docs: dict[tuple[str, str, str], str] = {}
    for source in ("chat_openai", "forum_dump", "prefs_hh"):
        for path in sorted((home / "landing" / source).rglob("*.jsonl*")):
            try:
                data = raw(path)
            except EOFError:
                continue
            for i, line in enumerate(data.split(b"\n"), 1):
                try:
                    value = json.loads(line) if len(line) < 1_000_000 else None
                except ValueError:
                    continue
                if isinstance(value, dict):
                    docs[(source, path.parent.name, f"{path.name}:{i}")] = strings(content(value))
    con = sqlite3.connect(home / "external" / "problems.sqlite")
    docs.update({("math_rlvr", "", str(i)): q for i, q in con.execute("SELECT id, question FROM problems")})
    for day in (D1, D2, D3):
        for i, task in enumerate(json.loads((home / "landing" / "code_rlvr" / day / "tasks.json").read_text())["data"]):
            docs[("code_rlvr", day, str(i))] = task["prompt"][-1]["content"] + task["solution"]
        docs.update(
            {
                ("notes_txt", day, p.name): p.read_text()
                for p in (home / "landing" / "notes_txt" / day).rglob("*")
                if p.is_file()
            }
        )
    planted = [
        {
            ("chat_openai", d, f"{f}:{i}")
            for d, f, i in ((D1, C0, 3), (D1, C0, 9), (D1, C2, 10), (D2, C0, 3), (D3, C0, 4))
        },
        {("chat_openai", d, f"{C0}:{i}") for d, i in ((D1, 25), (D1, 31), (D2, 22), (D3, 10))},
        {("forum_dump", d, f"posts-000.jsonl:{i}") for d, i in ((D1, 2), (D1, 4), (D2, 3), (D3, 5))},
        {("forum_dump", d, f"posts-000.jsonl:{i}") for d, i in ((D1, 8), (D1, 15), (D2, 9), (D3, 11))},
    ]
    found = near_pairs(docs, 0.8)
    unplanned = [(round(j, 2), a, b) for j, a, b in found if not any(a in g and b in g for g in planted)]
    assert not unplanned
    assert sum(1 for _, a, _ in found if a[0] == "chat_openai") >= 10 + 6  # the planted groups are found
