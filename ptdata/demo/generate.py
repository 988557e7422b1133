"""The bundled demo's landing zone: a seeded generator of three days (2026-11-01..03) of realistic, messy input.

`write_demo_landing(home)` writes `home/landing/<source>/<YYYY-MM-DD>/...` for the eleven sources of
`ptdata/demo/ptdata.yaml` and the sql source's database `home/external/problems.sqlite`, and returns how many
input records (lines, rows, documents, malformed ones included) each source got per day. The output is
byte-for-byte the same for a seed: every random choice comes from `random.Random` streams seeded per source and
day, timestamps are fixed, gzip is written with mtime 0 and zstd at a fixed level. Re-running replaces the
source/day folders it owns and nothing else.

The text is built from template banks (programming, SQL and JavaScript Q&A with small working code whose printed
results are computed, worked math word problems, e-mails, article summaries, explainers, travel and cooking
advice, other languages, tool calls) with names, numbers, places and wordings drawn per record, so unrelated records
share few word 5-grams; only the defects below are duplicates or contaminated.

Layout (one folder per source and day, with about this many input records a day):
    chat_openai      conversations-000.jsonl, conversations-001.jsonl, conversations-002.jsonl.gz (~700, messages)
    sharegpt_export  export.json (a JSON array), export.json.zst on 2026-11-03 (~300)
    alpaca_csv       instructions.csv (~200; 2026-11-02: UTF-8 BOM and CRLF line ends)
    qa_pairs         qa-000.jsonl.zst (~150, prompt/response)
    prefs_hh         part-0.jsonl.gz (~250, Anthropic HH transcripts)
    prefs_pairs      pairs.parquet (string columns) and pairs-msgs.jsonl (message lists) (~250)
    math_rlvr        rows of home/external/problems.sqlite, by created_at (~250; a quarter answer as \\boxed{});
                     its day folders stay empty
    code_rlvr        tasks.json, a JSON object {"data": [...]} with exec-checked solutions and tests (~100)
    web_docs         <slug>.html article pages with nav, cookie banner, sidebar and footer (~40)
    notes_txt        notes/a/*.txt and notes/b/*.txt (100)
    forum_dump       posts-000.jsonl, {"id", "text", "author", "url"} (~200)

Planted defects (file:line is 1-based for line files, #i is a 0-based row; dates are written 11-01 .. 11-03,
chat_openai's files 000, 001 and 002.jsonl.gz):

Unreadable or malformed input, chat_openai
    11-01 empty.jsonl                        an empty file
    11-01 conversations-000.jsonl:12         a truncated JSON object
    11-01 conversations-000.jsonl:14, 20, 21  JSON values that are not objects: a list, a number, a string
    11-02 conversations-000.jsonl:6, 8       wrong types: "content": 42, "messages": "hello"
    11-02 conversations-000.jsonl:11, 14     an unknown role ("wizard"), an empty message list
    11-02 conversations-000.jsonl:17         invalid UTF-8 (bytes ff fe inside a JSON string)
    11-02 conversations-000.jsonl:50, 11-03 conversations-000.jsonl:16   truncated JSON objects
    blank lines                              11-01 000:13 and 000:90, 11-02 000:18-19, 11-03 000:17
    11-03 conversations-001.jsonl:150        one valid ~6 MB line (a huge CSV in one assistant message), larger
                                             than bronze.max_record_bytes
Unreadable files elsewhere
    prefs_hh 11-02 part-1.jsonl.gz           a valid gzip cut after 70% of its bytes (reading it raises EOFError);
                                             counted as its complete lines plus one record for the broken tail

Exact duplicates (same content, another line and id)
    chat_openai      11-01 000:3 is repeated at 11-01 000:9, 11-01 002.jsonl.gz:10, 11-02 000:3, 11-03 000:4
    sharegpt_export  11-01 #2 is repeated at 11-01 #10, 11-02 #5, 11-03 export.json.zst #7
    forum_dump       11-01 :2 is repeated at 11-01 :4, 11-02 :3, 11-03 :5
Near duplicates (one long text; a few words changed, punctuation and spacing changed, a sentence appended)
    chat_openai      11-01 000:25 (original), 11-01 000:31 (words), 11-02 000:22 (punctuation), 11-03 000:10 (appended)
    forum_dump       11-01 :8 (original), 11-01 :15 (words), 11-02 :9 (punctuation), 11-03 :11 (appended)
    web_docs         one long article, 11-01 on The Harbour Ledger, republished with the same title on another
                     site: 11-01 (words), 11-02 (punctuation), 11-03 (appended)

PII (and look-alikes that are not PII)
    chat_openai      11-01 000:5 e-mail, US and international phone numbers; 000:44 AWS access key id and secret;
                     000:47 JWT; 000:52 a card number that passes Luhn; 001:7 GitHub token ghp_...;
                     002.jsonl.gz:4 IPv4 and IPv6 addresses; 11-02 000:30 https://user:password@host URL;
                     000:35 US SSN; 002.jsonl.gz:6 vCard with an international phone and an e-mail
    forum_dump       11-01 :20 e-mail and US phone; :27 IPv4 and IPv6; :33 GitHub token; :38 URL with a password;
                     11-02 :14 international phone and e-mail; :21 Luhn-valid card; :25 JWT; 11-03 :17 AWS keys
    notes_txt        11-01 notes/b/007-household.txt IBAN, SSNs, card; 11-01 notes/a/012-server.txt AWS keys and a
                     -----BEGIN RSA PRIVATE KEY----- block; 11-02 notes/b/004-contacts.txt e-mails and phones;
                     11-02 notes/a/015-server.txt GitHub token, JWT, URL with a password, IPv4 and IPv6;
                     11-03 notes/b/009-household.txt IBAN and SSNs
    hard negatives   chat_openai 11-01 000:60 and forum_dump 11-01 :45, 11-03 :24: four-part version numbers,
                     dates, hex constants, an ISBN, user@example.com, a 16-digit order number that fails Luhn;
                     also every "*-server.txt" note (versions, hex, commit hashes, admin@example.com) and
                     "*-reading.txt" note (ISBNs)

Quality defects
    empty assistant reply       chat_openai 11-01 000:66, 11-02 001:9, 11-03 002.jsonl.gz:3
    refusal boilerplate         chat_openai 11-01 000:70, 11-02 000:41, 11-03 000:33
    answer cut mid-sentence     chat_openai 11-01 001:15, 11-02 001:12
    unclosed code fence         chat_openai 11-01 001:18, 11-03 000:21
    chosen identical to rejected  prefs_pairs 11-01 pairs.parquet#13, 11-02 pairs-msgs.jsonl:5, 11-03 pairs.parquet#40
    unparseable rlvr answer     math_rlvr id 17 (11-01): "see above"
    mojibake                    chat_openai 11-01 000:75, 11-02 000:44; sharegpt_export 11-02 #40;
                                forum_dump 11-01 :50, 11-02 :30; notes_txt 11-03 notes/a/021-journal.txt
    control characters          chat_openai 11-01 000:80; forum_dump 11-01 :55; notes_txt 11-03 notes/a/021-journal.txt

Leaked eval items (evals/demo_eval.jsonl.gz; LEAKED_EVAL names them)
    verbatim         chat_openai 11-01 000:40, the user turn is demo-math-009's prompt
    re-spaced        qa_pairs 11-02 line 7, demo-code-002's prompt re-wrapped with CRLF line ends and doubled spaces
                     inside a longer instruction
    partial          math_rlvr id 280 (11-02), about 70% of demo-math-000's words
    look-alikes      chat_openai 11-03 000:26 (a ticket-revenue problem like demo-math-009) and code_rlvr 11-02 #12
                     (int_to_roman, next to demo-code-012's roman_to_int) share no 8-word sequence with any eval item
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ptdata.demo import chat, instruct, preference, rlvr, web
from ptdata.demo.files import DEMO_DAYS, gz, jsonl

__all__ = ["DEMO_DAYS", "EVAL_SET_PATH", "LEAKED_EVAL", "SOURCES", "write_demo_landing", "write_eval_set"]

# the writer of each source, in the order of ptdata.yaml; a source that gets an eval item also gets the item
_WRITERS: dict[str, Callable[..., list[int]]] = {
    "chat_openai": chat.write_chat_openai,
    "sharegpt_export": chat.write_sharegpt,
    "alpaca_csv": instruct.write_alpaca,
    "qa_pairs": instruct.write_qa_pairs,
    "prefs_hh": preference.write_prefs_hh,
    "prefs_pairs": preference.write_prefs_pairs,
    "math_rlvr": rlvr.write_math_rlvr,
    "code_rlvr": rlvr.write_code_rlvr,
    "web_docs": web.write_web_docs,
    "notes_txt": web.write_notes,
    "forum_dump": web.write_forum,
}
SOURCES: tuple[str, ...] = tuple(_WRITERS)
EVAL_SET_PATH = Path(__file__).parent / "evals" / "demo_eval.jsonl.gz"
# the eval items copied into training data, by source (see "Leaked eval items" above)
LEAKED_EVAL = {"chat_openai": "demo-math-009", "qa_pairs": "demo-code-002", "math_rlvr": "demo-math-000"}


def write_eval_set(path: Path = EVAL_SET_PATH) -> Path:
    """Write the demo eval set: 30 grade-school math word problems and 30 short Python tasks (gzip, mtime 0)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gz(b"".join(jsonl(item) + b"\n" for item in rlvr.eval_items())))
    return path


def write_demo_landing(home: Path, seed: int = 20261101) -> dict[str, dict[str, int]]:
    """Write the demo landing zone (and the sql source's sqlite file) under `home`; return input records per
    source and day. Deterministic for a seed; folders it owns are replaced, nothing else is touched."""
    home, items = Path(home), {item["task_id"]: item for item in rlvr.eval_items()}
    days = [d.isoformat() for d in DEMO_DAYS]
    counts = {}
    for name, writer in _WRITERS.items():
        leak = [items[LEAKED_EVAL[name]]] if name in LEAKED_EVAL else []
        counts[name] = dict(zip(days, writer(home, seed, *leak), strict=True))
    return counts
