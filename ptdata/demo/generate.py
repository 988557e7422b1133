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

import base64
import csv
import datetime as dt
import gzip
import io
import json
import math
import random
import re
import shutil
import sqlite3
import string
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

DEMO_DAYS: list[dt.date] = [dt.date(2026, 11, 1), dt.date(2026, 11, 2), dt.date(2026, 11, 3)]
SOURCES: tuple[str, ...] = (
    "chat_openai",
    "sharegpt_export",
    "alpaca_csv",
    "qa_pairs",
    "prefs_hh",
    "prefs_pairs",
    "math_rlvr",
    "code_rlvr",
    "web_docs",
    "notes_txt",
    "forum_dump",
)
EVAL_SET_PATH = Path(__file__).parent / "evals" / "demo_eval.jsonl.gz"
SQL_DB = Path("external") / "problems.sqlite"
# the eval items copied into training data, by source (see "Leaked eval items" above)
LEAKED_EVAL: dict[str, str] = {
    "chat_openai": "demo-math-009",
    "qa_pairs": "demo-code-002",
    "math_rlvr": "demo-math-000",
}
_ZSTD_LEVEL = 10

Msg = dict[str, Any]


# --------------------------------------------------------------------------------------------------- helpers


def _rng(seed: int, *parts: object) -> random.Random:
    """An independent, reproducible stream per (seed, source, day, ...); str seeds are hashed with SHA-512."""
    return random.Random(":".join([str(seed), *map(str, parts)]))


def _pick(rng: random.Random, seq: Sequence[Any]) -> Any:
    return seq[rng.randrange(len(seq))]


def _some(rng: random.Random, seq: Sequence[Any], lo: int, hi: int) -> list[Any]:
    return rng.sample(list(seq), rng.randint(lo, min(hi, len(seq))))


def _lognorm_int(rng: random.Random, median: float, sigma: float, lo: int, hi: int) -> int:
    return max(lo, min(hi, round(rng.lognormvariate(math.log(median), sigma))))


def _a(noun: str) -> str:
    return f"{'an' if noun[0].lower() in 'aeiou' else 'a'} {noun}"


def _fence(lang: str, code: str) -> str:
    return f"```{lang}\n{code}\n```"


def _money(x: float, sym: str = "$") -> str:
    return f"{sym}{x:,.2f}" if x != int(x) else f"{sym}{int(x):,}"


def _num(x: float) -> str:
    """A number as a person writes it: no trailing .0, at most two decimals."""
    return str(int(x)) if float(x).is_integer() else f"{x:.2f}".rstrip("0")


def _fill(rng: random.Random, templates: Sequence[str], **slots: Any) -> str:
    return _pick(rng, templates).format(**slots)


def _jsonl(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode("utf-8")


def _reset_dir(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=6, mtime=0)


def _zstd(data: bytes) -> bytes:
    return zstandard.ZstdCompressor(level=_ZSTD_LEVEL).compress(data)


def _mojibake(text: str) -> str:
    """UTF-8 bytes decoded as Windows-1252, the classic double-encoding accident ("café" -> "cafÃ©")."""
    return text.encode("utf-8").decode("cp1252", errors="replace")


# --------------------------------------------------------------------------------------------------- people


FIRST_NAMES = (
    "Maya",
    "Daniel",
    "Priya",
    "Tomás",
    "Aiko",
    "Oluwaseun",
    "Grace",
    "Mateo",
    "Lena",
    "Arjun",
    "Sofia",
    "Kwame",
    "Hannah",
    "Diego",
    "Mei",
    "Noah",
    "Fatima",
    "Lucas",
    "Zara",
    "Ibrahim",
    "Elena",
    "Ravi",
    "Chloé",
    "Jonas",
    "Amara",
    "Felix",
    "Yuki",
    "Omar",
    "Ingrid",
    "Samuel",
    "Leila",
    "Marco",
    "Nadia",
    "Ethan",
    "Camila",
    "Hugo",
    "Anika",
    "Theo",
    "Rosa",
    "Kenji",
    "Isabel",
    "Malik",
    "Freya",
    "Victor",
    "Aaliyah",
    "Pedro",
    "Clara",
    "Jamal",
    "Nora",
    "Björn",
    "Zoë",
    "Søren",
    "Łukasz",
    "Renée",
    "Tariq",
    "Wen",
    "Esther",
    "Carlos",
    "Ayesha",
    "Patrick",
    "Lucía",
    "Dmitri",
    "Hyun-woo",
    "Siobhan",
    "Emeka",
    "Greta",
    "Rahul",
    "Beatriz",
    "Connor",
    "Mariam",
)
SURNAMES = (
    "Okafor",
    "Lindqvist",
    "Haddad",
    "Nakamura",
    "García",
    "Kowalski",
    "Brennan",
    "Achebe",
    "Moreau",
    "Patel",
    "Schmidt",
    "Oyelaran",
    "Rossi",
    "Novak",
    "Fitzgerald",
    "Tanaka",
    "Mendes",
    "Hughes",
    "Kaur",
    "Dubois",
    "Ivanova",
    "O'Connor",
    "Bianchi",
    "Mwangi",
    "Larsen",
    "Chen",
    "Abara",
    "Silva",
    "Nguyen",
    "Walsh",
    "Romero",
    "Kim",
    "Fischer",
    "Yilmaz",
    "Adeyemi",
    "Costa",
    "Park",
    "Eriksen",
    "Sato",
    "Murphy",
    "Delacroix",
    "Van Dijk",
)
COMPANIES = (
    "Northwind Logistics",
    "Bluefin Analytics",
    "Harbor & Pine",
    "Cobalt Health",
    "Juniper Robotics",
    "Tidewater Foods",
    "Larkspur Media",
    "Quarry Labs",
    "Meridian Bikes",
    "Saltmarsh Energy",
    "Orchard Lane Books",
    "Brightwell Insurance",
    "Kestrel Software",
    "Ferncliff Outdoor",
    "Alder & Finch",
    "Copperleaf Coffee",
    "Halcyon Dental",
    "Redwood Freight",
    "Pinecone Games",
    "Silverline Telecom",
    "Wrenfield Architects",
)
CITIES = (
    "Lisbon",
    "Kyoto",
    "Mexico City",
    "Edinburgh",
    "Vienna",
    "Istanbul",
    "Seoul",
    "Buenos Aires",
    "Copenhagen",
    "Marrakech",
    "Vancouver",
    "Hanoi",
    "Porto",
    "Prague",
    "Cape Town",
    "Melbourne",
    "Denver",
    "Toronto",
    "Lyon",
    "Osaka",
    "Bologna",
    "Austin",
    "Tallinn",
    "Valparaíso",
    "Ljubljana",
    "Nairobi",
    "Montréal",
    "Bergen",
)
MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
EMAIL_DOMAINS = ("gmail.com", "outlook.com", "proton.me", "yahoo.co.uk", "fastmail.com", "icloud.com", "web.de")


def _person(rng: random.Random) -> tuple[str, str]:
    return _pick(rng, FIRST_NAMES), _pick(rng, SURNAMES)


def _full_name(rng: random.Random) -> str:
    return " ".join(_person(rng))


def _ascii_fold(s: str) -> str:
    s = s.translate(str.maketrans({"ł": "l", "Ł": "L", "ø": "o", "Ø": "O", "ß": "ss"}))
    return unicodedata.normalize("NFKD", s).encode("ascii", "ignore").decode()


def _ascii(s: str) -> str:
    """A name as it appears in an e-mail address or a user name: ASCII letters only."""
    return re.sub(r"[^A-Za-z]", "", _ascii_fold(s))


def _date_in(rng: random.Random, year: int = 2026) -> dt.date:
    return dt.date(year, 1, 1) + dt.timedelta(days=rng.randrange(365))


def _pretty_date(d: dt.date) -> str:
    return f"{WEEKDAYS[d.weekday()]}, {MONTHS[d.month - 1]} {d.day}"


# --------------------------------------------------------------------------------------------------- PII


def _digits(rng: random.Random, n: int) -> str:
    return "".join(str(rng.randrange(10)) for _ in range(n))


def _alnum(rng: random.Random, n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def luhn_ok(number: str) -> bool:
    """The Luhn checksum every payment card number satisfies (spaces and dashes ignored)."""
    digits = [int(c) for c in number if c.isdigit()]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return len(digits) >= 12 and total % 10 == 0


def _card(rng: random.Random, valid: bool = True) -> str:
    body = _pick(rng, ("4", "51", "53", "55"))
    body += _digits(rng, 15 - len(body))
    check = next(d for d in "0123456789" if luhn_ok(body + d))
    if not valid:
        check = str((int(check) + rng.randint(1, 9)) % 10)
    num = body + check
    sep = _pick(rng, (" ", "-", ""))
    return sep.join(num[i : i + 4] for i in range(0, 16, 4))


def _iban(rng: random.Random) -> str:
    country, bban = _pick(
        rng, (("GB", _pick(rng, ("NWBK", "BARC", "MIDL")) + _digits(rng, 14)), ("DE", _digits(rng, 18)))
    )
    check = 98 - int("".join(str(int(c, 36)) for c in bban + country + "00")) % 97
    s = f"{country}{check:02d}{bban}"
    return " ".join(s[i : i + 4] for i in range(0, len(s), 4))


def _ssn(rng: random.Random) -> str:
    return f"{rng.randint(101, 665):03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


def _us_phone(rng: random.Random) -> str:
    area, last = rng.choice(("212", "312", "415", "617", "646", "720", "503")), _digits(rng, 4)
    return _pick(rng, (f"({area}) 555-{last}", f"{area}-555-{last}", f"+1 {area} 555 {last}"))


def _intl_phone(rng: random.Random) -> str:
    return _pick(
        rng,
        (
            f"+44 20 7946 {_digits(rng, 4)}",
            f"+49 30 {_digits(rng, 8)}",
            f"+33 1 {_digits(rng, 2)} {_digits(rng, 2)} {_digits(rng, 2)} {_digits(rng, 2)}",
            f"+81 3-{_digits(rng, 4)}-{_digits(rng, 4)}",
            f"+351 21 {_digits(rng, 3)} {_digits(rng, 4)}",
        ),
    )


def _email(rng: random.Random, first: str | None = None, last: str | None = None) -> str:
    f, s = _person(rng)
    first, last = _ascii(first or f).lower(), _ascii(last or s).lower()
    user = _pick(rng, (f"{first}.{last}", f"{first}{rng.randint(1, 99)}", f"{first[0]}{last}", f"{last}.{first}"))
    return f"{user}@{_pick(rng, EMAIL_DOMAINS)}"


def _ipv4(rng: random.Random) -> str:
    return (
        f"{rng.choice((31, 46, 78, 85, 91, 109, 176, 188, 212))}.{rng.randint(1, 254)}.{rng.randint(0, 255)}."
        f"{rng.randint(1, 254)}"
    )


def _ipv6(rng: random.Random) -> str:
    return f"2a02:{rng.randint(0x1000, 0xFFFF):x}:" + ":".join(f"{rng.randint(0, 0xFFFF):x}" for _ in range(6))


def _aws_keys(rng: random.Random) -> tuple[str, str]:
    key_id = "AKIA" + _alnum(rng, 16, string.ascii_uppercase + "234567")
    return key_id, _alnum(rng, 40, string.ascii_letters + "0123456789+/")


def _github_token(rng: random.Random) -> str:
    return "ghp_" + _alnum(rng, 36)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jwt(rng: random.Random) -> str:
    first, last = _person(rng)
    claims = {
        "sub": str(rng.randint(10_000, 99_999)),
        "name": f"{first} {last}",
        "iat": 1793404800 + rng.randint(0, 900_000),
    }
    header = _b64url(b'{"alg":"HS256","typ":"JWT"}')
    sig = _b64url(bytes(rng.randrange(256) for _ in range(32)))
    return f"{header}.{_b64url(json.dumps(claims, separators=(',', ':')).encode())}.{sig}"


def _rsa_block(rng: random.Random) -> str:
    body = "MIIEpAIBAAKCAQEA" + base64.b64encode(bytes(rng.randrange(256) for _ in range(700))).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "-----BEGIN RSA PRIVATE KEY-----\n" + "\n".join(lines) + "\n-----END RSA PRIVATE KEY-----"


def _cred_url(rng: random.Random) -> str:
    user = _pick(rng, ("deploy", "ci-bot", "admin", "jenkins", "backup"))
    pw = _alnum(rng, 6) + _pick(rng, ("!", "#", "%21", "_")) + _alnum(rng, 5)
    host = _pick(
        rng, ("git.tidewater-foods.net", "registry.kestrelsoft.io", "files.harborpine.co", "db.quarrylabs.dev")
    )
    return f"https://{user}:{pw}@{host}/{_pick(rng, ('repo.git', 'v2/', 'exports/latest.tar.gz', 'admin'))}"


def _isbn13(rng: random.Random) -> str:
    """A real-looking, checksum-valid ISBN: a hard negative for number-shaped PII detectors."""
    core = "978" + _digits(rng, 9)
    check = (10 - sum(int(c) * (3 if i % 2 else 1) for i, c in enumerate(core)) % 10) % 10
    return f"{core[:3]}-{core[3]}-{core[4:8]}-{core[8:12]}-{check}"


def _version4(rng: random.Random) -> str:
    return f"{rng.randint(1, 31)}.{rng.randint(0, 9)}.{rng.randint(0, 40)}.{rng.randint(100, 9999)}"


# --------------------------------------------------------------------------------------------------- tasks


@dataclass
class _Task:
    """One user request with its answer, and follow-up exchanges that make sense after it."""

    user: str
    answer: str
    followups: list[tuple[str, str]] = field(default_factory=list)
    kind: str = "general"  # picks a fitting system prompt: code, math, writing or general


_CODE_OPENERS = (
    "",
    "",
    "",
    "Quick Python question.",
    "I'm fairly new to Python, so bear with me.",
    "Hi! I'm writing a small internal tool.",
    "Python 3.11 here.",
    "This is for a data-cleaning script at work.",
    "Prepping for an interview and want to get this right.",
    "hey",
    "Context: I maintain a small Flask app for our team.",
    "I've been going around in circles on this.",
    "Working on a side project over the weekend.",
    "Our analyst asked me for this and I'm not a Python person.",
)
_CODE_CONSTRAINTS = (
    "I'd rather not pull in pandas for something this small.",
    "It has to run on Python 3.9 because of our servers.",
    "Please keep it readable, the rest of my team is new to Python.",
    "The input can get to around {n:,} items, so nothing quadratic please.",
    "Type hints would be nice.",
    "Standard library only, we can't add dependencies easily.",
    "Could you also show how to call it?",
    "Bonus points if it's easy to unit test.",
)
_JS_OPENERS = (
    "",
    "",
    "Node 20 here.",
    "Quick JS question.",
    "Frontend dev, mostly React.",
    "hey",
    "Working on a small browser extension.",
)
_JS_CONSTRAINTS = (
    "No lodash please.",
    "It needs to work in current Chrome and Safari.",
    "TypeScript-friendly if possible.",
    "Could you also show how to call it?",
    "Vanilla JS only.",
)
_CODE_INTROS = (
    "Here's a straightforward way to do it:",
    "You only need the standard library for this:",
    "Sure, here's a version that keeps things simple:",
    "This comes up a lot; a small function does the job:",
    "Here's one way, with a short explanation after the code:",
    "You can do it in a few lines:",
)
_CODE_ASIDES = (
    "Nothing fancy needed here.",
    "There are a few ways to do this; this one is the easiest to read.",
    "This avoids any extra dependencies.",
)
_CODE_CLOSINGS = (
    "",
    "",
    "Let me know if your real data has missing or malformed fields and I can add handling for that.",
    "If you paste a few real rows I can double-check the edge cases.",
    "Happy to turn this into a small CLI if that's useful.",
    "If this ends up in a hot loop, it's worth timing it with `timeit` on your real data first.",
)
_THANKS = (
    ("Perfect, thank you!", "Glad it helped! Good luck."),
    ("that works, thanks a lot 🙏", "You're welcome! Feel free to come back any time."),
    ("Great, that's exactly what I needed.", "Great to hear!"),
    ("thx!!", "Any time 🙂"),
    ("Thanks, really appreciate it.", "My pleasure. Let me know how it turns out."),
)


def _code_prompt(
    rng: random.Random,
    task: str,
    context: Sequence[str] = (),
    openers: Sequence[str] = _CODE_OPENERS,
    constraints: Sequence[str] = _CODE_CONSTRAINTS,
) -> str:
    parts = [_pick(rng, openers)]
    if context and rng.random() < 0.6:
        parts.append(_pick(rng, context))
    parts.append(task)
    parts += [c.format(n=rng.choice((5_000, 20_000, 250_000, 2_000_000))) for c in _some(rng, constraints, 0, 2)]
    return " ".join(p for p in parts if p)


def _code_answer(rng: random.Random, lang: str, code: str, bullets: Sequence[str], extra: str = "") -> str:
    parts = [_pick(rng, _CODE_INTROS), _fence(lang, code)]
    if lang == "python" and rng.random() < 0.3:
        parts.insert(1, _pick(rng, _CODE_ASIDES))
    chosen = _some(rng, bullets, 2, 4)
    if rng.random() < 0.5:
        parts.append("A few notes:\n" + "\n".join(f"- {b}" for b in chosen))
    else:
        parts.append(" ".join(chosen))
    if extra:
        parts.append(extra)
    parts.append(_pick(rng, _CODE_CLOSINGS))
    return "\n\n".join(p for p in parts if p)


@dataclass(frozen=True)
class _Domain:
    plural: str
    singular: str
    value: str
    key: str
    keys: tuple[str, ...]
    lo: float
    hi: float
    decimals: int
    context: tuple[str, ...]

    def rows(self, rng: random.Random, n: int) -> list[dict[str, Any]]:
        base = rng.randint(100, 8000)
        out = []
        for i in range(n):
            v = round(rng.uniform(self.lo, self.hi), self.decimals)
            out.append({"id": base + i, self.key: _pick(rng, self.keys), self.value: v if self.decimals else int(v)})
        return out

    @property
    def human(self) -> str:
        """The value's name in prose: `temperature_c` is "temperature", `nightly_price` is "nightly price"."""
        for unit in ("_c", "_km", "_kg", "_minutes"):
            if self.value.endswith(unit):
                return self.value.removesuffix(unit).replace("_", " ")
        return self.value.replace("_", " ")


_DOMAINS = (
    _Domain(
        "orders",
        "order",
        "total",
        "region",
        ("north", "south", "east", "west", "central"),
        12,
        480,
        2,
        ("Our web shop exports the day's orders as JSON every night.", "The orders come in from a payment webhook."),
    ),
    _Domain(
        "employees",
        "employee",
        "salary",
        "department",
        ("engineering", "sales", "support", "finance", "legal"),
        42000,
        165000,
        0,
        ("HR gave me an export from the payroll system.", "I'm building a small report for our CFO."),
    ),
    _Domain(
        "readings",
        "reading",
        "temperature_c",
        "site",
        ("roof", "basement", "lab_2", "cold_room", "loading_dock"),
        -4,
        31,
        1,
        ("We log sensor readings from a few Raspberry Pis.", "The data comes off an MQTT broker."),
    ),
    _Domain(
        "invoices",
        "invoice",
        "amount_due",
        "customer",
        ("acme", "globex", "initech", "umbrella", "hooli"),
        80,
        9500,
        2,
        ("Accounting sends me the open invoices every Monday.", "This is for a dunning reminder job."),
    ),
    _Domain(
        "flights",
        "flight",
        "delay_minutes",
        "airline",
        ("TAP", "KLM", "Iberia", "Finnair", "Aer Lingus"),
        0,
        240,
        0,
        ("I scraped departure boards for a hobby project.", "It's for a dashboard at the travel agency I work at."),
    ),
    _Domain(
        "books",
        "book",
        "pages",
        "genre",
        ("mystery", "history", "sci-fi", "poetry", "biography"),
        96,
        880,
        0,
        ("I'm cataloguing my reading list.", "Our library volunteers keep the inventory in a JSON file."),
    ),
    _Domain(
        "tickets",
        "ticket",
        "hours_open",
        "priority",
        ("low", "medium", "high", "urgent"),
        1,
        300,
        0,
        ("We pull support tickets from the helpdesk API.", "My manager wants a weekly SLA summary."),
    ),
    _Domain(
        "listings",
        "listing",
        "nightly_price",
        "neighborhood",
        ("Alfama", "Baixa", "Belém", "Graça", "Estrela"),
        45,
        390,
        0,
        ("I'm analysing short-term rentals in Lisbon.", "The listings come from a CSV a friend shared."),
    ),
    _Domain(
        "workouts",
        "workout",
        "distance_km",
        "activity",
        ("run", "ride", "swim", "hike"),
        1,
        85,
        1,
        ("I exported my training log from my watch.", "It's for a little fitness tracker I'm writing."),
    ),
    _Domain(
        "shipments",
        "shipment",
        "weight_kg",
        "carrier",
        ("DHL", "UPS", "FedEx", "PostNL", "DPD"),
        0.3,
        42,
        1,
        ("The warehouse system dumps shipments to JSON.", "We're comparing carrier costs this quarter."),
    ),
    _Domain(
        "students",
        "student",
        "score",
        "class_name",
        ("7A", "7B", "8A", "8C", "9B"),
        35,
        100,
        0,
        ("I teach maths and keep marks in a spreadsheet.", "The school's grading tool exports JSON."),
    ),
    _Domain(
        "products",
        "product",
        "stock",
        "category",
        ("garden", "kitchen", "toys", "office", "outdoor"),
        0,
        640,
        0,
        ("It's for our inventory reorder script.", "We sell on two marketplaces and sync stock nightly."),
    ),
)


def _py_rows(rows: list[dict[str, Any]]) -> str:
    return "[\n" + "".join(f"    {r!r},\n" for r in rows) + "]"


def _sig(rng: random.Random, name: str, params: str, typed: str, returns: str) -> str:
    """A def line, with type hints half of the time."""
    return f"def {name}({typed}) -> {returns}:" if rng.random() < 0.5 else f"def {name}({params}):"


def _py_filter(rng: random.Random) -> _Task:
    d = _pick(rng, _DOMAINS)
    p, s, v = d.plural, d.singular, d.value
    rows = d.rows(rng, rng.randint(4, 6))
    t = sorted(r[v] for r in rows)[len(rows) // 2]
    fn = _pick(rng, (f"filter_{p}", f"{p}_at_least", f"select_{p}"))
    arg = f"min_{v}"
    code = _sig(rng, fn, f"{p}, {arg}", f"{p}: list[dict], {arg}: float", "list[dict]")
    code += f'\n    return [{s} for {s} in {p} if {s}["{v}"] >= {arg}]'
    kept = [r for r in rows if r[v] >= t]
    code += f"\n\n\n{p} = {_py_rows(rows)}\nprint({fn}({p}, {_num(t)}))\n# {kept!r}"
    task = _fill(
        rng,
        (
            "I have a list of {p} as dicts, each with `id`, `{k}` and `{v}`. How do I keep only the ones where `{v}` is "
            "at least {t}?",
            "how do i filter a list of dicts by a number field in python? i want the {p} with {h} >= {t}",
            "I need a function that takes a list of {s} records plus a minimum {h} and returns only the matching {p}.",
        ),
        p=p,
        s=s,
        v=v,
        k=d.key,
        h=d.human,
        t=_num(t),
    )
    bullets = (
        f"The list comprehension walks the {p} once and keeps each {s} whose `{v}` passes the check, so it's O(n).",
        f"`>=` makes the threshold inclusive; use `>` if a {s} at exactly {_num(t)} should be dropped.",
        "The input list isn't modified, you get a new list back.",
        f'If some records may lack a `{v}` key, use `{s}.get("{v}", 0)` instead of indexing.',
    )
    ranked = sorted(kept, key=lambda r: r[v], reverse=True)
    follow = [
        (
            f"How would I sort the result by {d.human}, highest first?",
            "Wrap it in `sorted` with a key function:\n\n"
            + _fence(
                "python",
                f'top = sorted({fn}({p}, {_num(t)}), key=lambda {s}: {s}["{v}"], reverse=True)\n'
                f"# ids in order: {[r['id'] for r in ranked]}",
            )
            + "\n\n`sorted` is stable, so ties keep their original order.",
        ),
        (
            f"What if some {p} are missing the {d.human} field?",
            "Then indexing raises `KeyError`. Either skip them explicitly or treat a missing value as 0:\n\n"
            + _fence("python", f'[{s} for {s} in {p} if {s}.get("{v}") is not None and {s}["{v}"] >= {arg}]')
            + f"\n\nI'd prefer skipping over defaulting to 0, since a missing {d.human} usually means bad data "
            "rather than a real zero.",
        ),
    ]
    return _Task(_code_prompt(rng, task, d.context), _code_answer(rng, "python", code, bullets), follow)


def _py_group_sum(rng: random.Random) -> _Task:
    d = _pick(rng, _DOMAINS)
    p, s, v, k = d.plural, d.singular, d.value, d.key
    rows = d.rows(rng, rng.randint(5, 7))
    totals: dict[str, float] = defaultdict(float)
    for r in rows:
        totals[r[k]] += r[v]
    result = {key: round(val, 2) if d.decimals else int(val) for key, val in totals.items()}
    fn = _pick(rng, (f"total_{v}_by_{k}", f"sum_by_{k}", f"{v}_per_{k}"))
    zero = "float" if d.decimals else "int"
    code = (
        f"from collections import defaultdict\n\n\n{_sig(rng, fn, p, f'{p}: list[dict]', f'dict[str, {zero}]')}\n"
        f'    totals = defaultdict({zero})\n    for {s} in {p}:\n        totals[{s}["{k}"]] += {s}["{v}"]\n'
        f"    return dict(totals)\n\n\n{p} = {_py_rows(rows)}\nprint({fn}({p}))\n# {result!r}"
    )
    task = _fill(
        rng,
        (
            "How can I add up `{v}` per `{k}` from a list of dicts? Basically a GROUP BY {k} with SUM({v}), in plain Python.",
            "I've got {p} with a {k} and a {h}. I want a dict mapping each {k} to the total {h}.",
            "whats the cleanest way to sum {h} grouped by {k} in python without pandas",
        ),
        p=p,
        v=v,
        k=k,
        h=d.human,
    )
    bullets = (
        f"`defaultdict({zero})` starts every new {k} at zero, so there's no need to check whether the key exists.",
        f"It's a single pass over the {p}, O(n) time and O(number of {k}s) memory.",
        "Converting to a plain `dict` at the end avoids surprises if a caller reads a missing key later.",
        f"If you need the {k}s sorted, `dict(sorted(totals.items()))` does it.",
        "Floating-point totals can show tiny rounding noise; round when you display them, not while summing.",
    )
    best = max(result, key=lambda key: result[key])
    follow = [
        (
            f"And how do I get the {k} with the highest total?",
            "Use `max` with a key on the result:\n\n"
            + _fence("python", f"totals = {fn}({p})\nbest = max(totals, key=totals.get)\nprint(best)  # {best!r}")
            + f"\n\nWith the sample data that's `{best}` with {_num(result[best])}.",
        )
    ]
    return _Task(_code_prompt(rng, task, d.context), _code_answer(rng, "python", code, bullets), follow)


def _py_top_k(rng: random.Random) -> _Task:
    d = _pick(rng, _DOMAINS)
    p, s, v = d.plural, d.singular, d.value
    rows = d.rows(rng, rng.randint(6, 8))
    k = rng.randint(2, 3)
    top = sorted(rows, key=lambda r: r[v], reverse=True)[:k]
    fn = _pick(rng, (f"top_{p}", f"largest_{p}", f"top_{k}_{p}_by_{v}"))
    code = (
        f"import heapq\n\n\ndef {fn}({p}, k={k}):\n"
        f'    return heapq.nlargest(k, {p}, key=lambda {s}: {s}["{v}"])\n\n\n'
        f'{p} = {_py_rows(rows)}\nfor {s} in {fn}({p}):\n    print({s}["id"], {s}["{v}"])\n'
        + "".join(f"# {r['id']} {r[v]}\n" for r in top)
    )
    task = _fill(
        rng,
        (
            "What's the most efficient way to get the {k} {p} with the highest {h} from a big list of dicts?",
            "Need the top {k} {p} by {h}. Is sorting the whole list the best option?",
            "I want to show the {k} biggest {p} (by `{v}`) on a dashboard card.",
        ),
        k=k,
        p=p,
        h=d.human,
        v=v,
    )
    bullets = (
        "`heapq.nlargest` keeps only k items in a heap, so it's O(n log k) instead of O(n log n) for a full sort.",
        f"For small lists `sorted({p}, key=..., reverse=True)[:k]` is just as good and maybe clearer.",
        "Ties are returned in the order they appear in the input.",
        f"Use `heapq.nsmallest` with the same key for the bottom {k}.",
    )
    return _Task(_code_prompt(rng, task, d.context), _code_answer(rng, "python", code.rstrip("\n"), bullets))


def _py_csv_total(rng: random.Random) -> _Task:
    d = _pick(rng, _DOMAINS)
    rows = d.rows(rng, rng.randint(3, 5))
    total = sum(r[d.value] for r in rows)
    fname = f"{d.plural}_{rng.choice(('export', 'q3', 'latest', 'raw'))}.csv"
    csv_text = f"id,{d.key},{d.value}\n" + "".join(f"{r['id']},{r[d.key]},{r[d.value]}\n" for r in rows)
    fn = _pick(rng, (f"sum_{d.value}", f"total_{d.value}", "column_total"))
    code = (
        f'import csv\n\n\ndef {fn}(path, column="{d.value}"):\n    total = 0.0\n'
        f'    with open(path, newline="", encoding="utf-8") as f:\n        for row in csv.DictReader(f):\n'
        f"            value = row[column].strip()\n            if value:\n                total += float(value)\n"
        f'    return total\n\n\nprint({fn}("{fname}"))  # {_num(round(total, 2))}'
    )
    task = _fill(
        rng,
        (
            "I have a CSV like this:\n\n{csv}\nHow do I get the total of the `{v}` column in Python?",
            "Simple one: read `{f}` and add up the {h} column. The file looks like\n\n{csv}",
            "What's the right way to sum a column from a CSV file with the csv module? Mine is:\n\n{csv}",
        ),
        csv=_fence("", csv_text.rstrip()),
        v=d.value,
        f=fname,
        h=d.human,
    )
    bullets = (
        "`csv.DictReader` uses the header row, so you refer to the column by name instead of by index.",
        '`newline=""` is what the csv docs recommend; it keeps quoted fields with line breaks intact.',
        'Empty cells are skipped instead of crashing on `float("")`.',
        "The file is read row by row, so it works for files much bigger than memory.",
        'If your file comes from Excel it may start with a BOM; use `encoding="utf-8-sig"` then.',
    )
    return _Task(_code_prompt(rng, task), _code_answer(rng, "python", code, bullets))


def _py_dataclass(rng: random.Random) -> _Task:
    d = _pick(rng, _DOMAINS)
    cls = d.singular.capitalize()
    typ = "float" if d.decimals else "int"
    row = d.rows(rng, 1)[0]
    code = (
        f"from dataclasses import dataclass\n\n\n@dataclass(frozen=True)\nclass {cls}:\n    id: int\n"
        f"    {d.key}: str\n    {d.value}: {typ}\n\n    def __post_init__(self):\n"
        f"        if self.{d.value} < {_num(d.lo) if d.lo < 0 else 0}:\n"
        f'            raise ValueError(f"{d.value} out of range: {{self.{d.value}}}")\n\n'
        f"    @classmethod\n    def from_dict(cls, data):\n"
        f'        return cls(id=int(data["id"]), {d.key}=str(data["{d.key}"]), {d.value}={typ}(data["{d.value}"]))'
        f"\n\n\n{d.singular} = {cls}.from_dict({row!r})\nprint({d.singular})\n"
        f"# {cls}(id={row['id']}, {d.key}={row[d.key]!r}, {d.value}={row[d.value]!r})"
    )
    task = _fill(
        rng,
        (
            "Should I use a dataclass instead of passing dicts around for my {p}? Could you show what that looks like?",
            "Can you write a small dataclass for a {s} (id, {k}, {v}) with some validation?",
            "I keep getting KeyErrors passing {s} dicts around. How would I model a {s} properly?",
        ),
        p=d.plural,
        s=d.singular,
        k=d.key,
        v=d.value,
    )
    bullets = (
        "A dataclass gives you `__init__`, `__repr__` and `__eq__` for free and documents the fields in one place.",
        "`frozen=True` makes instances immutable and hashable, so they can go into sets or be dict keys.",
        "`__post_init__` is the natural place for validation, so a bad record fails where it's created.",
        "`from_dict` keeps the parsing of raw input in one spot instead of scattering `int(...)` calls around.",
        "Typos in field names now fail loudly instead of silently creating a new dict key.",
    )
    return _Task(_code_prompt(rng, task, d.context), _code_answer(rng, "python", code, bullets))


_DEDUPE_KINDS = (
    (
        "emails",
        "email addresses",
        ["Ana@Example.com", "bo@example.com", "ana@example.com", "cy@example.org", "BO@example.com", "dee@example.net"],
    ),
    ("usernames", "usernames", ["mkim", "JDoe", "mkim", "asmith", "jdoe", "lee_w", "ASmith"]),
    ("tags", "tags", ["python", "Django", "sql", "django", "Python", "flask", "SQL", "pytest"]),
    ("skus", "product SKUs", ["AB-100", "ab-100", "CD-220", "EF-310", "cd-220", "GH-400"]),
)


def _py_dedupe(rng: random.Random) -> _Task:
    name, human, items = _pick(rng, _DEDUPE_KINDS)
    items = rng.sample(items, len(items))
    fold = rng.random() < 0.6
    seen: set[str] = set()
    out = []
    for x in items:
        key = x.casefold() if fold else x
        if key not in seen:
            seen.add(key)
            out.append(x)
    key_expr = "item.casefold()" if fold else "item"
    fn = _pick(rng, (f"unique_{name}", "dedupe", "unique_in_order"))
    code = (
        f"def {fn}(items):\n    seen = set()\n    result = []\n    for item in items:\n        key = {key_expr}\n"
        f"        if key not in seen:\n            seen.add(key)\n            result.append(item)\n    return result\n\n\n"
        f"print({fn}({items!r}))\n# {out!r}"
    )
    case = " ignoring case" if fold else ""
    task = _fill(
        rng,
        (
            "How do I remove duplicates from a list of {h}{c} but keep the original order? `set()` scrambles it.",
            "Dedupe a python list of {h}{c}, first occurrence wins, order preserved. What's the idiom?",
            "I have duplicate {h} coming from two systems. I need each one once{c}, in the order they first appeared.",
        ),
        h=human,
        c=case,
    )
    bullets = (
        "The set gives O(1) membership checks, so the whole thing is O(n).",
        "The first occurrence wins and keeps its original spelling; later duplicates are dropped.",
        "`casefold()` is a stronger `lower()` that also handles cases like the German ß."
        if fold
        else "If you don't need a custom key, `list(dict.fromkeys(items))` does the same in one line.",
        "This works for any hashable items, not just strings.",
    )
    return _Task(_code_prompt(rng, task), _code_answer(rng, "python", code, bullets))


def _py_batched(rng: random.Random) -> _Task:
    size = rng.randint(2, 4)
    n = rng.randint(7, 11)
    what = _pick(rng, ("user ids", "API requests", "rows to insert", "file paths", "SMS messages", "image URLs"))
    data = list(range(1, n + 1))
    chunks = [data[i : i + size] for i in range(0, n, size)]
    fn = _pick(rng, ("batched", "chunks", "in_batches"))
    code = (
        f"from itertools import islice\n\n\ndef {fn}(iterable, size):\n    it = iter(iterable)\n"
        f"    while batch := list(islice(it, size)):\n        yield batch\n\n\n"
        f"for batch in {fn}(range(1, {n + 1}), {size}):\n    print(batch)\n" + "".join(f"# {c}\n" for c in chunks)
    )
    task = _fill(
        rng,
        (
            "I need to send {w} to an API in batches of {s}. How do I split a list into chunks in Python?",
            "What's a clean way to process {w} {s} at a time? The source might be a generator, not a list.",
            "chunk an iterable into lists of size {s} python",
        ),
        w=what,
        s=size,
    )
    bullets = (
        "It works on any iterable, including generators, because it never calls `len()` or slices the input.",
        "The last batch is shorter when the length isn't a multiple of the size.",
        "On Python 3.12+ you can use `itertools.batched`, which does the same thing and yields tuples.",
        "The walrus operator (`:=`) needs Python 3.8 or newer.",
        f"Memory stays flat: only one batch of {size} items exists at a time.",
    )
    return _Task(_code_prompt(rng, task), _code_answer(rng, "python", code.rstrip("\n"), bullets))


def _py_retry(rng: random.Random) -> _Task:
    attempts, base = rng.randint(3, 6), _pick(rng, (0.2, 0.5, 1.0, 2.0))
    exc = _pick(rng, ("ConnectionError", "TimeoutError", "OSError"))
    use = _pick(
        rng,
        (
            "a flaky payment API",
            "our S3 uploads",
            "an internal geocoding service",
            "a rate-limited CRM API",
            "the weather endpoint we poll",
            "SMTP sends that sometimes time out",
        ),
    )
    waits = [base * 2**i for i in range(attempts - 1)]
    code = (
        f"import functools\nimport random\nimport time\n\n\ndef retry(attempts={attempts}, base_delay={base}, "
        f"exceptions=({exc},)):\n    def decorator(func):\n        @functools.wraps(func)\n"
        f"        def wrapper(*args, **kwargs):\n            for attempt in range(attempts):\n                try:\n"
        f"                    return func(*args, **kwargs)\n                except exceptions:\n"
        f"                    if attempt == attempts - 1:\n                        raise\n"
        f"                    delay = base_delay * 2 ** attempt\n"
        f"                    time.sleep(delay + random.uniform(0, delay / 2))\n        return wrapper\n"
        f"    return decorator"
    )
    task = _fill(
        rng,
        (
            "How do I write a retry decorator with exponential backoff? It's for {u}, which fails now and then with {e}.",
            "Calls to {u} fail randomly. I'd like to retry up to {a} times with growing waits. Decorator?",
            "Can you show a simple retry-with-backoff decorator (no tenacity) for {u}?",
        ),
        u=use,
        e=exc,
        a=attempts,
    )
    bullets = (
        f"With these settings the waits are about {', '.join(_num(w) for w in waits)} seconds, plus jitter.",
        "The random jitter stops many clients from retrying in lockstep after an outage.",
        "The last failure is re-raised, so callers still see the real error.",
        "`functools.wraps` keeps the wrapped function's name and docstring, which helps with logging.",
        f"Only {exc} is retried; a bug like a `KeyError` fails immediately, which is what you want.",
        "For anything bigger, the `tenacity` library covers this and more.",
    )
    return _Task(_code_prompt(rng, task), _code_answer(rng, "python", code, bullets))


def _flatten(d: dict[str, Any], sep: str, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{sep}{k}" if prefix else k
        out.update(_flatten(v, sep, key) if isinstance(v, dict) else {key: v})
    return out


def _py_flatten(rng: random.Random) -> _Task:
    sep = _pick(rng, (".", "_", "/", "__"))
    city = _pick(rng, CITIES)
    nested = _pick(
        rng,
        (
            {
                "db": {"host": "localhost", "port": rng.choice((5432, 3306, 6543))},
                "debug": rng.random() < 0.5,
                "cache": {"ttl": rng.choice((60, 300, 900)), "backend": {"name": "redis"}},
            },
            {"user": {"name": _full_name(rng), "address": {"city": city, "zip": _digits(rng, 5)}}, "active": True},
            {"model": {"name": "resnet50", "layers": rng.choice((18, 34, 50))}, "train": {"lr": 0.001, "epochs": 20}},
        ),
    )
    flat = _flatten(nested, sep)
    fn = _pick(rng, ("flatten", "flatten_dict", "to_flat_keys"))
    code = (
        f'def {fn}(d, sep="{sep}", prefix=""):\n    out = {{}}\n    for key, value in d.items():\n'
        f'        full = f"{{prefix}}{{sep}}{{key}}" if prefix else key\n        if isinstance(value, dict):\n'
        f"            out.update({fn}(value, sep, full))\n        else:\n            out[full] = value\n"
        f"    return out\n\n\nprint({fn}({nested!r}))\n# {flat!r}"
    )
    task = _fill(
        rng,
        (
            "How can I flatten a nested dict into keys joined with `{s}`? For example {n}",
            "I need to turn a nested JSON config into flat `{s}`-separated keys so I can diff two configs.",
            "flatten nested dictionary python, keys joined by '{s}', any depth",
        ),
        s=sep,
        n=json.dumps(nested),
    )
    bullets = (
        "It recurses into every value that is itself a dict, so any depth works.",
        "Lists are kept as values; tell me if you also want `key.0`, `key.1` style indexes.",
        f"If a key already contains `{sep}` the result becomes ambiguous, so pick a separator your keys never use.",
        "Python's default recursion limit (1000) is far deeper than any sane config.",
    )
    return _Task(_code_prompt(rng, task), _code_answer(rng, "python", code, bullets))


def _py_word_freq(rng: random.Random) -> _Task:
    k = rng.randint(2, 4)
    text = " ".join(_some(rng, _SENTENCE_BANK, 2, 3))
    words = re.findall(r"[a-z']+", text.lower())
    top = Counter(words).most_common(k)
    code = (
        f"import re\nfrom collections import Counter\n\n\ndef top_words(text, k={k}):\n"
        f'    words = re.findall(r"[a-z\']+", text.lower())\n    return Counter(words).most_common(k)\n\n\n'
        f"text = {text!r}\nprint(top_words(text))\n# {top!r}"
    )
    task = _fill(
        rng,
        (
            "How do I count the {k} most common words in a string, ignoring case and punctuation?",
            "word frequency in python? need top {k} words of some text",
            "I want to find the {k} most frequent words in customer comments. What's the simplest approach?",
        ),
        k=k,
    )
    bullets = (
        'The regex keeps letters and apostrophes, so "don\'t" stays one word and punctuation disappears.',
        "`Counter.most_common` sorts by count and keeps first-seen order for ties.",
        'For real text you\'d usually drop stop words like "the" and "and" first.',
        "Non-English text needs a broader pattern such as `\\w+`, since `[a-z]` only matches ASCII letters.",
    )
    return _Task(_code_prompt(rng, task), _code_answer(rng, "python", code, bullets))


def _py_log_levels(rng: random.Random) -> _Task:
    services = ("payment-worker", "auth", "scheduler", "mailer", "search-indexer", "billing-api")
    levels = ("INFO", "INFO", "INFO", "WARNING", "ERROR", "DEBUG")
    msgs = (
        "request finished in {n} ms",
        "retrying upstream call (attempt {a})",
        "queue depth at {n}",
        "timeout after {a}s",
        "user session refreshed",
        "cache miss for key order:{n}",
    )
    lines = []
    for i in range(rng.randint(5, 7)):
        t = (
            f"2026-{rng.randint(9, 10):02d}-{rng.randint(10, 28):02d} {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:"
            f"{rng.randint(0, 59):02d}"
        )
        msg = _pick(rng, msgs).format(n=rng.randint(3, 4000), a=rng.randint(2, 5))
        lines.append(f"{t} {_pick(rng, levels)} [{_pick(rng, services)}] {msg}")
        del i
    counts = Counter(line.split()[2] for line in lines)
    code = (
        f'import re\nfrom collections import Counter\n\nLINE = re.compile(r"^(\\S+ \\S+) (\\w+) \\[([^\\]]+)\\] (.*)$")\n\n\n'
        f"def count_levels(lines):\n    counts = Counter()\n    for line in lines:\n        m = LINE.match(line)\n"
        f'        if m:\n            counts[m.group(2)] += 1\n    return counts\n\n\nwith open("app.log", encoding="utf-8") as f:\n'
        f"    print(count_levels(f))\n# {dict(counts)!r}"
    )
    sample = "\n".join(lines)
    task = _fill(
        rng,
        (
            "Our logs look like this:\n\n{s}\n\nHow can I count lines per log level with Python?",
            "Can you give me a regex to parse lines like these and count how many are ERROR vs WARNING etc.?\n\n{s}",
        ),
        s=_fence("", sample),
    )
    bullets = (
        "The regex captures timestamp, level, service and message, so you can reuse it for other reports.",
        "Lines that don't match (stack traces, for example) are skipped instead of crashing.",
        "Iterating over the file object reads it line by line, which is fine for multi-GB logs.",
        "`m.group(3)` gives you the service name if you want counts per service too.",
    )
    return _Task(_code_prompt(rng, task), _code_answer(rng, "python", code, bullets))


def _merge(intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(intervals):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def _py_merge_intervals(rng: random.Random) -> _Task:
    what = _pick(
        rng, ("meeting room bookings", "machine downtime windows", "shift schedules", "server maintenance slots")
    )
    iv = []
    for _ in range(rng.randint(4, 6)):
        a = rng.randint(8, 17) * 60 + rng.choice((0, 15, 30, 45))
        iv.append((a, a + rng.choice((30, 45, 60, 90, 120))))
    merged = _merge(iv)
    code = (
        "def merge_intervals(intervals):\n    merged = []\n    for start, end in sorted(intervals):\n"
        "        if merged and start <= merged[-1][1]:\n            merged[-1][1] = max(merged[-1][1], end)\n"
        "        else:\n            merged.append([start, end])\n    return merged\n\n\n"
        f"# minutes since midnight\nprint(merge_intervals({iv!r}))\n# {[list(m) for m in merged]!r}"
    )
    task = _fill(
        rng,
        (
            "I have {w} as (start, end) pairs in minutes. How do I merge the overlapping ones?",
            "Classic problem I think: merge overlapping intervals. Mine are {w}, e.g. {iv}.",
        ),
        w=what,
        iv=iv,
    )
    bullets = (
        "Sorting by start time first means each interval can only overlap the last merged one.",
        "Total cost is O(n log n) for the sort plus one linear pass.",
        "`start <= end` of the previous one also merges intervals that just touch; use `<` to keep them separate.",
        f"With your sample, {len(iv)} intervals collapse into {len(merged)}.",
    )
    return _Task(_code_prompt(rng, task), _code_answer(rng, "python", code, bullets))


def _py_moving_average(rng: random.Random) -> _Task:
    w = rng.randint(3, 5)
    what = _pick(
        rng, ("daily sales", "CPU usage samples", "heart-rate readings", "page views per hour", "stock prices")
    )
    data = [rng.randint(10, 99) for _ in range(rng.randint(w + 2, w + 5))]
    avgs = [round(sum(data[i - w + 1 : i + 1]) / w, 2) for i in range(w - 1, len(data))]
    code = (
        f"from collections import deque\n\n\ndef moving_average(values, window={w}):\n    buf = deque(maxlen=window)\n"
        f"    total = 0\n    for x in values:\n        if len(buf) == window:\n            total -= buf[0]\n"
        f"        buf.append(x)\n        total += x\n        if len(buf) == window:\n"
        f"            yield round(total / window, 2)\n\n\nprint(list(moving_average({data!r})))\n# {avgs!r}"
    )
    task = _fill(
        rng,
        (
            "How do I compute a {w}-point moving average over a stream of {x} without numpy?",
            "Need a rolling mean (window {w}) for {x}. Values arrive one at a time.",
        ),
        w=w,
        x=what,
    )
    bullets = (
        "The running total makes each step O(1) instead of re-summing the window.",
        f"Nothing is emitted until the first {w} values have arrived.",
        "`deque(maxlen=...)` drops the oldest value automatically.",
        "With floats, the running total can drift slightly over millions of values; re-sum the window now and then.",
    )
    return _Task(_code_prompt(rng, task), _code_answer(rng, "python", code, bullets))


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def _py_slugify(rng: random.Random) -> _Task:
    titles = [_pick(rng, _HEADLINES).format(city=_pick(rng, CITIES), n=rng.randint(3, 12)) for _ in range(2)]
    code = (
        "import re\nimport unicodedata\n\n\ndef slugify(title):\n"
        '    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()\n'
        '    return re.sub(r"[^a-z0-9]+", "-", ascii_title.lower()).strip("-")\n\n\n'
        + "".join(f"print(slugify({t!r}))\n# {_slug(_ascii_fold(t))}\n" for t in titles)
    )
    task = _fill(
        rng,
        (
            'How do I turn blog post titles into URL slugs? e.g. "{t}"',
            "I need URL-safe slugs from article titles (accents too). Example title: {t}",
        ),
        t=titles[0],
    )
    bullets = (
        "NFKD normalization splits accented letters into a base letter plus an accent, and the accent is dropped.",
        "Any run of characters that isn't a letter or digit becomes a single hyphen.",
        "Leading and trailing hyphens are stripped.",
        "Check for collisions before saving; two titles can produce the same slug.",
    )
    return _Task(_code_prompt(rng, task), _code_answer(rng, "python", code.rstrip("\n"), bullets))


@dataclass(frozen=True)
class _Schema:
    parent: str
    label: str
    group: str
    child: str
    fk: str
    amount: str
    when: str
    story: str


_SCHEMAS = (
    _Schema("customers", "name", "country", "orders", "customer_id", "total", "ordered_at", "an online shop"),
    _Schema("members", "full_name", "city", "loans", "member_id", "fine_amount", "borrowed_at", "a library system"),
    _Schema("accounts", "company", "plan", "payments", "account_id", "amount", "paid_at", "our SaaS billing database"),
    _Schema("drivers", "name", "depot", "deliveries", "driver_id", "distance_km", "delivered_at", "a courier company"),
    _Schema("authors", "pen_name", "country", "articles", "author_id", "word_count", "published_at", "a news site"),
    _Schema("stores", "store_name", "region", "sales", "store_id", "revenue", "sold_at", "a chain of bike shops"),
    _Schema("clinics", "clinic_name", "district", "appointments", "clinic_id", "fee", "scheduled_at", "a dental group"),
)
_MONTH_EXPR = {
    "PostgreSQL": "date_trunc('month', {w})",
    "SQLite": "strftime('%Y-%m', {w})",
    "MySQL": "DATE_FORMAT({w}, '%Y-%m')",
}


def _sql_top_n(rng: random.Random, s: _Schema, dialect: str) -> tuple[str, str, list[str]]:
    n, year = rng.randint(3, 20), rng.randint(2022, 2026)
    q = (
        f"SELECT p.id, p.{s.label}, SUM(c.{s.amount}) AS total_{s.amount}\nFROM {s.parent} AS p\n"
        f"JOIN {s.child} AS c ON c.{s.fk} = p.id\nWHERE c.{s.when} >= '{year}-01-01' AND c.{s.when} < '{year + 1}-01-01'\n"
        f"GROUP BY p.id, p.{s.label}\nORDER BY total_{s.amount} DESC\nLIMIT {n};"
    )
    ask = f"the top {n} {s.parent} by total {s.amount.replace('_', ' ')} in {year}"
    notes = [
        f"The date filter uses a half-open range, so every timestamp on December 31, {year} is included.",
        f"Grouping by `p.id` as well as the {s.label} keeps two {s.parent} with the same {s.label} apart.",
        f"{s.parent.capitalize()} without any {s.child} that year don't appear; use a LEFT JOIN and COALESCE if you "
        "need them with 0.",
        f"An index on `{s.child}({s.fk}, {s.when})` helps a lot once the table grows.",
    ]
    return ask, q, notes


def _sql_monthly(rng: random.Random, s: _Schema, dialect: str) -> tuple[str, str, list[str]]:
    year = rng.randint(2023, 2026)
    month = _MONTH_EXPR[dialect].format(w=s.when)
    q = (
        f"SELECT {month} AS month, COUNT(*) AS {s.child}_count\nFROM {s.child}\n"
        f"WHERE {s.when} >= '{year}-01-01' AND {s.when} < '{year + 1}-01-01'\nGROUP BY 1\nORDER BY 1;"
    )
    ask = f"the number of {s.child} per month in {year}"
    notes = [
        f"`{month.split('(')[0]}` is the {dialect} way to bucket a timestamp by month.",
        "`GROUP BY 1` refers to the first selected column, which saves repeating the expression.",
        "Months with no rows are missing from the output; join against a calendar table if you need zeros.",
        "Filtering on the raw column (not on the month expression) lets the database use an index.",
    ]
    return ask, q, notes


def _sql_missing(rng: random.Random, s: _Schema, dialect: str) -> tuple[str, str, list[str]]:
    d = _date_in(rng, rng.randint(2024, 2026)).isoformat()
    q = (
        f"SELECT p.id, p.{s.label}\nFROM {s.parent} AS p\nWHERE NOT EXISTS (\n    SELECT 1\n    FROM {s.child} AS c\n"
        f"    WHERE c.{s.fk} = p.id\n      AND c.{s.when} >= '{d}'\n)\nORDER BY p.{s.label};"
    )
    ask = f"all {s.parent} that have no {s.child} since {d}"
    notes = [
        "`NOT EXISTS` is safe with NULLs, unlike `NOT IN`, which returns nothing if the subquery yields a NULL.",
        f"The equivalent LEFT JOIN version is `LEFT JOIN {s.child} c ON ... WHERE c.id IS NULL`.",
        "Most planners turn this into an anti-join, which is fast with an index on the foreign key.",
    ]
    return ask, q, notes


def _sql_rank(rng: random.Random, s: _Schema, dialect: str) -> tuple[str, str, list[str]]:
    k, since = rng.randint(1, 5), _date_in(rng, rng.randint(2023, 2026)).isoformat()
    q = (
        f"WITH totals AS (\n    SELECT p.{s.group}, p.{s.label}, SUM(c.{s.amount}) AS total\n    FROM {s.parent} AS p\n"
        f"    JOIN {s.child} AS c ON c.{s.fk} = p.id\n    WHERE c.{s.when} >= '{since}'\n"
        f"    GROUP BY p.{s.group}, p.id, p.{s.label}\n),\nranked AS (\n"
        f"    SELECT *, RANK() OVER (PARTITION BY {s.group} ORDER BY total DESC) AS rnk\n    FROM totals\n)\n"
        f"SELECT {s.group}, {s.label}, total\nFROM ranked\nWHERE rnk <= {k}\nORDER BY {s.group}, rnk;"
    )
    ask = f"the top {k} {s.parent} in each {s.group} by total {s.amount.replace('_', ' ')} since {since}"
    notes = [
        "`RANK()` gives ties the same rank, so a group can return more rows than you asked for; "
        "`ROW_NUMBER()` never does.",
        "The window function runs after GROUP BY, which is why the totals live in a CTE first.",
        f"{dialect} supports window functions" + (" since 3.25." if dialect == "SQLite" else "."),
    ]
    return ask, q, notes


def _sql_latest(rng: random.Random, s: _Schema, dialect: str) -> tuple[str, str, list[str]]:
    cutoff = _date_in(rng, rng.randint(2022, 2026)).isoformat()
    q = (
        f"SELECT *\nFROM (\n    SELECT c.*,\n           ROW_NUMBER() OVER (PARTITION BY c.{s.fk} ORDER BY c.{s.when} DESC, "
        f"c.id DESC) AS rn\n    FROM {s.child} AS c\n    WHERE c.{s.when} >= '{cutoff}'\n) AS t\nWHERE rn = 1;"
    )
    ask = (
        f"only the most recent row of {s.child} for each {s.fk.removesuffix('_id')}, ignoring anything before {cutoff}"
    )
    notes = [
        "Ordering by `id` as a tie-breaker makes the result deterministic when two rows share a timestamp.",
        "In PostgreSQL, `DISTINCT ON` is a shorter alternative for the same thing.",
        "This reads the table once; a correlated subquery with MAX() per row can be much slower.",
    ]
    return ask, q, notes


def _sql_task(rng: random.Random) -> _Task:
    s, dialect = _pick(rng, _SCHEMAS), _pick(rng, tuple(_MONTH_EXPR))
    ask, query, notes = _pick(rng, (_sql_top_n, _sql_monthly, _sql_missing, _sql_rank, _sql_latest))(rng, s, dialect)
    schema = f"{s.parent}(id, {s.label}, {s.group})\n{s.child}(id, {s.fk}, {s.amount}, {s.when})"
    task = _fill(
        rng,
        (
            "I'm on {d} and have these tables for {st}:\n\n{sc}\n\nHow do I get {a}?",
            "SQL help please ({d}). Tables:\n{sc}\nI need {a}.",
            "Can you write a {d} query that returns {a}? Schema is\n\n{sc}",
        ),
        d=dialect,
        st=s.story,
        sc=_fence("", schema),
        a=ask,
    )
    extra = _some(
        rng,
        (
            f"The {s.child} table has about {rng.randint(2, 900) * 1000:,} rows.",
            "I'm still learning SQL, so a short explanation would help.",
            "This is for a dashboard query.",
            f"We're on {dialect} {rng.randint(8, 17)}.",
            "Performance matters a bit.",
        ),
        0,
        2,
    )
    task = " ".join([task, *extra])
    answer = _code_answer(rng, "sql", query, notes)
    follow = [
        (
            "Will this be slow on a big table?",
            "It depends mostly on indexes. For this query I'd start with:\n\n"
            + _fence("sql", f"CREATE INDEX idx_{s.child}_{s.fk}_{s.when} ON {s.child} ({s.fk}, {s.when});")
            + f"\n\nThen run `EXPLAIN` (or `EXPLAIN ANALYZE` on PostgreSQL) and check that {s.child} is read through the "
            "index instead of a full scan.",
        )
    ]
    return _Task(task, answer, follow)


_DEBOUNCE_USES = (
    ("a search box that calls our API on every keystroke", "#search", "input", "searchProducts"),
    ("saving a draft while the user types", "#editor", "input", "saveDraft"),
    ("recalculating a chart on window resize", "window", "resize", "redrawChart"),
    ("validating a username field", "#username", "input", "checkUsername"),
    ("filtering a long table as you type", "#filter", "keyup", "filterRows"),
    ("autosaving form settings", "#settings", "change", "persistSettings"),
    ("sending analytics when a slider moves", "#volume", "input", "trackVolume"),
)


def _js_debounce(rng: random.Random) -> tuple[str, str, list[str]]:
    wait = rng.randint(3, 16) * 50
    use, target, event, handler = _pick(rng, _DEBOUNCE_USES)
    element = "window" if target == "window" else f"document.querySelector('{target}')"
    code = (
        f"function debounce(fn, wait = {wait}) {{\n  let timer;\n  return function (...args) {{\n"
        f"    clearTimeout(timer);\n    timer = setTimeout(() => fn.apply(this, args), wait);\n  }};\n}}\n\n"
        f"const {handler}Debounced = debounce({handler}, {wait});\n"
        f"{element}.addEventListener('{event}', {handler}Debounced);"
    )
    notes = [
        f"Every call resets the timer, so `{handler}` only runs once things have been quiet for {wait} ms.",
        "Using a regular `function` for the wrapper keeps `this` working when it's used as a method.",
        "Lodash's `_.debounce` adds leading/trailing options and `cancel()` if you need them.",
        "For scroll or resize handlers you may want throttle instead, which runs at a steady rate.",
        f"If `{handler}` returns a promise, remember the debounced version does not return it.",
    ]
    ask = _fill(
        rng,
        (
            "How do I debounce a function in JavaScript? It's for {u}.",
            "I need to debounce `{h}` ({u}). What's a clean way without a library?",
            "{U} fires way too often. How do I wait ~{w} ms before calling `{h}`?",
        ),
        u=use,
        U=use[0].upper() + use[1:],
        h=handler,
        w=wait,
    )
    return ask, code, notes


def _js_group_by(rng: random.Random) -> tuple[str, str, list[str]]:
    d = _pick(rng, _DOMAINS)
    rows = d.rows(rng, 4)
    groups: dict[str, list[int]] = defaultdict(list)
    for r in rows:
        groups[r[d.key]].append(r["id"])
    arr = (
        "[\n"
        + "".join(
            "  { " + ", ".join(f"{k}: {json.dumps(v, ensure_ascii=False)}" for k, v in r.items()) + " },\n"
            for r in rows
        )
        + "]"
    )
    code = (
        f"const {d.plural} = {arr};\n\nconst by{d.key.capitalize().replace('_', '')} = {d.plural}.reduce((acc, item) => {{\n"
        f"  (acc[item.{d.key}] ??= []).push(item);\n  return acc;\n}}, {{}});\n\n"
        f"console.log(Object.keys(by{d.key.capitalize().replace('_', '')}));\n// {json.dumps(list(groups))}"
    )
    notes = [
        "`??=` assigns an empty array only the first time a key shows up.",
        "Newer runtimes have `Object.groupBy(items, (x) => x.key)` built in (Node 21+, recent browsers).",
        "The objects themselves aren't copied, so each group holds references to the original items.",
    ]
    return f"How can I group an array of {d.plural} by `{d.key}` in JavaScript?", code, notes


def _js_fetch(rng: random.Random) -> tuple[str, str, list[str]]:
    d = _pick(rng, _DOMAINS)
    ms = _pick(rng, (3000, 5000, 8000, 10000))
    code = (
        f"async function fetchJson(url, {{ timeoutMs = {ms} }} = {{}}) {{\n  const controller = new AbortController();\n"
        f"  const timer = setTimeout(() => controller.abort(), timeoutMs);\n  try {{\n"
        f"    const res = await fetch(url, {{ signal: controller.signal }});\n"
        f"    if (!res.ok) throw new Error(`HTTP ${{res.status}} for ${{url}}`);\n    return await res.json();\n"
        f"  }} finally {{\n    clearTimeout(timer);\n  }}\n}}\n\n"
        f"const {d.plural} = await fetchJson('/api/v1/{d.plural}?limit={rng.choice((20, 50, 100))}');"
    )
    notes = [
        "`fetch` only rejects on network errors, so checking `res.ok` is what turns a 404 or 500 into an error.",
        f"The AbortController cancels the request after {ms / 1000:g} seconds.",
        "`finally` clears the timer whether the request succeeded or not.",
        "Top-level `await` works in ES modules; in older scripts wrap the call in an async function.",
    ]
    return (
        (
            f"What's the right way to fetch JSON with async/await, with a timeout and proper error handling? "
            f"I'm loading {d.plural} from our API."
        ),
        code,
        notes,
    )


_CURRENCY_FORMATS = (
    ("en-US", "USD", lambda x: f"${x:,.2f}"),
    ("en-GB", "GBP", lambda x: f"£{x:,.2f}"),
    ("de-DE", "EUR", lambda x: f"{x:,.2f} €".replace(",", "_").replace(".", ",").replace("_", ".")),
    ("ja-JP", "JPY", lambda x: f"￥{round(x):,}"),
)


def _js_currency(rng: random.Random) -> tuple[str, str, list[str]]:
    locale, cur, fmt = _pick(rng, _CURRENCY_FORMATS)
    amounts = [round(rng.uniform(3, 25000), 2) for _ in range(3)]
    code = (
        f"const formatter = new Intl.NumberFormat('{locale}', {{ style: 'currency', currency: '{cur}' }});\n\n"
        + "".join(f"formatter.format({a});  // '{fmt(a)}'\n" for a in amounts)
    )
    notes = [
        "Create the formatter once and reuse it; constructing one per call is surprisingly slow in loops.",
        "The locale controls separators and symbol position, the currency code controls the symbol itself.",
        "Some locales use a non-breaking space before the symbol, so compare formatted strings carefully in tests.",
        "Yen has no minor unit, so JPY amounts are rounded to whole numbers.",
    ]
    return f"How do I format numbers as {cur} prices for {locale} users in JavaScript?", code.rstrip(), notes


def _js_task(rng: random.Random) -> _Task:
    ask, code, notes = _pick(rng, (_js_debounce, _js_group_by, _js_fetch, _js_currency))(rng)
    lang = _pick(rng, ("javascript", "js"))
    user = _code_prompt(rng, ask, openers=_JS_OPENERS, constraints=_JS_CONSTRAINTS)
    return _Task(user, _code_answer(rng, lang, code, notes), [_pick(rng, _THANKS)])


# --------------------------------------------------------------------------------------------------- math


@dataclass
class _Math:
    question: str
    steps: list[str]
    answer: float

    @property
    def answer_text(self) -> str:
        return _num(round(self.answer, 2))


_ITEMS_BAKED = ("muffins", "croissants", "bagels", "cinnamon rolls", "scones", "empanadas", "pretzels")
_VENUES = (
    "bookshop",
    "café",
    "garden centre",
    "cinema",
    "climbing gym",
    "bike repair shop",
    "pharmacy",
    "ice-cream stand",
)


def _m_bakery(rng: random.Random) -> _Math:
    name, item = _pick(rng, FIRST_NAMES), _pick(rng, _ITEMS_BAKED)
    t, m = rng.randint(3, 9), rng.choice((6, 8, 10, 12, 16, 18, 24))
    total = t * m
    s = rng.randint(total // 3, total * 2 // 3)
    g = rng.randint(1, max(1, (total - s) // 3))
    q = _fill(
        rng,
        (
            "{n} bakes {t} trays of {i} with {m} {i} on each tray. {n} sells {s} of them at the Saturday market and "
            "gives {g} to the neighbours. How many {i} are left?",
            "A small bakery made {t} batches of {i} this morning, {m} per batch. By noon {s} had been sold, and {n} "
            "set aside {g} for a catering order. How many {i} can still be sold this afternoon?",
        ),
        n=name,
        i=item,
        t=t,
        m=m,
        s=s,
        g=g,
    )
    steps = [
        f"Total baked: {t} × {m} = {total} {item}.",
        f"Sold or set aside: {s} + {g} = {s + g}.",
        f"Left: {total} − {s + g} = {total - s - g}.",
    ]
    return _Math(q, steps, total - s - g)


def _m_savings(rng: random.Random) -> _Math:
    name, venue = _pick(rng, FIRST_NAMES), _pick(rng, _VENUES)
    w, h, p, n = rng.randint(12, 32), rng.randint(8, 30), rng.choice((10, 20, 25, 30, 40, 50)), rng.randint(4, 16)
    weekly = w * h
    saved = weekly * p / 100
    goal = _pick(rng, ("a used bike", "a trip to see family", "a new laptop", "concert tickets", "driving lessons"))
    q = _fill(
        rng,
        (
            "{n} works {h} hours a week at a {v} and earns ${w} an hour. If {n} saves {p}% of every paycheck for {g}, "
            "how much money will be saved after {k} weeks?",
            "For {g}, {n} puts aside {p}% of what the weekend job at the {v} pays. The job pays ${w} per hour for {h} "
            "hours each week. How many dollars are saved in {k} weeks?",
        ),
        n=name,
        v=venue,
        w=w,
        h=h,
        p=p,
        k=n,
        g=goal,
    )
    steps = [
        f"Weekly pay: {h} × ${w} = ${weekly}.",
        f"Saved per week: {p}% of ${weekly} = ${_num(saved)}.",
        f"After {n} weeks: {n} × ${_num(saved)} = ${_num(saved * n)}.",
    ]
    return _Math(q, steps, saved * n)


def _m_discount(rng: random.Random) -> _Math:
    item = _pick(
        rng,
        (
            "winter coat",
            "pair of hiking boots",
            "desk lamp",
            "coffee grinder",
            "backpack",
            "e-reader",
            "set of kitchen knives",
            "rain jacket",
            "bike helmet",
            "cast-iron pan",
            "yoga mat",
            "drone",
        ),
    )
    price, d, t = rng.randint(4, 80) * 5, rng.choice((10, 15, 20, 25, 30, 40)), rng.choice((5, 6, 8, 10))
    sale = price * (100 - d) / 100
    final = round(sale * (100 + t) / 100, 2)
    shop = _pick(rng, ("an outdoor store", "the department store", "a shop in " + _pick(rng, CITIES), "an online shop"))
    q = _fill(
        rng,
        (
            "At {s}, a {i} normally costs ${p}. This week it is {d}% off, and a {t}% sales tax is added to the discounted "
            "price. What does the {i} cost at the register?",
            "{n} wants a {i} listed at ${p}. {S} takes {d}% off at checkout and then charges {t}% tax on the reduced "
            "price. How much does {n} pay?",
            "During a {d}%-off sale, {n} buys a ${p} {i} from {s}. Sales tax of {t}% is charged after the discount. "
            "What is the total?",
        ),
        i=item,
        p=price,
        d=d,
        t=t,
        n=_pick(rng, FIRST_NAMES),
        s=shop,
        S=shop[0].upper() + shop[1:],
    )
    steps = [
        f"Discount: {d}% of ${price} = ${_num(price - sale)}, so the sale price is ${_num(sale)}.",
        f"Tax: {t}% of ${_num(sale)} = ${_num(round(sale * t / 100, 2))}.",
        f"Total: ${_num(final)}.",
    ]
    return _Math(q, steps, final)


def _m_drive(rng: random.Random) -> _Math:
    name = _pick(rng, FIRST_NAMES)
    s1, h1, s2, h2 = rng.randint(9, 14) * 5, rng.randint(2, 5), rng.randint(5, 9) * 5, rng.randint(2, 4)
    why = _pick(rng, ("road works", "heavy rain", "a mountain pass", "traffic near the city", "snow on the highway"))
    q = _fill(
        rng,
        (
            "{n} drives at {a} miles per hour for {h} hours, then slows to {b} miles per hour for another {k} hours "
            "because of {w}. How many miles does {n} drive in total?",
            "On the way to {c}, {n} keeps a steady {a} mph for the first {h} hours. {w} forces a slower {b} mph for the "
            "last {k} hours. What is the total distance in miles?",
        ),
        n=name,
        a=s1,
        h=h1,
        b=s2,
        k=h2,
        w=why,
        c=_pick(rng, CITIES),
    )
    q = q[0].upper() + q[1:]
    steps = [
        f"First part: {s1} × {h1} = {s1 * h1} miles.",
        f"Second part: {s2} × {h2} = {s2 * h2} miles.",
        f"Total: {s1 * h1} + {s2 * h2} = {s1 * h1 + s2 * h2} miles.",
    ]
    return _Math(q, steps, s1 * h1 + s2 * h2)


def _m_fence(rng: random.Random) -> _Math:
    length, width, c, g = rng.randint(8, 40), rng.randint(5, 25), rng.randint(12, 45), rng.choice((80, 120, 150, 240))
    per = 2 * (length + width)
    what = _pick(rng, ("vegetable garden", "chicken run", "dog yard", "orchard plot", "paddock"))
    q = _fill(
        rng,
        (
            "A rectangular {w} is {l} meters long and {b} meters wide. Fencing costs ${c} per meter, plus ${g} for a "
            "gate. How much will it cost to fence the whole {w}?",
            "{n} is fencing a {l} m by {b} m {w}. The fence is ${c} a meter and the gate adds ${g}. What is the total "
            "cost?",
        ),
        w=what,
        l=length,
        b=width,
        c=c,
        g=g,
        n=_pick(rng, FIRST_NAMES),
    )
    steps = [
        f"Perimeter: 2 × ({length} + {width}) = {per} m.",
        f"Fence: {per} × ${c} = ${per * c}.",
        f"With the gate: ${per * c} + ${g} = ${per * c + g}.",
    ]
    return _Math(q, steps, per * c + g)


def _m_recipe(rng: random.Random) -> _Math:
    a, b, k = rng.choice((1.5, 2, 2.25, 2.5, 3, 3.5)), rng.choice((12, 16, 18, 20, 24, 30)), rng.choice((2, 3, 4, 5, 6))
    c = b * k
    event = _pick(
        rng,
        (
            "a school bake sale",
            "an office party",
            "a birthday picnic",
            "the football team",
            "a wedding",
            "a charity stall",
            "the street party",
            "a retirement lunch",
        ),
    )
    what = _pick(
        rng,
        (
            ("cookies", "flour"),
            ("pancakes", "milk"),
            ("brownies", "sugar"),
            ("muffins", "flour"),
            ("flapjacks", "oats"),
        ),
    )
    q = _fill(
        rng,
        (
            "A {w} recipe uses {a} cups of {f} to make {b} {w}. {n} needs {c} {w} for {e}. How many cups of {f} does "
            "{n} need?",
            "{n}'s grandmother's recipe makes {b} {w} with {a} cups of {f}. How much {f} is needed for {c} {w} for {e}?",
            "For {e}, {n} is scaling up a recipe: {a} cups of {f} give {b} {w}. How many cups for {c} {w}?",
        ),
        a=_num(a),
        b=b,
        c=c,
        e=event,
        n=_pick(rng, FIRST_NAMES),
        w=what[0],
        f=what[1],
    )
    steps = [
        f"{c} {what[0]} is {c} ÷ {b} = {k} times the recipe.",
        f"{what[1].capitalize()}: {k} × {_num(a)} = {_num(a * k)} cups.",
    ]
    return _Math(q, steps, a * k)


def _m_ages(rng: random.Random) -> _Math:
    a, b = rng.sample(FIRST_NAMES, 2)
    y, k, n = rng.randint(4, 30), rng.randint(2, 12), rng.randint(2, 10)
    total = (y + n) * 2 + k
    q = _fill(
        rng,
        (
            "{a} is {k} years older than {b}. In {n} years, the sum of their ages will be {s}. How old is {b} now?",
            "The sum of {a}'s and {b}'s ages {n} years from now will be {s}. {a} is {k} years older. What is {b}'s "
            "age today?",
        ),
        a=a,
        b=b,
        k=k,
        n=n,
        s=total,
    )
    steps = [
        f"Let {b}'s age now be x, so {a} is x + {k}.",
        f"In {n} years: (x + {n}) + (x + {k} + {n}) = {total}.",
        f"2x + {k + 2 * n} = {total}, so 2x = {total - k - 2 * n} and x = {y}.",
    ]
    return _Math(q, steps, y)


def _m_reading(rng: random.Random) -> _Math:
    p, q_, weeks = rng.randint(8, 30), rng.randint(20, 60), rng.randint(2, 8)
    per_week = 5 * p + 2 * q_
    pages = per_week * weeks
    book = _pick(
        rng,
        (
            "a fantasy novel",
            "a history of the Silk Road",
            "a biography of Marie Curie",
            "a cookbook",
            "a thick programming book",
            "a collection of short stories",
            "a travel memoir",
            "a textbook on marine biology",
            "a detective series omnibus",
        ),
    )
    n = _pick(rng, FIRST_NAMES)
    q = _fill(
        rng,
        (
            "{n} reads {p} pages every weekday and {r} pages on each day of the weekend. {B} has {t} pages. How many "
            "weeks will it take {n} to finish it?",
            "{n} is reading {b} with {t} pages: {p} pages a day Monday to Friday and {r} pages on Saturday and Sunday. "
            "How many weeks does the book take?",
            "On workdays {n} manages {p} pages of {b} on the train; at weekends, {r} pages a day. The book is {t} pages "
            "long. In how many weeks is it finished?",
        ),
        n=n,
        p=p,
        r=q_,
        b=book,
        B=book[0].upper() + book[1:],
        t=pages,
    )
    steps = [f"Pages per week: 5 × {p} + 2 × {q_} = {per_week}.", f"Weeks: {pages} ÷ {per_week} = {weeks}."]
    return _Math(q, steps, weeks)


def _m_bill(rng: random.Random) -> _Math:
    bill, tip, n = round(rng.uniform(60, 400), 2), rng.choice((10, 12, 15, 18, 20, 22)), rng.randint(2, 9)
    total = bill * (100 + tip) / 100
    each = round(total / n, 2)
    occasion = _pick(rng, ("a birthday dinner", "a team lunch", "a farewell party", "a reunion", "a Friday night out"))
    place = (
        f"a {_pick(rng, ('Thai', 'Lebanese', 'Peruvian', 'Georgian', 'Korean', 'Sicilian', 'Ethiopian'))} "
        f"restaurant in {_pick(rng, CITIES)}"
    )
    q = _fill(
        rng,
        (
            "{k} friends go to {pl} for {o}. The bill is ${b}, and they leave a {t}% tip. If they split the total evenly, "
            "how much does each person pay, to the nearest cent?",
            "The check for {o} at {pl} comes to ${b}. With a {t}% tip added, the {k} guests share the cost equally. What "
            "is each share, rounded to the cent?",
            "{n} organised {o} for {k} people at {pl}. Food and drinks came to ${b} and everyone agreed on a {t}% tip. "
            "What does each person owe?",
        ),
        k=n,
        b=f"{bill:.2f}",
        t=tip,
        o=occasion,
        pl=place,
        n=_pick(rng, FIRST_NAMES),
    )
    steps = [
        f"Tip: {tip}% of ${bill:.2f} = ${bill * tip / 100:.2f}.",
        f"Total: ${total:.2f}.",
        f"Each: ${total:.2f} ÷ {n} = ${each:.2f}.",
    ]
    return _Math(q, steps, each)


_RATE_PAIRS = ((3, 6), (4, 12), (6, 12), (10, 15), (12, 24), (20, 30), (5, 20), (6, 30), (8, 24), (9, 18), (12, 36))


def _m_work_rate(rng: random.Random) -> _Math:
    scale = rng.choice((1, 1, 2, 3))
    a, b = (x * scale for x in _pick(rng, _RATE_PAIRS))
    together = a * b // (a + b)
    w, job, ws = _pick(
        rng,
        (
            ("pipe", "fill the {x} pool", "pipes"),
            ("printer", "print the {x} brochures", "printers"),
            ("painter", "paint the {x} fence", "painters"),
            ("pump", "drain the {x} basement", "pumps"),
            ("harvester", "clear the {x} field", "harvesters"),
            ("baker", "bake the {x} order", "bakers"),
        ),
    )
    job = job.format(x=_pick(rng, ("school's", "community", "old", "neighbours'", "new", "hotel's")))
    q = _fill(
        rng,
        (
            "At {n}'s workshop in {c}, one {w} can {j} in {a} hours, and a second {w} can do it in {b} hours. How many "
            "hours does it take if both {ws} work together?",
            "Working alone, {n}'s {o} {w} needs {b} hours to {j}; the {y} one needs only {a}. {e}",
            "{n} has two {ws}. The faster one can {j} in {a} hours, the slower in {b} hours. If {n} runs both at once, "
            "how many hours will the job take?",
        ),
        w=w,
        j=job,
        ws=ws,
        a=a,
        b=b,
        n=_pick(rng, FIRST_NAMES),
        c=_pick(rng, CITIES),
        o=_pick(rng, ("old", "slower", "second-hand", "original")),
        y=_pick(rng, ("new", "faster", "borrowed", "rented")),
        e=_pick(
            rng,
            (
                "Together, how long do they take, in hours?",
                "How many hours if they work side by side?",
                "If both run at the same time, how many hours does the job take?",
            ),
        ),
    )
    steps = [
        f"Rates: 1/{a} and 1/{b} of the job per hour.",
        f"Together: 1/{a} + 1/{b} = {a + b}/{a * b} = 1/{together}.",
        f"So it takes {together} hours.",
    ]
    return _Math(q, steps, together)


def _m_fractions(rng: random.Random) -> _Math:
    a, b, k = rng.choice((2, 3, 4, 5, 6)), rng.choice((2, 3, 4, 5)), rng.randint(2, 7)
    n = a * b * k
    after_friend = n - n // a
    after_sister = after_friend - after_friend // b
    thing = _pick(
        rng,
        (
            "stickers",
            "marbles",
            "trading cards",
            "seashells",
            "stamps",
            "comic books",
            "postcards",
            "guitar picks",
            "board-game tokens",
        ),
    )
    who1 = _pick(rng, ("a friend", "the school fair", "a cousin", "the library sale", "a neighbour"))
    who2 = _pick(rng, ("a younger sibling", "a classmate", "the charity shop", "a pen pal", "the club"))
    q = _fill(
        rng,
        (
            "{n} has {t} {x}. {n} gives 1/{a} of them to {p} and then 1/{b} of the remaining {x} to {q}. How many {x} "
            "does {n} keep?",
            "Out of a collection of {t} {x}, {n} first hands 1/{a} to {p}, then gives 1/{b} of what is left to {q}. How "
            "many are left in the collection?",
        ),
        n=_pick(rng, FIRST_NAMES),
        t=n,
        x=thing,
        a=a,
        b=b,
        p=who1,
        q=who2,
    )
    steps = [
        f"1/{a} of {n} is {n // a}, leaving {after_friend}.",
        f"1/{b} of {after_friend} is {after_friend // b}, leaving {after_sister}.",
    ]
    return _Math(q, steps, after_sister)


def _m_tickets(rng: random.Random) -> _Math:
    adult, child, fee = rng.randint(9, 40), rng.randint(4, 20), rng.choice((0, 1, 2, 3))
    x, y = rng.randint(1, 5), rng.randint(1, 6)
    total = x * adult + y * child + fee * (x + y)
    where = _pick(
        rng,
        ("aquarium", "science museum", "zoo", "theme park", "planetarium", "botanical garden", "castle", "water park"),
    )
    fee_text = f" There is also a ${fee} booking fee per ticket." if fee else ""
    q = _fill(
        rng,
        (
            "Tickets to the {w} in {c} cost ${a} for adults and ${k} for children.{f} How much does a group of {x} "
            "adults and {y} children pay?",
            "{n} is taking {x} adult{s} and {y} child{ren} to the {w}. Adult entry is ${a}, child entry ${k}.{f} What "
            "is the total cost?",
        ),
        w=where,
        c=_pick(rng, CITIES),
        a=adult,
        k=child,
        f=fee_text,
        x=x,
        y=y,
        n=_pick(rng, FIRST_NAMES),
        s="" if x == 1 else "s",
        ren="" if y == 1 else "ren",
    )
    steps = [f"Adults: {x} × ${adult} = ${x * adult}.", f"Children: {y} × ${child} = ${y * child}."]
    if fee:
        steps.append(f"Fees: {x + y} × ${fee} = ${fee * (x + y)}.")
    steps.append(f"Total: ${total}.")
    return _Math(q, steps, total)


def _m_phone(rng: random.Random) -> _Math:
    base, per, flat, gb = rng.randint(10, 25), rng.choice((2, 3, 4, 5)), rng.randint(30, 60), rng.randint(3, 15)
    a = base + per * gb
    pa, pb = rng.sample(("Nimbus", "Kite", "Orbit", "Pulse", "Lumen", "Tern"), 2)
    q = _fill(
        rng,
        (
            "The {pa} phone plan costs ${b} a month plus ${r} for every gigabyte of data. The {pb} plan is a flat ${f} a "
            "month. {n} uses {g} GB a month. How much more does the more expensive plan cost per month?",
            "{n} uses about {g} GB of mobile data a month and is comparing two offers: {pb} charges a flat ${f}, while "
            "{pa} charges ${b} plus ${r} per GB. What is the monthly difference between them?",
        ),
        pa=pa,
        pb=pb,
        b=base,
        r=per,
        f=flat,
        g=gb,
        n=_pick(rng, FIRST_NAMES),
    )
    steps = [f"{pa}: ${base} + {gb} × ${per} = ${a}.", f"{pb}: ${flat}.", f"Difference: ${abs(a - flat)}."]
    return _Math(q, steps, abs(a - flat))


def _m_paint(rng: random.Random) -> _Math:
    length, height, win = rng.randint(3, 9), rng.choice((2.4, 2.5, 2.7, 3)), rng.choice((0, 1.5, 2, 3))
    cover, can, coats = rng.choice((6, 8, 10, 12)), rng.choice((1, 2.5, 5)), rng.choice((2, 3))
    area = round(length * height - win, 2)
    liters = coats * area / cover
    cans = math.ceil(liters / can - 1e-9)
    room = _pick(rng, ("living room", "bedroom", "garage", "hallway", "kitchen", "studio", "nursery", "classroom"))
    color = _pick(rng, ("sage green", "off-white", "terracotta", "navy", "pale yellow", "charcoal", "dusty pink"))
    window = f", with a {_num(win)} m² window" if win else ""
    q = _fill(
        rng,
        (
            "{n} is painting one wall of the {r} {c}. The wall is {l} m long and {h} m high{w}. One litre of paint "
            "covers {v} m², the wall needs {k} coats, and the paint is sold in {s}-litre tins. How many tins should {n} "
            "buy?",
            "How many {s}-litre cans of {c} paint are needed for a {l} m × {h} m {r} wall{w}, if each litre covers {v} "
            "square metres and the wall gets {k} coats?",
        ),
        n=_pick(rng, FIRST_NAMES),
        r=room,
        c=color,
        l=length,
        h=_num(height),
        w=window,
        v=cover,
        k=coats,
        s=_num(can),
    )
    steps = [
        f"Area to paint: {length} × {_num(height)}" + (f" − {_num(win)}" if win else "") + f" = {_num(area)} m².",
        f"{coats} coats: {_num(coats * area)} m², which needs {_num(coats * area)} ÷ {cover} = "
        f"{_num(round(liters, 2))} litres.",
        f"Tins: {_num(round(liters, 2))} ÷ {_num(can)} rounded up = {cans}.",
    ]
    return _Math(q, steps, cans)


def _m_raise(rng: random.Random) -> _Math:
    s, r = rng.randint(30, 90) * 1000 + rng.choice((0, 250, 500, 750)), rng.choice((2, 2.5, 3, 3.5, 4, 5, 6, 7))
    y1 = s * (100 + r) / 100
    y2 = round(y1 * (100 + r) / 100, 2)
    factor = f"{1 + r / 100:g}"
    n, job = _pick(rng, FIRST_NAMES), _pick(rng, _JOBS)
    q = _fill(
        rng,
        (
            "{n} earns ${s:,} a year as {j}. After a {r}% raise {w1} and another {r}% raise {w2}, {e}",
            "{J} at {c} is paid ${s:,} per year. The contract promises a {r}% increase in each of the next two years. "
            "What will the salary be after both increases?",
            "{n} just started as {j} in {t} on ${s:,} a year, with a guaranteed {r}% raise on each of the first two "
            "anniversaries. What is the salary after the second raise?",
        ),
        n=n,
        j=_a(job),
        J=_a(job).capitalize(),
        s=s,
        r=_num(r),
        c=_pick(rng, COMPANIES),
        t=_pick(rng, CITIES),
        w1=_pick(rng, ("this year", "in January", "this spring", "at the annual review")),
        w2=_pick(rng, ("next year", "a year later", "the following year", "at the next review")),
        e=_pick(
            rng,
            (
                "what will the annual salary be?",
                "what is the new yearly pay?",
                f"how much will {n} earn per year?",
                "what does the salary come to?",
            ),
        ),
    )
    steps = [
        f"After the first raise: ${s:,} × {factor} = ${y1:,.2f}.",
        f"After the second: ${y1:,.2f} × {factor} = ${y2:,.2f}.",
    ]
    return _Math(q, steps, y2)


def _m_ratio(rng: random.Random) -> _Math:
    a, b, k = rng.randint(2, 9), rng.randint(2, 9), rng.randint(3, 15)
    if a == b:
        b += 1
    total = (a + b) * k
    group = _pick(
        rng,
        (
            ("choir", "sopranos", "altos"),
            ("chess club", "juniors", "seniors"),
            ("hiking group", "beginners", "experienced hikers"),
            ("robotics team", "coders", "builders"),
            ("orchestra", "string players", "wind players"),
            ("book club", "fiction fans", "non-fiction fans"),
            ("running club", "sprinters", "distance runners"),
            ("drama society", "actors", "stagehands"),
            ("volunteer group", "students", "retirees"),
        ),
    )
    q = _fill(
        rng,
        (
            "In {n}'s {g} in {c}, {t} people signed up this {s}, and the ratio of {x} to {y} is {a}:{b}. How many {y} "
            "are there?",
            "{n} runs a {g} in {c} with {t} members. There are {a} {x} for every {b} {y}. How many members are {y}?",
            "The {c} {g} has {t} members this {s}, split between {x} and {y} in the ratio {a} to {b}. Find the number "
            "of {y}.",
        ),
        g=group[0],
        x=group[1],
        y=group[2],
        t=total,
        a=a,
        b=b,
        n=_pick(rng, FIRST_NAMES),
        c=_pick(rng, CITIES),
        s=_pick(rng, ("season", "term", "year", "spring", "autumn")),
    )
    steps = [
        f"There are {a} + {b} = {a + b} parts.",
        f"Each part is {total} ÷ {a + b} = {k} people.",
        f"{group[2].capitalize()}: {b} × {k} = {b * k}.",
    ]
    return _Math(q, steps, b * k)


def _m_leak(rng: random.Random) -> _Math:
    f, leak, mins = rng.randint(9, 40), rng.randint(1, 8), rng.randint(8, 75)
    cap = (f - leak) * mins
    tank, source, hole = (
        _pick(rng, ("water tank", "rain barrel", "paddling pool", "cattle trough", "hot tub", "aquarium")),
        _pick(rng, ("a garden hose", "a pump", "the kitchen tap", "a fire hose")),
        _pick(rng, ("a crack", "a loose valve", "a small hole", "a worn seal")),
    )
    q = _fill(
        rng,
        (
            "A {k} holds {c} litres. {S} fills it at {f} litres per minute, but {h} lets {l} litres leak out every "
            "minute. Starting empty, how many minutes does it take to fill the {k}?",
            "{n} is filling an empty {k} that holds {c} litres using {s}, which delivers {f} litres a minute. Because of "
            "{h}, {l} litres escape each minute. How long does filling take, in minutes?",
        ),
        k=tank,
        c=cap,
        S=source[0].upper() + source[1:],
        s=source,
        f=f,
        h=hole,
        l=leak,
        n=_pick(rng, FIRST_NAMES),
    )
    steps = [f"Net rate: {f} − {leak} = {f - leak} litres per minute.", f"Time: {cap} ÷ {f - leak} = {mins} minutes."]
    return _Math(q, steps, mins)


def _m_legs(rng: random.Random) -> _Math:
    a, b = rng.randint(3, 60), rng.randint(2, 40)
    pair = _pick(
        rng,
        (
            ("chickens", "cows"),
            ("ducks", "goats"),
            ("geese", "sheep"),
            ("turkeys", "pigs"),
            ("hens", "alpacas"),
            ("ostriches", "horses"),
        ),
    )
    q = _fill(
        rng,
        (
            "A farm near {c} has only {x} and {y}. Together they have {h} heads and {l} legs. How many {y} are on "
            "the farm?",
            "{n}'s uncle keeps {x} and {y} and nothing else. Counting in the yard, {n} sees {h} heads and {l} legs. "
            "How many {y} are there?",
            "{n} counts the animals on a small farm near {c}: there are {x} and {y}, {h} heads in all and {l} legs. How "
            "many {y} does the farm have?",
        ),
        x=pair[0],
        y=pair[1],
        h=a + b,
        l=2 * a + 4 * b,
        n=_pick(rng, FIRST_NAMES),
        c=_pick(rng, CITIES),
    )
    steps = [
        f"If all {a + b} animals had 2 legs there would be {2 * (a + b)} legs.",
        f"The extra {2 * b} legs come from the {pair[1]}, 2 extra each.",
        f"{pair[1].capitalize()}: {b}.",
    ]
    return _Math(q, steps, b)


def _m_pace(rng: random.Random) -> _Math:
    pace, d, dd = rng.choice((4, 5, 6, 7, 8)), rng.randint(3, 12), rng.choice((5, 10, 15, 21, 25, 30, 42))
    if dd == d:
        dd += 5
    q = _fill(
        rng,
        (
            "{n} runs {d} km in {t} minutes during a training session in {c}. At the same pace, how many minutes would "
            "a {D} km race take?",
            "Training along the river in {c}, {n} covered {d} kilometres in {t} minutes. If {n} keeps exactly that pace, "
            "how long will {D} kilometres take, in minutes?",
        ),
        n=_pick(rng, FIRST_NAMES),
        d=d,
        t=pace * d,
        c=_pick(rng, CITIES),
        D=dd,
    )
    steps = [f"Pace: {pace * d} ÷ {d} = {pace} minutes per km.", f"Race: {dd} × {pace} = {dd * pace} minutes."]
    return _Math(q, steps, dd * pace)


def _m_warehouse(rng: random.Random) -> _Math:
    n, x, y, d = rng.randint(200, 900), rng.randint(30, 90), rng.randint(20, 80), rng.randint(3, 12)
    left = n + d * (x - y)
    if left < 0:
        n, left = n - left + 50, 50
    q = (
        f"A warehouse in {_pick(rng, CITIES)} starts the month with {n} boxes of {_pick(rng, _GOODS)}. Every day it "
        f"receives {x} boxes and ships {y}. How many boxes are there after {d} days?"
    )
    steps = [f"Net change per day: {x} − {y} = {x - y}.", f"After {d} days: {n} + {d} × ({x - y}) = {left}."]
    return _Math(q, steps, left)


def _m_growth(rng: random.Random) -> _Math:
    v, p = rng.randint(4, 90) * 100, rng.choice((5, 10, 15, 20, 25, 30, 40, 60, 75))
    w = v * (100 + p) // 100
    what = _pick(
        rng,
        (
            "visitors to the town library",
            "people at the harvest festival",
            "subscribers to the newsletter",
            "students enrolled in the evening course",
            "passengers on the ferry",
            "runners in the fun run",
            "members of the climbing gym",
        ),
    )
    q = _fill(
        rng,
        (
            "Last year there were {v:,} {x} in {c}. This year there were {w:,}. By what percent did the number increase?",
            "The number of {x} rose from {v:,} to {w:,} in one year, according to {n}'s report. What was the percentage "
            "increase?",
        ),
        v=v,
        w=w,
        x=what,
        c=_pick(rng, CITIES),
        n=_pick(rng, FIRST_NAMES),
    )
    steps = [f"Increase: {w:,} − {v:,} = {w - v:,}.", f"Percent: {w - v:,} ÷ {v:,} × 100 = {p}%."]
    return _Math(q, steps, p)


def _m_average(rng: random.Random) -> _Math:
    scores = [rng.randint(62, 98) for _ in range(4)]
    target = rng.randint(75, 90)
    need = 5 * target - sum(scores)
    if not 40 <= need <= 100:
        target = (sum(scores) + 85) // 5
        need = 5 * target - sum(scores)
    q = (
        f"{_pick(rng, FIRST_NAMES)} scored {', '.join(map(str, scores[:3]))} and {scores[3]} on four "
        f"{_pick(rng, ('biology', 'history', 'algebra', 'French', 'chemistry'))} quizzes. What score is needed on the "
        f"fifth quiz to average exactly {target}?"
    )
    steps = [
        f"Needed total: 5 × {target} = {5 * target}.",
        f"Current total: {sum(scores)}.",
        f"Fifth quiz: {5 * target} − {sum(scores)} = {need}.",
    ]
    return _Math(q, steps, need)


_JOBS = (
    "nurse",
    "graphic designer",
    "bus driver",
    "lab technician",
    "teacher",
    "welder",
    "accountant",
    "chef",
    "paramedic",
    "librarian",
    "electrician",
    "data analyst",
    "pharmacist",
    "carpenter",
    "translator",
)
_GOODS = ("printer paper", "canned tomatoes", "phone chargers", "dog food", "bike tyres", "detergent")
_MATH_TEMPLATES: tuple[Callable[[random.Random], _Math], ...] = (
    _m_bakery,
    _m_savings,
    _m_discount,
    _m_drive,
    _m_fence,
    _m_recipe,
    _m_ages,
    _m_reading,
    _m_bill,
    _m_work_rate,
    _m_fractions,
    _m_tickets,
    _m_phone,
    _m_paint,
    _m_raise,
    _m_ratio,
    _m_leak,
    _m_legs,
    _m_pace,
    _m_warehouse,
    _m_growth,
    _m_average,
)
_MATH_OPENERS = (
    "",
    "",
    "Can you help me with this word problem?",
    "My kid brought this home and I'm stuck:",
    "Please solve step by step.",
    "How do I set this up?",
    "I got a different answer than the book:",
)
_MATH_CLOSERS = (
    "So the answer is **{a}**.",
    "**Answer: {a}**",
    "That gives **{a}**.",
    "The answer is {a}.",
    "Final answer: {a}",
)


_PARAPHRASES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (r"\bper hour\b", ("an hour", "per hour")),
    (r"\bper minute\b", ("a minute", "each minute")),
    (r"\bper year\b", ("a year", "annually", "per year")),
    (r"\bper day\b", ("a day", "each day", "per day")),
    (r"\bevery minute\b", ("every minute", "each minute", "per minute")),
    (r"\bevery day\b", ("every day", "daily")),
    (r"\bin total\b", ("in total", "altogether", "in all")),
    (r"\bdoes it take\b", ("does it take", "will it take")),
    (r"\bthe whole\b", ("the whole", "the entire")),
    (r"\bneeded\b", ("needed", "required")),
    (r"\band then\b", ("and then", "and after that", "and later")),
    (r"\bWhat is\b", ("What is", "What's")),
    (r"\bkilometres\b", ("kilometres", "kilometers", "km")),
    (r"\blitres\b", ("litres", "liters")),
    (r"\bmetres\b", ("metres", "meters")),
    (r"\bHow many\b", ("How many", "How many")),
    (r"\bbuy\b", ("buy", "purchase", "get")),
    (r"\bevery weekday\b", ("every weekday", "each weekday")),
    (r"\bhow much\b", ("how much", "what amount")),
    (r"\bEvery day\b", ("Every day", "Each day", "Daily")),
    (r"\bnormally\b", ("normally", "usually", "regularly")),
    (r"\bwants\b", ("wants", "would like", "plans")),
    (r"\bcosts\b", ("costs", "is priced at", "sells for")),
    (r"\beach\b(?= (?:day|week|month|tray|row|batch))", ("each", "every")),
)


_SPOKEN_PARAPHRASES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (r"\bCall\b", ("Call", "Phone", "Ring")),
    (r"\b(?:right|straight) away\b", ("right away", "straight away", "immediately")),
    (r"\busually\b", ("usually", "typically", "normally")),
    (r"\boften\b", ("often", "frequently")),
    (r"\bDon't\b", ("Don't", "Do not")),
    (r"\bdon't\b", ("don't", "do not")),
    (r"\bit's\b", ("it's", "it is")),
    (r"\bI'm\b", ("I'm", "I am")),
    (r"\byou've\b", ("you've", "you have")),
    (r"\bcheck\b", ("check", "find out")),
    (r"\bsmall\b", ("small", "little")),
    (r"\bmany places\b", ("many places", "many countries", "a lot of places")),
    (r"\bworth\b", ("worth", "well worth")),
    (r"\bfor example\b", ("for example", "for instance", "say")),
    (r"\bhelp\b", ("help", "make a difference")),
)


def _vary(rng: random.Random, text: str, table: tuple[tuple[str, tuple[str, ...]], ...] = _PARAPHRASES) -> str:
    """Small natural paraphrases (per hour / an hour, in total / altogether, km / kilometres) so that texts made
    from the same template do not share long word sequences."""
    for pattern, options in table:
        text = re.sub(pattern, lambda _m, o=options: _pick(rng, o), text)
    return text


def _math_problem(rng: random.Random) -> _Math:
    m = _pick(rng, _MATH_TEMPLATES)(rng)
    m.question = _vary(rng, m.question)
    return m


def _math_solution(rng: random.Random, m: _Math, unit_answer: str | None = None) -> str:
    intro = _pick(rng, ("Let's go step by step.", "Here's how to work it out:", "Step by step:", ""))
    steps = "\n".join(f"{i}. {s}" for i, s in enumerate(m.steps, 1)) if rng.random() < 0.6 else " ".join(m.steps)
    closer = _pick(rng, _MATH_CLOSERS).format(a=unit_answer or m.answer_text)
    return "\n\n".join(p for p in (intro, steps, closer) if p)


def _math_task(rng: random.Random) -> _Task:
    m = _math_problem(rng)
    opener = _pick(rng, _MATH_OPENERS)
    user = f"{opener}\n\n{m.question}" if opener and rng.random() < 0.5 else f"{opener} {m.question}".strip()
    check = (
        f"Can you double-check {m.answer_text}?",
        f"Sure. Working backwards from {m.answer_text}: " + " ".join(reversed(m.steps)) + " Everything is "
        "consistent, so the answer stands.",
    )
    why = (
        "Why did you set it up that way?",
        "Because each step only uses quantities the problem gives directly: "
        + m.steps[0]
        + " From there it's just one operation at a time, which makes mistakes easy to spot.",
    )
    return _Task(user, _math_solution(rng, m), [check, why])


# --------------------------------------------------------------------------------------------------- writing


@dataclass(frozen=True)
class _EmailKind:
    asks: tuple[str, ...]
    subject: str
    body: tuple[str, ...]
    greeting: str = ""  # when set, used instead of a first-name greeting


_EMAILS = (
    _EmailKind(
        (
            "Write a short email to my manager {rec} asking for {date} off for {reason}.",
            "can you help me ask {rec} (my boss) for a day off on {date}? it's for {reason}",
        ),
        "Time off request for {date}",
        (
            "I'd like to request {date} off for {reason}.",
            "I've checked the team calendar and nothing is due that day, and {other} has offered to cover {duty}.",
            "I'll make sure {project} is in good shape before I leave and I'll be reachable by phone for anything urgent.",
            "Please let me know if that works, or if you'd prefer I move it to another day.",
        ),
    ),
    _EmailKind(
        (
            "Can you draft a polite but firm follow-up to {company} about invoice #{n} for {amount}? It was due on {date}.",
            "Client hasn't paid invoice {n} ({amount}, due {date}). Need a reminder email that doesn't sound rude.",
        ),
        "Invoice #{n}: payment reminder",
        (
            "I hope things are going well at {company}.",
            "I'm writing about invoice #{n} for {amount}, which was due on {date}.",
            "According to our records we haven't received payment yet; if it's already on its way, please ignore this.",
            "If there's anything holding it up, such as a missing purchase order number, just let me know and I'll "
            "sort it out.",
            "I'd appreciate it if you could confirm a payment date by the end of next week.",
        ),
    ),
    _EmailKind(
        (
            "Help me write an email to {rec} moving our meeting from {day1} to {day2}.",
            "I need to reschedule my call with {rec}. Originally {day1}, can we do {day2} instead? Short email please.",
        ),
        "Rescheduling our meeting to {day2}",
        (
            "Unfortunately something has come up and I can't make our meeting on {day1}.",
            "Would {day2} at the same time work for you instead?",
            "If not, I'm fairly flexible that week, so feel free to suggest a slot that suits you.",
            "Sorry for the short notice, and thanks for understanding.",
        ),
    ),
    _EmailKind(
        (
            "Write a thank-you note to my colleague {rec} for helping with {project}.",
            "I want to thank {rec} properly for jumping in on {project} last week. Something warm but not cheesy.",
        ),
        "Thank you for your help with {project}",
        (
            "I wanted to say a proper thank you for your help with {project}.",
            "Stepping in on such short notice made a real difference, and the {detail} would not have happened "
            "without you.",
            "I've also let {other} know how much you contributed.",
            "Coffee is on me next week!",
        ),
    ),
    _EmailKind(
        (
            "I need to decline a job offer from {company} politely. I've accepted another offer.",
            "How do I turn down an offer from {company} without burning bridges?",
        ),
        "Your offer for the {role} position",
        (
            "Thank you very much for offering me the {role} position at {company}.",
            "After a lot of thought, I've decided to accept another offer that is a closer fit for what I'm looking "
            "for right now.",
            "I really enjoyed meeting the team, especially my conversation with {other}, and this was not an easy "
            "decision.",
            "I hope our paths cross again, and I wish you all the best with the search.",
        ),
    ),
    _EmailKind(
        (
            "Write an email asking for a refund for a {product} (order #{n}) that arrived broken.",
            "My {product} came damaged, order number {n}. Help me ask for my money back.",
        ),
        "Refund request for order #{n}",
        (
            "I'm writing about order #{n}, a {product} that was delivered on {date}.",
            "Unfortunately it arrived damaged: {damage}.",
            "I've attached photos of the item and the packaging.",
            "I'd like a full refund of {amount} to my original payment method rather than a replacement.",
            "Please let me know if you need me to send the item back, and how.",
        ),
        "Hello,",
    ),
    _EmailKind(
        (
            "Write an intro email connecting {rec} with {other}. {rec} is looking for advice on {topic}.",
            "I want to introduce two people: {rec} and {other}. Both work on {topic}. Can you draft it?",
        ),
        "Introduction: {rec} <> {other}",
        (
            "I'd like to introduce you two, since I think you'd get a lot out of a conversation.",
            "{rec} is working on {topic} and has been looking for someone who has done it at scale.",
            "{other} led a similar effort at {company} and is one of the most thoughtful people I know on the subject.",
            "I'll let you take it from here!",
        ),
        "Hi both,",
    ),
    _EmailKind(
        (
            "Draft an announcement for our team offsite in {city} on {date}.",
            "Need an email to the whole team about the offsite: {city}, {date}. Make it sound fun.",
        ),
        "Team offsite in {city}: {date}",
        (
            "Save the date: our team offsite is happening in {city} on {date}!",
            "We'll spend the morning on planning for next quarter and the afternoon on something much less serious.",
            "Travel and accommodation are covered; {other} will send booking details by the end of the week.",
            "If you have dietary requirements or accessibility needs, reply to this email so we can plan around them.",
            "Looking forward to seeing everyone there.",
        ),
        "Hi everyone,",
    ),
    _EmailKind(
        (
            "Write to my landlord about {issue} in apartment {unit}. It has been {k} days.",
            "Landlord keeps ignoring me about {issue}. Help me write a firm email, apartment {unit}, {k} days now.",
        ),
        "Repair needed in apartment {unit}: {issue}",
        (
            "I'm writing again about {issue} in apartment {unit}, which I first reported {k} days ago.",
            "It's getting worse and is now affecting day-to-day living in the flat.",
            "Could you please arrange for someone to look at it this week?",
            "I'm available most evenings after 6 pm, or a technician can use the spare key with notice.",
            "Please confirm in writing when the repair is scheduled.",
        ),
    ),
    _EmailKind(
        (
            "Write an email to Professor {last} asking for an extension on my {assignment}, due {date}.",
            "need to ask prof {last} for a few more days on the {assignment}. it's due {date}. I was sick.",
        ),
        "Extension request: {assignment}",
        (
            "I'm writing to ask whether I could have a short extension on the {assignment}, currently due {date}.",
            "I was ill for most of last week and have a doctor's note I can share.",
            "I've finished the research and most of the analysis, and I'm confident I can submit within {k} days.",
            "Thank you for considering it, and I completely understand if it isn't possible.",
        ),
        "Dear Professor {last},",
    ),
    _EmailKind(
        (
            "Write an apology email to a customer whose order #{n} is delayed by {k} days.",
            "Customer's order ({n}) is running {k} days late because of our supplier. Draft an apology?",
        ),
        "An update on your order #{n}",
        (
            "I'm sorry to let you know that your order #{n} is running about {k} days behind schedule.",
            "One of our suppliers shipped a component late, and we didn't want to send your order incomplete.",
            "The new estimated delivery date is {date}, and we'll email tracking details as soon as it ships.",
            "As an apology, we've refunded the shipping cost of {amount} to your card.",
            "If you'd rather cancel, just reply to this email and we'll refund the full amount right away.",
        ),
    ),
    _EmailKind(
        (
            "Invite {rec} to speak about {topic} at our meetup in {city} on {date}.",
            "Please write a speaker invitation for {rec}: topic {topic}, {city}, {date}. We can't pay a fee.",
        ),
        "Speaking invitation: {topic} in {city}",
        (
            "I organise a monthly meetup in {city} for people working on {topic}, and I'd love to invite you to speak.",
            "Our next event is on {date}; talks are about 25 minutes plus questions, and we usually get 60 to 80 people.",
            "We can't offer a speaker fee, but we cover travel within the region and dinner afterwards.",
            "Your post about {detail} was widely shared in our group, so a talk along those lines would be perfect.",
            "Would you be interested?",
        ),
    ),
    _EmailKind(
        (
            "Write a friendly reminder to the team that the {deliverable} is due {date}.",
            "Reminder email to my team, {deliverable} deadline is {date}. Keep it light.",
        ),
        "Reminder: {deliverable} due {date}",
        (
            "Quick reminder that the {deliverable} is due on {date}.",
            "If you're blocked on anything, tell me today rather than the day before.",
            "{other} has put the template in the shared folder, so please start from that.",
            "Thanks, everyone, for the effort on this one.",
        ),
        "Hi team,",
    ),
)
_EMAIL_FILL = {
    "reason": (
        "a family wedding",
        "a medical appointment",
        "moving apartments",
        "my daughter's graduation",
        "a visa appointment at the consulate",
    ),
    "duty": ("the on-call rotation", "the customer support queue", "the morning stand-up", "my code reviews"),
    "project": (
        "the Q3 migration",
        "the website redesign",
        "the annual audit",
        "the Berlin trade fair",
        "the billing system rewrite",
        "the grant application",
    ),
    "detail": ("final demo", "data cleanup", "launch checklist", "budget forecast", "load testing"),
    "product": ("espresso machine", "standing desk", "pair of headphones", "ceramic dinner set", "robot vacuum"),
    "damage": (
        "the glass carafe was shattered",
        "one leg was bent",
        "the left earcup doesn't work",
        "two plates were cracked",
        "it won't charge",
    ),
    "topic": (
        "data engineering",
        "accessible web design",
        "urban beekeeping",
        "open-source maintenance",
        "climate risk modelling",
        "supply chain analytics",
    ),
    "issue": (
        "a leaking bathroom ceiling",
        "no hot water",
        "a broken heating system",
        "mould in the bedroom",
        "a front door lock that sticks",
    ),
    "assignment": ("term paper", "lab report", "research proposal", "final project", "literature review"),
    "deliverable": ("quarterly report", "grant budget", "design review", "release notes", "security questionnaire"),
    "role": ("data analyst", "product designer", "backend engineer", "project coordinator", "marketing lead"),
}
_EMAIL_GREETINGS = ("Hi {rec},", "Dear {rec},", "Hello {rec},", "Hi {rec}!")
_EMAIL_SIGNOFFS = ("Best,", "Kind regards,", "Thanks so much,", "Warm wishes,", "Many thanks,", "Cheers,")
_EMAIL_INTROS = (
    "Here's a draft you can adapt:",
    "Sure! Here's a version you can send:",
    "How about this:",
    "Here's a clear, friendly version:",
    "",
)
_EMAIL_TIPS = (
    "",
    "",
    "Tip: send it in the morning; people answer requests faster early in the day.",
    "Feel free to adjust the tone; I kept it short so it's easy to reply to.",
    'If you want it more formal, swap the greeting for "Dear" and drop the exclamation marks.',
)


def _email_slots(rng: random.Random) -> dict[str, Any]:
    d1 = _date_in(rng)
    slots: dict[str, Any] = {k: _pick(rng, v) for k, v in _EMAIL_FILL.items()}
    slots.update(
        rec=_pick(rng, FIRST_NAMES),
        other=_full_name(rng),
        last=_pick(rng, SURNAMES),
        me=_pick(rng, FIRST_NAMES),
        company=_pick(rng, COMPANIES),
        city=_pick(rng, CITIES),
        date=_pretty_date(d1),
        n=rng.randint(10000, 99999),
        amount=_money(round(rng.uniform(40, 12000), 2)),
        k=rng.randint(3, 21),
        unit=f"{rng.randint(1, 12)}{_pick(rng, 'ABCD')}",
        day1=_pretty_date(d1),
        day2=_pretty_date(d1 + dt.timedelta(days=rng.randint(1, 6))),
    )
    return slots


def _email_text(rng: random.Random, kind: _EmailKind, slots: dict[str, Any], lo: int, hi: int) -> str:
    body = [s for s in kind.body if rng.random() < 0.8][:hi] or list(kind.body[:lo])
    paragraphs = [" ".join(body[:2]), " ".join(body[2:])] if len(body) > 2 and rng.random() < 0.6 else [" ".join(body)]
    greeting = kind.greeting or _pick(rng, _EMAIL_GREETINGS)
    return (
        f"Subject: {kind.subject}\n\n{greeting}\n\n"
        + "\n\n".join(paragraphs)
        + f"\n\n{_pick(rng, _EMAIL_SIGNOFFS)}\n{{me}}"
    ).format(**slots)


def _email_task(rng: random.Random) -> _Task:
    kind, slots = _pick(rng, _EMAILS), _email_slots(rng)
    user = _pick(rng, kind.asks).format(**slots)
    if rng.random() < 0.3:
        user += f" My name is {slots['me']}."
    answer = "\n\n".join(
        p for p in (_pick(rng, _EMAIL_INTROS), _email_text(rng, kind, slots, 3, 5), _pick(rng, _EMAIL_TIPS)) if p
    )
    shorter = ("Can you make it shorter?", "Here's a tighter version:\n\n" + _email_text(rng, kind, slots, 2, 2))
    formal = (
        "Make it a bit more formal please.",
        "Of course:\n\n"
        + _email_text(rng, kind, slots, 3, 5)
        .replace("Hi ", "Dear ")
        .replace("!", ".")
        .replace("Cheers,", "Kind regards,")
        .replace("Thanks so much,", "Yours sincerely,"),
    )
    return _Task(user, answer, [shorter, formal])


# --------------------------------------------------------------------------------------------------- reports


_PROJECTS = (
    (
        "rebuild the Harbour Street bridge",
        "the current bridge has had a weight limit since an inspection found corroded steel",
    ),
    ("add {k} kilometres of protected bike lanes", "collisions involving cyclists rose for three years in a row"),
    ("expand the central library", "the building has not been renovated since the 1970s"),
    ("replace lead water pipes in older neighbourhoods", "about {k},000 homes are still served by lead pipes"),
    ("turn the old rail yard into {k}00 affordable homes", "rents in the city have outpaced wages for a decade"),
    ("build a new public swimming pool", "the nearest public pool closed in {year0}"),
    ("plant {k},000 street trees", "summer surface temperatures in some districts reach 50 °C"),
)
_CONCERNS = (
    "the cost estimate was too optimistic",
    "the plan skipped a proper traffic study",
    "small businesses on the route were not consulted",
    "the money would be better spent on road repairs",
    "the timeline ignores the supply problems other cities have had",
)
_FUNDING = (
    "a state infrastructure grant and a municipal bond",
    "the city's capital reserve",
    "a regional transport fund, with the rest from parking revenue",
    "a federal resilience programme",
)


def _report_council(rng: random.Random) -> tuple[str, list[str], list[str]]:
    city, mayor, critic = _pick(rng, CITIES), _full_name(rng), _full_name(rng)
    yes = rng.randint(5, 9)
    no = rng.randint(1, yes - 1)
    amt, k = round(rng.uniform(4, 180), 1), rng.randint(3, 40)
    project, why = _pick(rng, _PROJECTS)
    project, why = project.format(k=k), why.format(k=k, year0=rng.randint(2009, 2021))
    start, months = f"{_pick(rng, MONTHS)} {rng.randint(2027, 2028)}", rng.randint(10, 40)
    day = _pick(rng, WEEKDAYS[:5])
    paras = [
        f"The {city} city council voted {yes}-{no} on {day} to approve a ${amt} million plan to {project}. "
        f"Supporters pointed out that {why}.",
        _fill(
            rng,
            (
                "Work is expected to begin in {s} and take about {m} months. The money will come from {f}.",
                "If contracts are signed on time, construction starts in {s} and lasts roughly {m} months, "
                "funded by {f}.",
            ),
            s=start,
            m=months,
            f=_pick(rng, _FUNDING),
        ),
        f"Councillor {critic}, who voted against, said {_pick(rng, _CONCERNS)}. "
        f"“{_pick(rng, _QUOTES_OFFICIAL)}” Mayor {mayor} said after the vote.",
        f"Residents can comment on the detailed design at public meetings in {_pick(rng, MONTHS)}, and the plans "
        f"will be posted on the city website.",
    ]
    facts = [
        f"{city} council approved ({yes}-{no}) a ${amt}M plan to {project}.",
        f"Work starts {start}, about {months} months.",
        f"Opposition: {critic} argued {_pick(rng, _CONCERNS)}.",
    ]
    return f"{city} council approves ${amt}M plan to {project}", paras, facts


_QUOTES_OFFICIAL = (
    "This is the kind of investment people will thank us for in twenty years.",
    "We listened to hundreds of residents, and this plan reflects what they asked for.",
    "Nobody pretends it will be cheap, but doing nothing would cost more.",
    "The hard part starts now: delivering it on time and on budget.",
)
_TAILWINDS = (
    "strong demand for its subscription plans",
    "a rebound in business travel",
    "price increases that stuck",
    "lower shipping costs",
    "new customers in Asia",
    "a popular product refresh",
)
_HEADWINDS = (
    "a weak holiday season in Europe",
    "higher interest costs on its debt",
    "delays at a key supplier",
    "a stronger dollar",
    "rising wages in its warehouses",
    "a costly product recall",
)


def _report_earnings(rng: random.Random) -> tuple[str, list[str], list[str]]:
    co, ceo, q = _pick(rng, COMPANIES), _full_name(rng), _pick(rng, ("first", "second", "third", "fourth"))
    rev, pct = round(rng.uniform(40, 2400), 1), round(rng.uniform(-12, 28), 1)
    up = pct >= 0
    inc = round(rev * rng.uniform(0.02, 0.15), 1)
    staff = rng.randint(80, 9000)
    d1, d2 = _pick(rng, _TAILWINDS), _pick(rng, _HEADWINDS)
    paras = [
        f"{co} reported {q}-quarter revenue of ${rev:,} million on {_pick(rng, WEEKDAYS[:5])}, "
        f"{'up' if up else 'down'} {abs(pct)}% from a year earlier. Net income came in at ${inc} million.",
        f"The company credited {d1}, while noting that {d2} weighed on margins. "
        f"It employs about {staff:,} people and {'plans to keep hiring' if up else 'announced a hiring freeze'}.",
        f"“{_pick(rng, _QUOTES_CEO)}” chief executive {ceo} told analysts on a call.",
        f"Shares {'rose' if up else 'fell'} {round(rng.uniform(0.5, 9), 1)}% in after-hours trading.",
    ]
    facts = [
        f"{co} {q}-quarter revenue ${rev:,}M ({'+' if up else '−'}{abs(pct)}% year on year), net income ${inc}M.",
        f"Drivers: {d1}; headwind: {d2}.",
        f"~{staff:,} employees; {'hiring' if up else 'hiring freeze'}.",
    ]
    return f"{co} revenue {'rises' if up else 'falls'} {abs(pct)}% in {q} quarter", paras, facts


_QUOTES_CEO = (
    "We grew where we chose to invest and cut back where customers told us to.",
    "It was a noisy quarter, but the underlying business is healthier than a year ago.",
    "We're not going to chase revenue that doesn't make money.",
    "Our customers kept spending even as they got more careful.",
)
_STUDY_FINDINGS = (
    ("adults", "walked at least {k},000 steps a day", "had a {p}% lower risk of heart disease"),
    ("teenagers", "slept more than eight hours on school nights", "scored {p}% higher on memory tests"),
    ("office workers", "took a short walk after lunch", "reported {p}% less afternoon fatigue"),
    ("older adults", "learned a new language for six months", "improved attention scores by {p}%"),
    ("patients", "received follow-up calls from a pharmacist", "were {p}% less likely to be readmitted"),
    ("children", "spent at least {k} hours a week outdoors", "were {p}% less likely to develop myopia"),
)


def _report_study(rng: random.Random) -> tuple[str, list[str], list[str]]:
    who, did, found = _pick(rng, _STUDY_FINDINGS)
    k, p, n, years = rng.randint(2, 9), rng.randint(8, 41), rng.randint(300, 60000), rng.randint(1, 12)
    did, found = did.format(k=k), found.format(p=p)
    author, uni = _full_name(rng), f"the University of {_pick(rng, CITIES)}"
    journal = _pick(
        rng,
        (
            "the Journal of Applied Epidemiology",
            "Sleep and Health Reports",
            "Public Health Open",
            "the European Review of Preventive Medicine",
        ),
    )
    paras = [
        f"A study of {n:,} {who} followed for {years} year{'s' if years > 1 else ''} found that those who {did} {found} "
        f"than those who did not. The results were published in {journal}.",
        f"The team, led by {author} at {uni}, adjusted for age, income and smoking. "
        f"“{_pick(rng, _QUOTES_SCIENTIST)}” {author.split()[0]} said.",
        f"The study was observational, so it cannot prove cause and effect, and participants reported their own "
        f"habits. A randomised trial with about {rng.randint(2, 9) * 100} volunteers is planned for next year.",
    ]
    facts = [
        f"{n:,} {who}, {years}-year study in {journal}.",
        f"Those who {did} {found}.",
        "Observational: no proof of causation; a randomised trial is planned.",
    ]
    title = _pick(
        rng,
        (
            f"{who.capitalize()} who {did} {found}, study of {n:,} finds",
            f"Study: {who} who {did} {found}",
            f"{author.split()[1]} study: {who} who {did} {found}",
        ),
    )
    return title, paras, facts


_QUOTES_SCIENTIST = (
    "The effect was larger than we expected, and it held up in every subgroup we looked at.",
    "It's encouraging, but people shouldn't change their routines based on one study.",
    "What surprised us was how early the difference showed up.",
)
_CAUSES = (
    "an expired TLS certificate on an internal load balancer",
    "a configuration change that set a connection pool size to zero",
    "a database failover that took longer than expected",
    "a full disk on the primary message broker",
    "a bad deploy that doubled the number of retries to a downstream service",
)


def _report_incident(rng: random.Random) -> tuple[str, list[str], list[str]]:
    svc = _pick(rng, ("checkout API", "login service", "search", "image uploads", "payment webhooks", "mobile sync"))
    day = _date_in(rng)
    h, m, dur = rng.randint(0, 22), rng.randint(0, 59), rng.randint(12, 190)
    end = dt.datetime(2026, 1, 1, h, m) + dt.timedelta(minutes=dur)
    pct, detect, users = rng.randint(4, 100), rng.randint(2, 25), rng.randint(200, 90000)
    cause = _pick(rng, _CAUSES)
    paras = [
        f"On {day.isoformat()} between {h:02d}:{m:02d} and {end:%H:%M} UTC, the {svc} returned errors for about "
        f"{pct}% of requests. Roughly {users:,} users were affected.",
        f"The root cause was {cause}. Monitoring paged the on-call engineer after {detect} minutes; the team rolled "
        f"back the change and error rates returned to normal {dur} minutes after the start.",
        "Follow-up actions: " + "; ".join(_some(rng, _ACTIONS, 2, 3)) + ".",
    ]
    facts = [
        f"{svc} outage on {day.isoformat()}, {dur} min, ~{pct}% of requests failed, ~{users:,} users.",
        f"Cause: {cause}.",
        f"Detected after {detect} min; fixed by rollback.",
    ]
    return f"Incident report: {svc} errors on {day.isoformat()}", paras, facts


_ACTIONS = (
    "alert on certificate expiry 30 days ahead",
    "add a canary stage to config deploys",
    "cap retries with a circuit breaker",
    "run a failover drill every quarter",
    "add disk usage alerts at 80%",
    "document the rollback steps in the runbook",
)


def _report_event(rng: random.Random) -> tuple[str, list[str], list[str]]:
    city, winner = _pick(rng, CITIES), _full_name(rng)
    event = _pick(rng, ("half marathon", "charity 10K", "night run", "harbour swim", "cycling sportive"))
    n, raised = rng.randint(8, 240) * 100, rng.randint(20, 900) * 1000
    mins, secs = rng.randint(29, 75), rng.randint(0, 59)
    weather = _pick(rng, ("cool, dry weather", "steady drizzle", "strong headwinds along the coast", "unexpected sun"))
    paras = [
        f"More than {n:,} participants took part in the {city} {event} on Sunday, in {weather}.",
        f"{winner} won in {mins}:{secs:02d}, {rng.randint(3, 90)} seconds ahead of the runner-up. "
        f"“{_pick(rng, _QUOTES_ATHLETE)}” {winner.split()[0]} said at the finish.",
        f"Organisers said the event raised ${raised:,} for {_pick(rng, _CHARITIES)}. Several streets in the centre "
        f"were closed until early afternoon.",
    ]
    facts = [
        f"{n:,} took part in the {city} {event}.",
        f"Winner: {winner}, {mins}:{secs:02d}.",
        f"${raised:,} raised for charity.",
    ]
    return f"{winner} wins {city} {event} as {n:,} take part", paras, facts


_QUOTES_ATHLETE = (
    "The last two kilometres hurt more than I want to admit.",
    "I came here to enjoy it, and I did.",
    "The crowd near the river carried me home.",
)
_CHARITIES = (
    "a children's hospital",
    "a local food bank",
    "mental health services",
    "a coastal clean-up project",
    "refugee support groups",
)


_ROLES = (
    "has run a bakery on the high street for {k} years",
    "chairs the local residents' association",
    "teaches economics at the University of {city}",
    "works night shifts at the city hospital",
    "follows the sector for {company}",
    "moved to {city} from abroad {k} years ago",
    "sits on the board of a housing charity",
    "owns two cafés near the station",
)
_REACTIONS = (
    "the decision was long overdue",
    "nobody had explained where the money would come from",
    "it would take years before anyone noticed a difference",
    "the numbers looked better than expected",
    "people were tired of promises",
    "it was a good start but nowhere near enough",
    "the details mattered more than the headline",
    "it was too early to judge",
    "the timing could hardly be worse",
    "neighbours had been asking for exactly this",
)
_NEXT_STEPS = (
    "A detailed plan",
    "An independent review",
    "The first progress report",
    "A public consultation",
    "A decision on the second phase",
    "The final budget",
)


def _reactions(rng: random.Random) -> str:
    n = rng.randint(2, 3)
    roles, reactions = rng.sample(_ROLES, n), rng.sample(_REACTIONS, n)
    return " ".join(
        f"{_full_name(rng)}, who {role.format(k=rng.randint(2, 30), city=_pick(rng, CITIES), company=_pick(rng, COMPANIES))}"
        f", said {reaction}."
        for role, reaction in zip(roles, reactions, strict=True)
    )


def _whats_next(rng: random.Random) -> str:
    return (
        f"{_pick(rng, _NEXT_STEPS)} is expected by {_pick(rng, MONTHS)} {rng.randint(2027, 2029)}, and officials "
        f"promised an update every {rng.randint(2, 6)} months. Readers can follow the story at "
        f"{_pick(rng, ('our live page', 'the city website', 'the company investor page'))}."
    )


def _report(rng: random.Random) -> tuple[str, list[str], list[str]]:
    return _pick(rng, (_report_council, _report_earnings, _report_study, _report_incident, _report_event))(rng)


def _summary_task(rng: random.Random) -> _Task:
    title, paras, facts = _report(rng)
    doc = "\n\n".join(paras)
    ask = _pick(
        rng,
        (
            "Summarize this in {k} bullet points:",
            "Can you give me a short summary of this article?",
            "TL;DR please:",
            "Summarise for a busy executive, max {k} bullets.",
            "I need the key facts from this for a newsletter:",
        ),
    ).format(k=len(facts))
    user = f"{ask}\n\n{doc}" if rng.random() < 0.7 else f"{doc}\n\n{ask}"
    answer = "\n".join(f"- {f}" for f in facts)
    if rng.random() < 0.4:
        answer = f"**{title}**\n\n{answer}"
    follow = (
        ("Now write a one-sentence headline for it.", title + "."),
        (
            "What's missing from the article that a reader would want to know?",
            "A few things: "
            + _pick(
                rng,
                (
                    "how the numbers compare with previous years",
                    "who will pay if costs overrun",
                    "what independent experts think",
                ),
            )
            + ", and where to find "
            "the primary source. I'd add a link to the original document if you publish it.",
        ),
    )
    return _Task(user, answer, list(follow))


# --------------------------------------------------------------------------------------------------- explainers


@dataclass(frozen=True)
class _Topic:
    name: str
    asks: tuple[str, ...]
    facts: tuple[str, ...]
    simple: str


_TOPICS = (
    _Topic(
        "photosynthesis",
        ("How does photosynthesis work?", "Can you explain photosynthesis simply?"),
        (
            "Photosynthesis is how plants, algae and some bacteria turn light into chemical energy.",
            "It happens mainly in the chloroplasts, which contain the green pigment chlorophyll.",
            "Chlorophyll absorbs mostly red and blue light and reflects green, which is why leaves look green.",
            "In the light-dependent reactions, water is split, releasing oxygen as a by-product.",
            "The energy captured is stored briefly in molecules called ATP and NADPH.",
            "In the Calvin cycle, that energy is used to build sugars from carbon dioxide taken from the air.",
            "The overall equation is 6 CO2 + 6 H2O + light → C6H12O6 + 6 O2.",
            "Almost all the oxygen in the atmosphere was produced this way over billions of years.",
            "Factors like light intensity, temperature and CO2 concentration limit how fast it can go.",
        ),
        "Plants catch sunlight with their leaves and use it to make food out of air and water, breathing out oxygen.",
    ),
    _Topic(
        "compound interest",
        ("What is compound interest?", "Why does everyone say compound interest is powerful?"),
        (
            "Compound interest means you earn interest on your interest, not just on the money you put in.",
            "With simple interest, $1,000 at 5% earns $50 every year, forever.",
            "With compounding, the second year's 5% is calculated on $1,050, so you earn $52.50, and so on.",
            "The formula is A = P(1 + r/n)^(nt), where n is how many times per year interest is added.",
            "A handy shortcut is the rule of 72: divide 72 by the rate to estimate how many years it takes to double.",
            "At 6% a year, money roughly doubles in 12 years; at 9% in about 8.",
            "Time matters more than the rate for most savers, which is why starting early makes such a difference.",
            "The same maths works against you with credit card debt, where rates above 20% are common.",
            "Fees and inflation reduce the real return, so compare the net rate, not the headline number.",
        ),
        "If your money earns money, and that money earns money too, your savings grow faster and faster.",
    ),
    _Topic(
        "vaccines",
        ("How do vaccines work?", "What does a vaccine actually do in the body?"),
        (
            "A vaccine trains the immune system to recognise a germ without you having to get sick first.",
            "It contains a harmless piece or version of the pathogen, or instructions for making one of its proteins.",
            "The immune system responds by making antibodies and specialised white blood cells.",
            "Some of those cells become memory cells that can stay in the body for years.",
            "If the real germ shows up later, the memory cells recognise it and respond much faster.",
            "That quick response often stops the infection or makes it far milder.",
            "Some vaccines need boosters because immunity fades or the virus changes over time.",
            "When enough people are immune, it's harder for a disease to spread, which also protects people who "
            "can't be vaccinated.",
            "Side effects like a sore arm or a mild fever are signs the immune system is responding.",
        ),
        "A vaccine is like a practice drill for your body, so it knows how to fight the real germ quickly.",
    ),
    _Topic(
        "TCP vs UDP",
        ("What's the difference between TCP and UDP?", "When should I use UDP instead of TCP?"),
        (
            "TCP and UDP are the two main transport protocols on the internet, both running on top of IP.",
            "TCP sets up a connection with a three-way handshake before any data is sent.",
            "TCP guarantees that bytes arrive in order and retransmits anything that gets lost.",
            "It also has flow control and congestion control, so it slows down when the network is busy.",
            "UDP just sends individual datagrams with no handshake, no ordering and no retransmission.",
            "That makes UDP lower-latency, which suits video calls, online games and DNS lookups.",
            "If you use UDP, your application has to handle loss and reordering itself, if it cares.",
            "HTTP/3 runs over QUIC, which is built on UDP but re-implements reliability in user space.",
            "A simple rule: use TCP when every byte matters, UDP when fresh data matters more than complete data.",
        ),
        "TCP is like a phone call where you check the other person heard everything; UDP is like shouting updates.",
    ),
    _Topic(
        "why the sky is blue",
        ("Why is the sky blue?", "why is the sky blue but sunsets are red?"),
        (
            "Sunlight contains all visible colours, which together look white.",
            "When light passes through the atmosphere, it bounces off gas molecules, mostly nitrogen and oxygen.",
            "This Rayleigh scattering is much stronger for short wavelengths, so blue light is scattered far more "
            "than red.",
            "The scattered blue light reaches your eyes from every direction, so the whole sky looks blue.",
            "Violet is scattered even more, but the sun emits less of it and our eyes are less sensitive to it.",
            "At sunset, light travels through much more air, so most of the blue is scattered away before it reaches you.",
            "What's left is the red and orange end of the spectrum, which is why sunsets are warm-coloured.",
            "On Mars, fine dust changes the scattering and sunsets actually look bluish.",
        ),
        "Air bounces blue light around the sky much more than red light, so blue comes at us from everywhere.",
    ),
    _Topic(
        "inflation",
        ("What causes inflation?", "Can you explain inflation and why central banks raise rates?"),
        (
            "Inflation is a general rise in prices, which means each unit of money buys less.",
            "It's usually measured with a consumer price index that tracks a basket of typical purchases.",
            "Demand-pull inflation happens when people and businesses want to buy more than the economy can produce.",
            "Cost-push inflation comes from rising costs, such as energy prices or wages, being passed on to customers.",
            "Expectations matter too: if everyone expects prices to rise, they ask for higher wages and raise prices.",
            "Most central banks aim for about 2% a year, low enough not to hurt but above zero.",
            "Raising interest rates makes borrowing more expensive, which cools spending and eventually prices.",
            "Rate changes take time to work, often a year or more to show up fully in inflation.",
            "High inflation hurts savers and people on fixed incomes the most.",
        ),
        "When prices go up across the board, your money buys less than before; that's inflation.",
    ),
    _Topic(
        "GPS",
        ("How does GPS know where I am?", "how does gps work"),
        (
            "GPS relies on a constellation of about 30 satellites orbiting roughly 20,000 km above the Earth.",
            "Each satellite continuously broadcasts its position and the exact time from an atomic clock.",
            "Your receiver measures how long each signal took to arrive, which gives its distance to that satellite.",
            "With distances to at least four satellites, it can solve for latitude, longitude, altitude and clock error.",
            "Timing has to be extremely precise: an error of one microsecond is about 300 metres of distance.",
            "The satellites' clocks even have to be corrected for effects predicted by relativity.",
            "Phones speed things up with assisted GPS, downloading satellite data over the mobile network.",
            "Tall buildings reflect signals, which is why your location jumps around in city centres.",
            "Other systems like Galileo, GLONASS and BeiDou work the same way, and phones use several at once.",
        ),
        "Satellites shout the time, and your phone works out where it is from how long the shouts took to arrive.",
    ),
    _Topic(
        "DNS",
        ("What is DNS and how does it work?", "What happens when I type a website name into my browser?"),
        (
            "DNS, the Domain Name System, translates names like example.com into IP addresses computers can route to.",
            "Your device first checks its own cache and then asks a recursive resolver, often run by your ISP.",
            "If the resolver doesn't know the answer, it asks a root server, which points it to the right top-level "
            "domain server.",
            "The top-level domain server points to the authoritative name server for that specific domain.",
            "The authoritative server returns the actual record, for example an A record with an IPv4 address.",
            "Every answer has a time to live, which says how long it may be cached.",
            "Caching is why DNS changes can take a while to reach everyone.",
            "Other record types include MX for mail servers, CNAME for aliases and TXT for verification strings.",
        ),
        "DNS is the internet's phone book: it turns website names into the number addresses computers use.",
    ),
    _Topic(
        "garbage collection",
        ("How does garbage collection work in Python?", "What is a garbage collector?"),
        (
            "A garbage collector automatically frees memory that a program can no longer reach.",
            "CPython mainly uses reference counting: every object tracks how many references point to it.",
            "When the count drops to zero, the object is freed immediately.",
            "Reference counting can't free cycles, like two objects that refer to each other.",
            "For that, CPython has a cyclic garbage collector that periodically looks for unreachable groups of objects.",
            "It's generational: new objects are checked often, long-lived ones rarely, because most objects die young.",
            "The JVM and .NET use tracing collectors instead, which start from roots and mark everything reachable.",
            "You can inspect or tune Python's collector with the gc module, but you rarely need to.",
        ),
        "The garbage collector is a cleaner that throws away things your program can't use any more.",
    ),
    _Topic(
        "plate tectonics",
        ("What is plate tectonics?", "Why do earthquakes happen where they do?"),
        (
            "The Earth's outer shell is broken into large rigid plates that slowly move over the hotter mantle.",
            "They move a few centimetres a year, about as fast as fingernails grow.",
            "Where plates pull apart, as along the Mid-Atlantic Ridge, magma rises and forms new crust.",
            "Where they collide, one plate can sink under the other, creating deep trenches and volcanic arcs.",
            "When two continental plates collide, neither sinks easily, and mountains like the Himalayas form.",
            "At transform boundaries, like the San Andreas Fault, plates slide past each other sideways.",
            "Stress builds up where plates stick, and its sudden release is what we feel as an earthquake.",
            "That's why most earthquakes and volcanoes are concentrated along plate boundaries such as the Pacific "
            "Ring of Fire.",
        ),
        "The ground is made of giant puzzle pieces that slowly move, and earthquakes happen where they bump.",
    ),
    _Topic(
        "index funds",
        ("What is an index fund?", "Are index funds a good idea for a beginner?"),
        (
            "An index fund holds all, or a representative sample, of the stocks in a market index such as the S&P 500.",
            "Instead of picking winners, it simply tries to match the market's return.",
            "Because there's little trading and no research team, fees are usually very low.",
            "Over long periods, most actively managed funds fail to beat their index after fees.",
            "Index funds are diversified, so one company going bust has only a small effect.",
            "They still go down when the whole market goes down, sometimes by 30% or more.",
            "They make most sense for money you won't need for at least five to ten years.",
            "ETFs are a common way to buy index funds, trading on an exchange like a single stock.",
        ),
        "An index fund buys a little bit of lots of companies, so you own a slice of the whole market.",
    ),
    _Topic(
        "sleep cycles",
        ("What are sleep cycles?", "Why do I feel groggy when my alarm goes off?"),
        (
            "Sleep isn't uniform; it runs in cycles of roughly 90 minutes through the night.",
            "Each cycle moves from light sleep into deep slow-wave sleep and then into REM sleep.",
            "Deep sleep is dominant early in the night and is important for physical recovery.",
            "REM sleep gets longer towards the morning and is linked to memory and emotional processing.",
            "Waking up during deep sleep causes sleep inertia, that heavy groggy feeling.",
            "Adults typically go through four to six cycles a night.",
            "A consistent wake-up time, even at weekends, helps stabilise your body clock.",
            "Caffeine has a half-life of about five to six hours, so an afternoon coffee can still affect sleep.",
        ),
        "At night your sleep goes up and down like waves, and waking in a deep wave makes you feel groggy.",
    ),
    _Topic(
        "HTTPS",
        ("How does HTTPS keep my data safe?", "What does the padlock in the browser mean?"),
        (
            "HTTPS is HTTP sent over TLS, an encryption protocol.",
            "During the TLS handshake, the server presents a certificate signed by a certificate authority.",
            "Your browser checks that signature against authorities it already trusts and checks the domain name matches.",
            "The two sides then agree on a shared secret key, usually with an elliptic-curve Diffie-Hellman exchange.",
            "Everything after that is encrypted and integrity-protected with fast symmetric ciphers like AES-GCM.",
            "This stops people on the same Wi-Fi, or your ISP, from reading or changing the pages you load.",
            "The padlock means the connection is encrypted, not that the website itself is trustworthy.",
            "TLS 1.3 cut the handshake down to a single round trip, which makes HTTPS barely slower than HTTP.",
        ),
        "HTTPS puts your web traffic in a locked box that only your browser and the website can open.",
    ),
    _Topic(
        "the greenhouse effect",
        ("What is the greenhouse effect?", "How do greenhouse gases warm the planet?"),
        (
            "Sunlight passes through the atmosphere and warms the Earth's surface.",
            "The warm surface gives off energy as infrared radiation.",
            "Gases like carbon dioxide, methane and water vapour absorb some of that infrared and re-emit it in all "
            "directions, including back down.",
            "Without any greenhouse effect, the average surface temperature would be around −18 °C instead of about "
            "15 °C.",
            "Burning fossil fuels has raised CO2 concentrations from about 280 ppm before industrialisation to over 420 ppm.",
            "More greenhouse gas means more energy is trapped, which raises the average temperature.",
            "Feedbacks like melting ice, which reflects less sunlight, can amplify the warming.",
            "Methane is far more potent than CO2 per molecule but breaks down within about a decade.",
        ),
        "Some gases in the air act like a blanket, keeping heat in, and we've been making the blanket thicker.",
    ),
    _Topic(
        "supply and demand",
        ("Can you explain supply and demand?", "Why do concert tickets get so expensive?"),
        (
            "Demand describes how much of something people want to buy at each possible price.",
            "Supply describes how much producers are willing to sell at each price.",
            "Usually demand falls as the price rises, and supply rises as the price rises.",
            "The market price tends to settle where the two curves meet, called the equilibrium.",
            "If something becomes popular suddenly, demand shifts up and the price rises until supply catches up.",
            "When supply is fixed, like seats in a stadium, extra demand goes almost entirely into higher prices.",
            "Price caps below the equilibrium lead to shortages, queues or resale markets.",
            "Elasticity measures how strongly quantity reacts to price; insulin demand is inelastic, restaurant meals "
            "much less so.",
        ),
        "When lots of people want something and there isn't much of it, the price goes up.",
    ),
    _Topic(
        "neural network training",
        ("How do neural networks learn?", "What is backpropagation, in plain words?"),
        (
            "A neural network is a function with millions of adjustable numbers called weights.",
            "Training starts with random weights, so the first predictions are basically guesses.",
            "A loss function measures how wrong the predictions are on a batch of examples.",
            "Backpropagation uses the chain rule to work out how much each weight contributed to the error.",
            "Gradient descent then nudges every weight a little in the direction that reduces the loss.",
            "The learning rate controls the size of those nudges; too large and training diverges, too small and it crawls.",
            "Repeating this over many batches slowly shapes the weights into something useful.",
            "A separate validation set tells you whether the model is learning general patterns or just memorising.",
        ),
        "The network makes a guess, checks how wrong it was, and adjusts itself a tiny bit, millions of times.",
    ),
)
_EXPLAIN_OPENERS = (
    "",
    "",
    "Sorry if this is a basic question.",
    "I've never really understood this.",
    "My {who} asked me and I couldn't explain it.",
    "For a presentation tomorrow:",
    "Explain like I'm not an expert:",
)
_EXPLAIN_WHO = ("daughter", "son", "nephew", "students", "grandmother", "team lead")


def _ex_photosynthesis(rng: random.Random) -> str:
    trees, kg = rng.randint(2, 40), rng.choice((10, 15, 20, 22, 25))
    return (
        f"To put numbers on it: a mature tree takes up roughly {kg} kg of CO2 a year, so {trees} trees absorb "
        f"about {trees * kg:,} kg, about what a petrol car emits over {trees * kg * 5:,} km."
    )


def _ex_compound(rng: random.Random) -> str:
    p, r, y = (
        rng.choice((500, 1000, 2500, 5000, 10000, 20000)),
        rng.choice((3, 4, 5, 6, 7, 8)),
        rng.choice((5, 10, 20, 30)),
    )
    return (
        f"For example, ${p:,} at {r}% for {y} years grows to about ${p * (1 + r / 100) ** y:,.0f} with yearly "
        f"compounding, against ${p * (1 + r * y / 100):,.0f} with simple interest."
    )


def _ex_vaccines(rng: random.Random) -> str:
    e, n = rng.randint(60, 95), rng.randint(2, 90) * 1000
    return (
        f"As an example, if a vaccine is {e}% effective and {n:,} vaccinated people are exposed, about "
        f"{n * (100 - e) // 100:,} might still catch the disease, usually in a milder form."
    )


def _ex_tcp(rng: random.Random) -> str:
    fps, mb = rng.choice((24, 25, 30, 60)), rng.randint(2, 900)
    return (
        f"A video call at {fps} frames per second sends a new frame every {1000 // fps} ms, so a lost frame is "
        f"better skipped than resent, while a {mb} MB download needs every single byte."
    )


def _ex_sky(rng: random.Random) -> str:
    blue, red = rng.randint(440, 480), rng.randint(620, 700)
    return (
        f"The effect scales with the fourth power of frequency: light at {blue} nm is scattered about "
        f"{(red / blue) ** 4:.1f} times more than light at {red} nm."
    )


def _ex_inflation(rng: random.Random) -> str:
    r, price, n = rng.choice((2, 3, 4, 5, 7, 10)), rng.choice((3.5, 12, 40, 250, 1200)), rng.randint(3, 20)
    return (
        f"At {r}% a year, something that costs ${_num(price)} today would cost about "
        f"${price * (1 + r / 100) ** n:,.2f} in {n} years."
    )


def _ex_gps(rng: random.Random) -> str:
    d, us = rng.randint(20200, 25000), rng.choice((1, 2, 5, 10))
    return (
        f"A signal from a satellite {d:,} km away takes about {d / 300:.0f} ms to arrive, and a clock error of "
        f"{us} microsecond{'s' if us > 1 else ''} would shift your position by roughly {us * 300:,} m."
    )


def _ex_dns(rng: random.Random) -> str:
    ttl, host = rng.choice((60, 300, 900, 3600, 86400)), _slug(_pick(rng, COMPANIES)).replace("-", "")
    return (
        f"For instance, a lookup of www.{host}.com might return an A record with a TTL of {ttl:,} seconds, so "
        f"resolvers can reuse that answer for {ttl // 60:,} minutes before asking again."
    )


def _ex_gc(rng: random.Random) -> str:
    a, b = rng.sample(("data", "rows", "cache", "items", "buf", "nodes", "result"), 2)
    return (
        f"In `{a} = [1, 2, 3]` followed by `{b} = {a}`, the list has two references; after `del {a}` and "
        f"`{b} = None` its count drops to zero and it is freed straight away."
    )


def _ex_plates(rng: random.Random) -> str:
    cm, years = rng.randint(2, 10), rng.choice((1_000, 10_000, 100_000, 1_000_000))
    return (
        f"At {cm} cm a year, two plates drift about {cm * years / 100_000:,.2f} km apart in {years:,} years, "
        "which adds up to whole oceans over geological time."
    )


def _ex_index(rng: random.Random) -> str:
    p, y, r = rng.choice((5000, 10000, 25000, 50000)), rng.choice((10, 20, 30)), rng.choice((5, 6, 7))
    cheap, dear = rng.choice((0.05, 0.1, 0.2)), rng.choice((1, 1.5, 2))
    return (
        f"Fees matter: ${p:,} growing at {r}% a year for {y} years ends at about "
        f"${p * (1 + (r - cheap) / 100) ** y:,.0f} with a {cheap}% fee but ${p * (1 + (r - dear) / 100) ** y:,.0f} "
        f"with a {dear}% fee."
    )


def _ex_sleep(rng: random.Random) -> str:
    start = dt.datetime(2026, 1, 1, rng.choice((21, 22, 23)), rng.choice((0, 15, 30, 45)))
    wake = start + dt.timedelta(minutes=15 + 5 * 90)
    return (
        f"If you go to bed at {start:%H:%M} and take about 15 minutes to fall asleep, five full cycles end "
        f"around {wake:%H:%M}, a better alarm time than half an hour later."
    )


def _ex_https(rng: random.Random) -> str:
    host = _slug(_pick(rng, COMPANIES)).replace("-", "")
    return (
        f"When you open https://{host}.com, the certificate has to name {host}.com; free certificates like "
        f"Let's Encrypt's last {_pick(rng, ('90', 'ninety'))} days and are renewed automatically."
    )


def _ex_greenhouse(rng: random.Random) -> str:
    kwh = rng.randint(6, 30) * 1000
    return (
        f"A home that burns {kwh:,} kWh of gas a year for heating emits roughly {kwh * 0.2 / 1000:.1f} tonnes "
        "of CO2, most of which stays in the atmosphere for centuries."
    )


def _ex_supply(rng: random.Random) -> str:
    seats, fans = rng.randint(2, 90) * 1000, rng.randint(3, 20)
    return (
        f"If {fans} times as many fans want tickets as a {seats:,}-seat venue holds, resale prices climb until "
        f"only about {seats:,} buyers are still willing to pay them."
    )


def _ex_training(rng: random.Random) -> str:
    lr, w, g = rng.choice((0.1, 0.01, 0.001)), round(rng.uniform(-2, 2), 3), round(rng.uniform(-5, 5), 2)
    return (
        f"With a learning rate of {lr}, a weight of {w} and a gradient of {g}, one step moves the weight to "
        f"{w - lr * g:.4f}."
    )


_TOPIC_EXAMPLES: dict[str, Callable[[random.Random], str]] = {
    "photosynthesis": _ex_photosynthesis,
    "compound interest": _ex_compound,
    "vaccines": _ex_vaccines,
    "TCP vs UDP": _ex_tcp,
    "why the sky is blue": _ex_sky,
    "inflation": _ex_inflation,
    "GPS": _ex_gps,
    "DNS": _ex_dns,
    "garbage collection": _ex_gc,
    "plate tectonics": _ex_plates,
    "index funds": _ex_index,
    "sleep cycles": _ex_sleep,
    "HTTPS": _ex_https,
    "the greenhouse effect": _ex_greenhouse,
    "supply and demand": _ex_supply,
    "neural network training": _ex_training,
}


def _explain_task(rng: random.Random) -> _Task:
    t = _pick(rng, _TOPICS)
    opener = _pick(rng, _EXPLAIN_OPENERS).format(who=_pick(rng, _EXPLAIN_WHO))
    user = f"{opener} {_pick(rng, t.asks)}".strip()
    picked = sorted(rng.sample(range(len(t.facts)), _lognorm_int(rng, 3, 0.3, 2, 4)))
    facts = [t.facts[i] for i in picked]
    facts.insert(rng.randint(1, len(facts)), _TOPIC_EXAMPLES[t.name](rng))
    if rng.random() < 0.4:
        body = "\n".join(f"- {f}" for f in facts)
        answer = f"{_pick(rng, ('Here is the short version.', 'Good question!', 'In short:', ''))}\n\n{body}"
    else:
        cut = max(1, len(facts) // 2)
        answer = " ".join(facts[:cut]) + "\n\n" + " ".join(facts[cut:])
    if rng.random() < 0.4:
        answer += (
            f"\n\n{_pick(rng, ('In one sentence:', 'The simple picture:', 'If you remember one thing:'))} {t.simple}"
        )
    follow = [
        (_pick(rng, ("Can you explain it like I'm ten?", "Simpler please?", "And for a kid?")), t.simple),
        (
            "Do you have a source I could read?",
            f"For {t.name}, a good introductory textbook or an encyclopedia entry is the best start; "
            f"look for one that was updated recently. I can also suggest search terms if you tell me "
            "how deep you want to go.",
        ),
    ]
    return _Task(user.lstrip(), answer.strip(), follow)


# --------------------------------------------------------------------------------------------------- travel


@dataclass(frozen=True)
class _City:
    name: str
    sights: tuple[str, ...]
    areas: tuple[str, ...]
    foods: tuple[str, ...]
    transport: str
    currency: str
    daily: int


_CITY_GUIDES = (
    _City(
        "Lisbon",
        (
            "the Jerónimos Monastery in Belém",
            "São Jorge Castle",
            "the LX Factory",
            "the Gulbenkian Museum",
            "a sunset at the Miradouro da Senhora do Monte",
            "tram 28 through Alfama",
        ),
        ("Alfama", "Príncipe Real", "Cais do Sodré"),
        ("pastéis de nata", "grilled sardines", "bifana", "bacalhau à Brás"),
        "Buy a Viva Viagem card for the metro, trams and the ferry to Cacilhas.",
        "EUR",
        95,
    ),
    _City(
        "Kyoto",
        (
            "Fushimi Inari at dawn",
            "the Arashiyama bamboo grove",
            "Kinkaku-ji",
            "the Philosopher's Path",
            "Nishiki Market",
            "a tea ceremony in Gion",
        ),
        ("Gion", "Higashiyama", "Pontocho"),
        ("yudofu", "matcha sweets", "kaiseki", "nishin soba"),
        "City buses cover most sights; an ICOCA card works on buses, subway and JR trains.",
        "JPY",
        14000,
    ),
    _City(
        "Mexico City",
        (
            "the Museo Nacional de Antropología",
            "Chapultepec Park",
            "the Frida Kahlo Museum",
            "the murals at the Palacio Nacional",
            "a boat in Xochimilco",
            "Teotihuacan on a day trip",
        ),
        ("Roma Norte", "Condesa", "Coyoacán"),
        ("tacos al pastor", "chilaquiles", "tamales", "mole poblano"),
        "The metro is cheap and fast outside rush hour; use ride-hailing apps at night.",
        "MXN",
        1600,
    ),
    _City(
        "Edinburgh",
        (
            "Edinburgh Castle",
            "a hike up Arthur's Seat",
            "the Royal Mile",
            "the National Museum of Scotland",
            "Calton Hill at sunset",
            "Dean Village",
        ),
        ("the Old Town", "Stockbridge", "Leith"),
        ("haggis with neeps and tatties", "cullen skink", "cranachan", "a proper fish supper"),
        "The centre is walkable; Lothian buses take contactless payment.",
        "GBP",
        110,
    ),
    _City(
        "Vienna",
        (
            "Schönbrunn Palace",
            "the Kunsthistorisches Museum",
            "the Naschmarkt",
            "St. Stephen's Cathedral",
            "an evening at the Staatsoper standing area",
            "the Prater's giant Ferris wheel",
        ),
        ("Neubau", "Leopoldstadt", "the Innere Stadt"),
        ("Wiener Schnitzel", "Sachertorte", "Tafelspitz", "Käsekrainer from a Würstelstand"),
        "A 24- or 72-hour Wiener Linien ticket covers the U-Bahn, trams and buses.",
        "EUR",
        120,
    ),
    _City(
        "Seoul",
        (
            "Gyeongbokgung Palace",
            "Bukchon Hanok Village",
            "Namsan Tower",
            "Gwangjang Market",
            "a walk along Cheonggyecheon Stream",
            "the DMZ on a guided tour",
        ),
        ("Insadong", "Hongdae", "Seongsu"),
        ("bibimbap", "Korean fried chicken", "tteokbokki", "naengmyeon"),
        "Get a T-money card; the subway is excellent and signs are in English.",
        "KRW",
        130000,
    ),
    _City(
        "Buenos Aires",
        (
            "the Recoleta Cemetery",
            "Teatro Colón",
            "a Sunday at the San Telmo fair",
            "Caminito in La Boca",
            "the Palermo rose garden",
            "a tango show",
        ),
        ("Palermo", "San Telmo", "Recoleta"),
        ("asado", "empanadas", "provoleta", "dulce de leche everything"),
        "A SUBE card works on the subte and buses; taxis are affordable for short hops.",
        "ARS",
        90000,
    ),
    _City(
        "Copenhagen",
        (
            "Tivoli Gardens",
            "the Nyhavn harbourfront",
            "Rosenborg Castle",
            "the Louisiana Museum on a day trip",
            "a harbour swim at Islands Brygge",
            "the Design Museum",
        ),
        ("Nørrebro", "Vesterbro", "Christianshavn"),
        ("smørrebrød", "cinnamon snails", "frikadeller", "æbleskiver"),
        "Rent a bike; the city is built for cycling and the metro runs 24/7.",
        "DKK",
        1100,
    ),
    _City(
        "Hanoi",
        (
            "Hoan Kiem Lake at sunrise",
            "the Temple of Literature",
            "the Old Quarter's 36 streets",
            "the Vietnam Museum of Ethnology",
            "Train Street",
            "a day trip to Ha Long Bay",
        ),
        ("the Old Quarter", "Tay Ho", "the French Quarter"),
        ("pho bo", "bun cha", "egg coffee", "banh mi"),
        "Use Grab for motorbike taxis, and cross streets slowly and predictably.",
        "VND",
        1200000,
    ),
    _City(
        "Cape Town",
        (
            "Table Mountain",
            "the Bo-Kaap",
            "Kirstenbosch Garden",
            "Boulders Beach penguins",
            "the V&A Waterfront",
            "Robben Island",
        ),
        ("Woodstock", "Sea Point", "the City Bowl"),
        ("bobotie", "braai", "bunny chow", "malva pudding"),
        "Use ride-hailing apps rather than walking at night; the MyCiTi bus covers the Atlantic seaboard.",
        "ZAR",
        1500,
    ),
)
_COMPANIONS = (
    "with my partner",
    "with two kids (6 and 9)",
    "solo",
    "with my parents, who don't walk much",
    "with three friends",
    "on a work trip with one free day",
)
_TRAVEL_CONSTRAINTS = (
    "We're on a budget.",
    "We love food more than museums.",
    "I hate crowds.",
    "It's our honeymoon!",
    "We don't want to rent a car.",
    "I'm vegetarian.",
    "",
)
_TRAVEL_TIPS = (
    "Book the most popular sights online; same-day tickets often sell out.",
    "Carry a little cash for small bakeries and markets.",
    "Start early: the big sights are much calmer before 10 am.",
    "Leave one half-day unplanned; it's usually the part people remember most.",
    "Check opening days, since many museums close one day a week.",
)


def _travel_task(rng: random.Random) -> _Task:
    c = _pick(rng, _CITY_GUIDES)
    days, month, who = rng.randint(2, 4), _pick(rng, MONTHS), _pick(rng, _COMPANIONS)
    user = (
        _fill(
            rng,
            (
                "I'm going to {c} for {d} days in {m} {w}. {x} What should we do?",
                "Can you plan {d} days in {c}? Travelling {w} in {m}. {x}",
                "first time in {c}!! {d} days, {m}, {w}. must-sees? {x}",
            ),
            c=c.name,
            d=days,
            m=month,
            w=who,
            x=_pick(rng, _TRAVEL_CONSTRAINTS),
        )
        .replace("  ", " ")
        .strip()
    )
    sights, foods = rng.sample(c.sights, min(len(c.sights), days + 2)), rng.sample(c.foods, len(c.foods))
    lines = [
        _pick(
            rng,
            (
                f"{c.name} in {month} is lovely. Here's a relaxed plan:",
                f"Great choice! A {days}-day plan:",
                "Here's an itinerary that mixes the highlights with some downtime:",
            ),
        )
    ]
    for d in range(days):
        area = c.areas[d % len(c.areas)]
        lines.append(
            f"**Day {d + 1}:** Morning at {sights[d]}. Lunch: try {foods[d % len(foods)]}. "
            f"Spend the afternoon wandering {area}"
            + (f", then {sights[d + 1]}." if d + 1 < len(sights) and rng.random() < 0.5 else ".")
        )
    lines.append(f"Getting around: {c.transport}")
    lines.append(f"Tips: {' '.join(_some(rng, _TRAVEL_TIPS, 1, 2))}")
    budget = c.daily * days * (2 if "partner" in who else 1)
    follow = [
        (
            f"What would a rough budget be in {c.currency}?",
            f"For {days} days, excluding flights, plan on about {budget:,} {c.currency} for "
            f"{'two people' if 'partner' in who else 'one person'} at a mid-range level: roughly "
            f"{c.daily:,} {c.currency} per person per day for food, transport and entry tickets. "
            "Accommodation varies too much by area to estimate well, so check a few listings for your dates.",
        )
    ]
    return _Task(user, "\n\n".join(lines), follow)


# --------------------------------------------------------------------------------------------------- cooking


@dataclass(frozen=True)
class _Recipe:
    """A recipe; every step and tip comes in two wordings, and an ingredient name is "singular|plural"."""

    dish: str
    serves: int
    minutes: tuple[int, int]
    ingredients: tuple[tuple[float, str, str], ...]
    steps: tuple[tuple[str, str], ...]
    tips: tuple[str, ...]


_RECIPES = (
    _Recipe(
        "shakshuka",
        2,
        (10, 25),
        (
            (4, "", "egg|eggs"),
            (400, "g", "canned tomatoes"),
            (1, "", "red pepper|red peppers"),
            (1, "", "onion|onions"),
            (2, "cloves", "garlic"),
            (1, "tsp", "ground cumin"),
            (1, "tsp", "smoked paprika"),
        ),
        (
            (
                "Soften the sliced onion and pepper in olive oil for 8 minutes.",
                "Cook the onion and pepper slowly in a little oil until soft, about 8 minutes.",
            ),
            (
                "Add garlic and spices and cook for one more minute.",
                "Stir in the garlic, cumin and paprika for a minute.",
            ),
            (
                "Pour in the tomatoes and simmer until thick, about 10 minutes.",
                "Tip in the tomatoes and let the sauce bubble down for roughly 10 minutes.",
            ),
            (
                "Make wells in the sauce, crack in the eggs, cover and cook until the whites are set.",
                "Crack the eggs into little hollows in the sauce, put a lid on and wait until the whites turn opaque.",
            ),
        ),
        ("Crumbled feta and chopped parsley on top make it.", "Serve it straight from the pan with crusty bread."),
    ),
    _Recipe(
        "mushroom risotto",
        4,
        (10, 30),
        (
            (320, "g", "arborio rice"),
            (400, "g", "mushrooms"),
            (1.2, "l", "hot stock"),
            (1, "", "onion|onions"),
            (100, "ml", "white wine"),
            (60, "g", "parmesan"),
            (30, "g", "butter"),
        ),
        (
            (
                "Fry the mushrooms hot and fast until browned, then set aside.",
                "Brown the mushrooms in a very hot pan and keep them to one side.",
            ),
            (
                "Soften the chopped onion, then stir in the rice for a minute until glossy.",
                "Sweat the onion, add the rice and toast it briefly so every grain is coated.",
            ),
            (
                "Add the wine, let it bubble away, then add stock a ladle at a time, stirring often.",
                "Deglaze with the wine, then feed in the stock gradually, stirring between additions.",
            ),
            (
                "After about 18 minutes, stir in the mushrooms, butter and parmesan and rest for 2 minutes.",
                "When the rice is just tender, beat in butter, parmesan and the mushrooms and let it sit briefly.",
            ),
        ),
        (
            "Keep the stock at a simmer in a separate pan; cold stock stalls the cooking.",
            "It should flow slowly on the plate; add a splash of stock if it sets too firm.",
        ),
    ),
    _Recipe(
        "chickpea curry",
        4,
        (10, 20),
        (
            (2, "cans", "chickpeas"),
            (400, "ml", "coconut milk"),
            (1, "", "onion|onions"),
            (3, "cloves", "garlic"),
            (1, "tbsp", "grated ginger"),
            (2, "tbsp", "curry paste"),
            (150, "g", "spinach"),
        ),
        (
            (
                "Fry the onion until golden, then add garlic, ginger and curry paste.",
                "Cook the onion until it colours, then fry the garlic, ginger and paste for a minute.",
            ),
            (
                "Stir in the drained chickpeas and the coconut milk.",
                "Add the chickpeas and pour over the coconut milk.",
            ),
            (
                "Simmer for 15 minutes, then wilt in the spinach.",
                "Let it tick over for a quarter of an hour and fold in the spinach at the end.",
            ),
            ("Season with salt and a squeeze of lime.", "Finish with lime juice and salt to taste."),
        ),
        ("It tastes even better the next day.", "Rice or warm flatbreads both work on the side."),
    ),
    _Recipe(
        "banana bread",
        8,
        (15, 60),
        (
            (3, "", "ripe banana|ripe bananas"),
            (250, "g", "flour"),
            (100, "g", "brown sugar"),
            (75, "g", "melted butter"),
            (1, "", "egg|eggs"),
            (1, "tsp", "baking soda"),
            (0.5, "tsp", "cinnamon"),
        ),
        (
            ("Heat the oven to 175 °C and line a loaf tin.", "Preheat to 175 °C and put baking paper in a loaf tin."),
            (
                "Mash the bananas and mix in the butter, sugar and egg.",
                "Squash the bananas with a fork, then beat in butter, sugar and egg.",
            ),
            (
                "Fold in the flour, baking soda and cinnamon until just combined.",
                "Add the dry ingredients and stir only until no flour is visible.",
            ),
            (
                "Bake for 55 to 60 minutes, until a skewer comes out clean.",
                "Bake about an hour; it's done when a skewer pushed into the middle comes out clean.",
            ),
        ),
        (
            "The blacker the bananas, the better the bread.",
            "A handful of walnuts or chocolate chips is a good addition if nobody is allergic.",
        ),
    ),
    _Recipe(
        "lentil soup",
        6,
        (15, 25),
        (
            (300, "g", "red lentils"),
            (2, "", "carrot|carrots"),
            (1, "", "onion|onions"),
            (2, "cloves", "garlic"),
            (1.5, "l", "vegetable stock"),
            (1, "tsp", "cumin"),
            (1, "", "lemon|lemons"),
        ),
        (
            (
                "Soften the diced onion and carrots in oil for 10 minutes.",
                "Cook the chopped onion and carrot gently until soft.",
            ),
            (
                "Add garlic and cumin, then the rinsed lentils and stock.",
                "Stir in garlic and cumin, then the lentils and the stock.",
            ),
            (
                "Simmer for 20 minutes until the lentils collapse.",
                "Simmer until the lentils fall apart, about 20 minutes.",
            ),
            (
                "Blend partly, then finish with lemon juice and salt.",
                "Blend half of it for body and season with lemon and salt.",
            ),
        ),
        ("A spoon of yoghurt and some chilli oil on top is great.", "It freezes well in portions."),
    ),
    _Recipe(
        "pad kra pao",
        2,
        (10, 10),
        (
            (300, "g", "minced chicken"),
            (4, "cloves", "garlic"),
            (3, "", "bird's eye chilli|bird's eye chillies"),
            (1, "tbsp", "oyster sauce"),
            (1, "tbsp", "fish sauce"),
            (1, "tsp", "sugar"),
            (1, "handful", "holy basil"),
        ),
        (
            ("Pound the garlic and chillies to a rough paste.", "Crush garlic and chillies together in a mortar."),
            (
                "Stir-fry the paste in a very hot wok for 20 seconds, then add the chicken.",
                "Fry the paste briefly in a smoking wok and add the mince straight away.",
            ),
            (
                "Add the sauces and sugar and cook until the chicken is done.",
                "Season with oyster sauce, fish sauce and sugar and cook the chicken through.",
            ),
            (
                "Turn off the heat, stir in the basil and serve with rice and a fried egg.",
                "Off the heat, fold in the basil; serve over jasmine rice with a crispy fried egg.",
            ),
        ),
        (
            "Thai basil works if you can't find holy basil, but the flavour is different.",
            "Have everything chopped before you start; the cooking takes five minutes.",
        ),
    ),
    _Recipe(
        "focaccia",
        8,
        (30, 25),
        (
            (500, "g", "bread flour"),
            (400, "ml", "warm water"),
            (7, "g", "instant yeast"),
            (10, "g", "salt"),
            (60, "ml", "olive oil"),
            (1, "sprig", "rosemary"),
        ),
        (
            (
                "Mix flour, water, yeast and salt into a wet dough and rest 30 minutes.",
                "Stir everything except the oil into a sticky dough and leave it for half an hour.",
            ),
            (
                "Do four sets of stretch-and-folds over two hours.",
                "Every 30 minutes, stretch and fold the dough, four times in total.",
            ),
            (
                "Move to an oiled tray, dimple with oily fingers and let it rise for another hour.",
                "Tip it into a well-oiled tray, press dimples all over and let it puff up for an hour.",
            ),
            (
                "Top with rosemary and flaky salt and bake at 220 °C for 22 to 25 minutes.",
                "Scatter rosemary and sea salt over it and bake at 220 °C until deep golden.",
            ),
        ),
        (
            "An overnight rise in the fridge gives a deeper flavour.",
            "Be generous with the oil; it's what makes the crust crisp.",
        ),
    ),
    _Recipe(
        "miso salmon",
        2,
        (5, 12),
        (
            (2, "", "salmon fillet|salmon fillets"),
            (2, "tbsp", "white miso"),
            (1, "tbsp", "honey"),
            (1, "tbsp", "rice vinegar"),
            (1, "tsp", "sesame oil"),
            (2, "", "spring onion|spring onions"),
        ),
        (
            (
                "Heat the oven grill to high and line a tray with foil.",
                "Turn the grill on full and put foil on a tray.",
            ),
            ("Mix the miso, honey, vinegar and sesame oil.", "Stir together miso, honey, rice vinegar and sesame oil."),
            ("Brush the glaze over the salmon.", "Spread the miso glaze thickly over the fish."),
            (
                "Grill for 8 to 10 minutes until caramelised, then scatter over the spring onions.",
                "Grill until the top blisters and the fish flakes, then add sliced spring onion.",
            ),
        ),
        (
            "Watch it closely at the end; the sugar in the glaze burns quickly.",
            "Steamed rice and greens are all it needs.",
        ),
    ),
)
_DIETS = (
    "",
    "",
    "",
    "One of us is vegetarian.",
    "We have a nut allergy at home.",
    "I only have one pan.",
    "Needs to be ready in under an hour.",
    "My kids are picky eaters.",
)
_DIET_NOTES = {
    "vegetarian": "For the vegetarian, check labels: stock, parmesan and fish or oyster sauce often aren't vegetarian, "
    "and there are good substitutes for each.",
    "nut": "Nothing here contains nuts, but check the labels of ready-made sauces and pastes for traces.",
    "one pan": "Everything can be done in one large pan if you cook the steps in order and wipe it out between them.",
    "hour": "It fits comfortably in under an hour.",
    "picky": "For picky eaters, serve sauces and toppings on the side so everyone can build their own plate.",
}


def _qty(x: float, name: str) -> str:
    singular, _, plural = name.partition("|")
    if not plural:
        return f"{_num(round(x, 2)) if x < 10 else round(x)} {name}"
    n = math.ceil(x - 1e-9)
    return f"{n} {singular if n == 1 else plural}"


def _ingredient(q: float, unit: str, name: str) -> str:
    return _qty(q, name) if not unit else f"{_num(round(q, 2)) if q < 10 else round(q)} {unit} {name}"


def _recipe_task(rng: random.Random) -> _Task:
    r = _pick(rng, _RECIPES)
    people = rng.choice([n for n in (1, 2, 3, 4, 5, 6, 8, 10, 12) if n != r.serves])
    f = people / r.serves
    diet = _pick(rng, _DIETS)
    user = _fill(
        rng,
        (
            "Can you give me a recipe for {d} for {n} people? {x}",
            "I want to make {d} tonight, there are {n} of us. {x}",
            "{d} recipe scaled for {n} servings please. {x}",
            "Never cooked {d} before. Ingredients and steps for {n}? {x}",
        ),
        d=r.dish,
        n=people,
        x=diet,
    )
    ings = "\n".join(f"- {_ingredient(q * f, u, name)}" for q, u, name in r.ingredients)
    steps = [_pick(rng, pair) for pair in r.steps]
    method = "\n".join(f"{i}. {st}" for i, st in enumerate(steps, 1)) if rng.random() < 0.7 else " ".join(steps)
    note = next((v for k, v in _DIET_NOTES.items() if k in diet.lower()), "")
    parts = [
        f"{_pick(rng, ('Here you go!', 'Sure!', 'Happy cooking!', 'Good choice.', ''))} {r.dish.capitalize()} for "
        f"{people} (scaled from a {r.serves}-serving recipe).".strip(),
        f"{_pick(rng, ('**Ingredients**', 'You will need:', 'Shopping list:'))}\n{ings}",
        f"{_pick(rng, ('**Method**', 'Steps:', 'How to make it:'))}\n{method}",
        note,
        " ".join(_some(rng, r.tips, 1, 2)),
    ]
    if rng.random() < 0.5:
        parts.insert(1, f"About {r.minutes[0]} minutes of prep and {r.minutes[1]} minutes of cooking.")
    follow = [
        (
            "How long will leftovers keep?",
            f"In an airtight container in the fridge, {r.dish} keeps for about "
            f"{rng.randint(2, 4)} days. Cool it within two hours of cooking and reheat it until piping hot.",
        )
    ]
    return _Task(user.strip(), "\n\n".join(p for p in parts if p), follow)


# --------------------------------------------------------------------------------------------------- other languages


_FOREIGN_MATH = (
    (
        "fr",
        ("croissants", "pains au chocolat", "macarons", "éclairs"),
        (0.8, 4.5, 2, True),
        (
            "J'achète {n} {i} à {p} € pièce et je paie avec un billet de {b} €. Combien doit-on me rendre ?",
            "Bonjour ! Si {name} achète {n} {i} à {p} € l'unité, combien doit-il rendre sur {b} € ?",
        ),
        "Les {i} coûtent {n} × {p} € = {t} €. Sur {b} €, on te rend donc {r} €. Bon appétit ! 🥐",
    ),
    (
        "es",
        ("empanadas", "churros", "tortillas", "alfajores"),
        (0.8, 4.5, 2, True),
        (
            "Compré {n} {i} a {p} € cada una y pagué con {b} €. ¿Cuánto me tienen que devolver?",
            "Hola, una pregunta rápida: {name} compra {n} {i} a {p} € y paga con {b} €. ¿Cuál es el cambio?",
        ),
        "Las {i} cuestan {n} × {p} € = {t} €. Con {b} €, el cambio es {r} €. ¡Que aproveche! 😊",
    ),
    (
        "de",
        ("Brezeln", "Berliner", "Brötchen", "Franzbrötchen"),
        (0.4, 3.5, 2, True),
        (
            "Ich kaufe {n} {i} zu je {p} € und zahle mit {b} €. Wie viel Wechselgeld bekomme ich?",
            "Kurze Frage: {name} kauft {n} {i} für {p} € pro Stück und zahlt mit einem {b}-€-Schein. Wie viel bleibt übrig?",
        ),
        "{n} {i} kosten {n} × {p} € = {t} €. Von {b} € bekommst du also {r} € zurück.",
    ),
    (
        "pt",
        ("pastéis de nata", "pães de queijo", "bolinhos de bacalhau"),
        (0.9, 2.5, 2, True),
        (
            "Comprei {n} {i} a {p} € cada e paguei com {b} €. Quanto recebo de troco?",
            "Olá! A {name} comprou {n} {i} a {p} € e pagou com {b} €. Qual é o troco?",
        ),
        "Os {i} custam {n} × {p} € = {t} €. Com {b} €, o troco é {r} €. 🙂",
    ),
    (
        "ja",
        ("りんご", "おにぎり", "みかん", "どら焼き"),
        (80, 400, 0, False),
        (
            "{name}さんは{i}を{n}個、1個{p}円で買って、{b}円払いました。おつりはいくらですか？",
            "{i}を1個{p}円で{n}個買いました。{b}円出したら、おつりはいくらになりますか？",
        ),
        "{i}の代金は {n} × {p} = {t}円です。{b}円から引くと、おつりは{r}円です。",
    ),
    (
        "zh",
        ("笔记本", "包子", "苹果", "铅笔"),
        (2, 30, 0, False),
        (
            "小明买了{n}个{i}，每个{p}元，他付了{b}元，应该找回多少钱？",
            "{name}买{n}个{i}，单价{p}元，给了{b}元。请问找零是多少？",
        ),
        "{i}一共是 {n} × {p} = {t} 元，{b} 元减去 {t} 元，应该找回 {r} 元。",
    ),
)
_FOREIGN_TIPS = (
    (
        "fr",
        "Je pars à {c} en {m} pour {d} jours. Tu as des conseils ?",
        (
            "Avec plaisir ! {c} en {m}, c'est une très bonne idée.",
            "Pour {d} jours, ne cherche pas à tout voir.",
            "Réserve les musées les plus connus en ligne.",
            "Commence tes journées tôt, les rues sont beaucoup plus calmes avant 10 heures.",
            "Garde un peu de liquide pour les petits marchés.",
            "Prévois de bonnes chaussures, on marche beaucoup.",
            "Demande aux habitants où ils mangent, c'est souvent meilleur et moins cher.",
            "Laisse-toi une demi-journée sans programme pour flâner.",
        ),
    ),
    (
        "es",
        "Voy a {c} en {m} con mi familia, {d} días. ¿Qué me recomiendas?",
        (
            "¡Qué buen plan! {c} en {m} suele ser muy agradable.",
            "En {d} días no intentes verlo todo.",
            "Compra las entradas de los sitios famosos con antelación.",
            "Madruga: a primera hora hay mucha menos gente.",
            "Prueba la comida de los mercados locales.",
            "Usa el transporte público, suele ser rápido y barato.",
            "Lleva una chaqueta ligera para la noche.",
            "Deja una tarde libre para perderte por los barrios.",
        ),
    ),
    (
        "de",
        "Ich fahre im {m} für {d} Tage nach {c}. Hast du Tipps?",
        (
            "Gerne! {c} im {m} lohnt sich.",
            "In {d} Tagen musst du nicht alles sehen.",
            "Tickets für die bekanntesten Sehenswürdigkeiten besser online buchen.",
            "Früh aufstehen lohnt sich, vormittags ist es viel ruhiger.",
            "Probier unbedingt die lokale Küche auf den Märkten.",
            "Ein Tagesticket für den Nahverkehr spart Zeit und Geld.",
            "Bequeme Schuhe einpacken, man läuft viel.",
            "Plane einen freien Nachmittag ein, einfach zum Bummeln.",
        ),
    ),
    (
        "ja",
        "{m}に{d}日間、{c}へ旅行します。おすすめはありますか？",
        (
            "いいですね！{m}の{c}は過ごしやすいと思います。",
            "{d}日間なら、欲張らずにゆっくり回るのがおすすめです。",
            "人気の観光地は朝早く行くと空いています。",
            "チケットは事前にオンラインで予約しておくと安心です。",
            "地元の市場で食べ歩きをするのもおすすめです。",
            "公共交通機関のICカードがあると便利です。",
            "歩きやすい靴を持っていきましょう。",
        ),
    ),
)


def _foreign_task(rng: random.Random) -> _Task:
    if rng.random() < 0.6:
        _, items, (lo, hi, decimals, comma), asks, answer = _pick(rng, _FOREIGN_MATH)
        n, p = rng.randint(2, 15), round(rng.uniform(lo, hi), decimals)
        t = round(n * p, 2)
        b = next(x for x in (5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000) if x > t)

        def fmt(x: float) -> str:
            text = f"{x:.{decimals}f}"
            return text.replace(".", ",") if comma else text

        slots = dict(
            n=n, i=_pick(rng, items), p=fmt(p), t=fmt(t), b=b, r=fmt(round(b - t, 2)), name=_pick(rng, FIRST_NAMES)
        )
        return _Task(_pick(rng, asks).format(**slots), answer.format(**slots), [])
    _, ask, facts = _pick(rng, _FOREIGN_TIPS)
    c, m, d = _pick(rng, CITIES), _pick(rng, MONTHS), rng.randint(2, 14)
    reply = [facts[0], facts[1], *_some(rng, facts[2:], 2, 4)]
    return _Task(ask.format(c=c, m=m, d=d), " ".join(reply).format(c=c, m=m, d=d), [])


# --------------------------------------------------------------------------------------------------- tool calls


_TOOLS = (
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Daily forecast for a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "date": {"type": "string", "format": "date"}},
                "required": ["city", "date"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "convert_currency",
            "description": "Convert an amount between currencies",
            "parameters": {
                "type": "object",
                "properties": {"amount": {"type": "number"}, "from": {"type": "string"}, "to": {"type": "string"}},
                "required": ["amount", "from", "to"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_order_status",
            "description": "Look up a shop order",
            "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
        },
    },
)
_RATES = {
    ("EUR", "USD"): 1.08,
    ("USD", "EUR"): 0.93,
    ("GBP", "EUR"): 1.17,
    ("USD", "JPY"): 151.4,
    ("EUR", "GBP"): 0.85,
    ("CAD", "USD"): 0.73,
    ("AUD", "EUR"): 0.61,
    ("EUR", "CHF"): 0.94,
    ("USD", "MXN"): 17.9,
    ("GBP", "USD"): 1.26,
    ("EUR", "SEK"): 11.4,
}


def _call_id(rng: random.Random) -> str:
    return "call_" + _alnum(rng, 24)


def _tool_weather(rng: random.Random, day: dt.date) -> tuple[str, str, dict[str, Any], dict[str, Any], str]:
    city, when = _pick(rng, CITIES), day + dt.timedelta(days=rng.randint(1, 3))
    hi = rng.randint(-2, 31)
    res = {
        "city": city,
        "date": when.isoformat(),
        "high_c": hi,
        "low_c": hi - rng.randint(3, 11),
        "precip_prob": round(rng.random(), 2),
        "summary": _pick(rng, ("sunny", "showers", "overcast", "windy", "light snow", "thunderstorms")),
    }
    ask = _fill(
        rng,
        (
            "What's the weather going to be like in {c} on {d}? Do I need an umbrella?",
            "weather {c} {d}?",
            "I'm cycling to work in {c} on {d}. Forecast?",
        ),
        c=city,
        d=_pretty_date(when),
    )
    rain = res["precip_prob"] >= 0.5
    final = (
        f"{_pretty_date(when)} in {city}: {res['summary']}, high of {hi} °C and low of {res['low_c']} °C, with a "
        f"{round(res['precip_prob'] * 100)}% chance of rain. "
        + ("I'd take an umbrella or a rain jacket." if rain else "You should be fine without an umbrella.")
    )
    return ask, "get_weather", {"city": city, "date": when.isoformat()}, res, final


def _tool_currency(rng: random.Random, day: dt.date) -> tuple[str, str, dict[str, Any], dict[str, Any], str]:
    (src, dst), amount = _pick(rng, tuple(_RATES)), round(rng.uniform(5, 5000), _pick(rng, (0, 2)))
    rate = round(_RATES[(src, dst)] * rng.uniform(0.985, 1.015), 4)
    res = {"amount": amount, "from": src, "to": dst, "rate": rate, "result": round(amount * rate, 2)}
    ask = _fill(
        rng,
        (
            "How much is {a} {s} in {d} right now?",
            "convert {a} {s} to {d} please",
            "My rent is {a} {s}. What's that in {d}?",
            "I'm paying a {a} {s} invoice from {c}. Roughly how much is that in {d}?",
            "what's {a} {s} in {d} today? booking a hotel in {c}",
        ),
        a=_num(amount),
        s=src,
        d=dst,
        c=_pick(rng, CITIES),
    )
    final = f"{_num(amount)} {src} is about {res['result']:,.2f} {dst} at today's rate of {rate}. " + _pick(
        rng,
        (
            "Banks and card providers usually add a margin of 1-3%, so expect slightly less in practice.",
            "Rates move during the day, so treat this as an estimate.",
            "If you pay by card, check whether your bank charges a foreign transaction fee.",
        ),
    )
    return ask, "convert_currency", {"amount": amount, "from": src, "to": dst}, res, final


def _tool_order(rng: random.Random, day: dt.date) -> tuple[str, str, dict[str, Any], dict[str, Any], str]:
    oid = f"{_pick(rng, ('A', 'B', 'W'))}{rng.randint(100000, 999999)}"
    eta = day + dt.timedelta(days=rng.randint(1, 6))
    status = _pick(rng, ("shipped", "processing", "out_for_delivery", "delayed"))
    res = {
        "order_id": oid,
        "status": status,
        "carrier": _pick(rng, ("DHL", "UPS", "DPD", "PostNL")),
        "eta": eta.isoformat(),
    }
    ask = _fill(
        rng, ("Where is my order {o}?", "Hi, can you check order {o}? It hasn't arrived.", "order {o} status?"), o=oid
    )
    final = (
        f"Order {oid} is currently **{status.replace('_', ' ')}** with {res['carrier']}. The estimated delivery "
        f"date is {_pretty_date(eta)}."
        + (
            " Sorry about the delay; if it hasn't arrived by then, reply here and I'll open a claim with the carrier."
            if status == "delayed"
            else ""
        )
    )
    return ask, "get_order_status", {"order_id": oid}, res, final


def _tool_dialog(rng: random.Random, day: dt.date) -> list[Msg]:
    ask, name, args, result, final = _pick(rng, (_tool_weather, _tool_currency, _tool_order))(rng, day)
    cid = _call_id(rng)
    call = {
        "id": cid,
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(args, ensure_ascii=False)},
    }
    return [
        {"role": "user", "content": ask},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": cid, "content": json.dumps(result, ensure_ascii=False)},
        {"role": "assistant", "content": final},
    ]


# --------------------------------------------------------------------------------------------------- dialogs


_PY_TASKS: tuple[Callable[[random.Random], _Task], ...] = (
    _py_filter,
    _py_group_sum,
    _py_top_k,
    _py_csv_total,
    _py_dataclass,
    _py_dedupe,
    _py_batched,
    _py_retry,
    _py_flatten,
    _py_word_freq,
    _py_log_levels,
    _py_merge_intervals,
    _py_moving_average,
    _py_slugify,
)
_CHAT_KINDS: tuple[tuple[Callable[[random.Random], _Task], float, str], ...] = (
    (lambda rng: _pick(rng, _PY_TASKS)(rng), 0.25, "code"),
    (_sql_task, 0.08, "code"),
    (_js_task, 0.06, "code"),
    (_math_task, 0.15, "math"),
    (_email_task, 0.12, "writing"),
    (_summary_task, 0.11, "writing"),
    (_explain_task, 0.07, "general"),
    (_travel_task, 0.05, "general"),
    (_recipe_task, 0.04, "general"),
    (_foreign_task, 0.05, "general"),
)
_SYSTEM_PROMPTS = {
    "general": (
        "You are a helpful assistant.",
        "You are a helpful, concise assistant. Answer in plain language and use Markdown when it helps.",
        "Knowledge cutoff: 2026-06. Current date: 2026-11-01. You are a helpful assistant.",
    ),
    "code": (
        "You are an expert software engineer. Prefer standard-library solutions and explain trade-offs briefly.",
        "You are a coding assistant. Answer with working code first, then a short explanation.",
    ),
    "math": (
        "You are a patient tutor. Show your reasoning step by step and check your answer.",
        "You are a maths tutor for secondary-school students.",
    ),
    "writing": (
        "You are a writing assistant. Match the user's tone and keep drafts ready to send.",
        "You help busy professionals with emails and summaries. Be clear and brief.",
    ),
}


def _chat_task(rng: random.Random) -> _Task:
    fns, weights, kinds = zip(*_CHAT_KINDS, strict=True)
    i = rng.choices(range(len(fns)), weights=weights)[0]
    task = fns[i](rng)
    task.kind = kinds[i]
    return task


def _turns(rng: random.Random, task: _Task) -> list[tuple[str, str]]:
    n_more = rng.choices((0, 1, 2, 3), weights=(55, 25, 13, 7))[0]
    pool = task.followups + [_pick(rng, _THANKS)]
    return [(task.user, task.answer), *rng.sample(pool, min(n_more, len(pool)))]


def _messages(rng: random.Random, task: _Task, system_p: float = 0.3) -> list[Msg]:
    """The task and some of its follow-ups as a message list, with a fitting system prompt now and then."""
    prompts = _SYSTEM_PROMPTS[task.kind] + _SYSTEM_PROMPTS["general"]
    msgs: list[Msg] = [{"role": "system", "content": _pick(rng, prompts)}] if rng.random() < system_p else []
    turns = _turns(rng, task)
    for user, assistant in turns:
        msgs += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    return msgs


def _to_sharegpt(msgs: list[Msg]) -> list[dict[str, str]]:
    names = {"system": "system", "user": "human", "assistant": "gpt"}
    return [{"from": names[m["role"]], "value": m["content"]} for m in msgs]


def _dialog_text(msgs: list[Msg]) -> str:
    return "\n".join(m["content"] for m in msgs if isinstance(m.get("content"), str))


# --------------------------------------------------------------------------------------------------- forum posts


_DEVICES = (
    "Synology DS220+",
    "Raspberry Pi 4",
    "ThinkPad X1 Carbon",
    "Pixel 8",
    "Sonos Beam",
    "Brother HL-L2350DW",
    "Kindle Paperwhite",
    "Ubiquiti Dream Machine",
    "Steam Deck",
    "MacBook Air M2",
    "Fritz!Box 7590",
    "Home Assistant Yellow",
)
_PROBLEMS = (
    "keeps dropping off the Wi-Fi every few hours",
    "won't boot past the logo after the update",
    "gets really hot and the fan never stops",
    "shows the wrong time after every restart",
    "can't be found on the network any more",
    "drains the battery overnight even when idle",
    "is painfully slow since the last firmware",
    "randomly reboots when I copy large files",
)
_TRIED = (
    "a factory reset",
    "a different power supply",
    "reinstalling the firmware",
    "turning off IPv6 on the router",
    "a new SD card",
    "moving it closer to the access point",
    "disabling the auto-update",
    "a fresh cable",
    "rolling back to the previous version",
    "clearing the cache partition",
)
_FORUM_CLOSERS = (
    "Any ideas?",
    "Thanks in advance!",
    "I'm out of ideas, help appreciated.",
    "Anyone seen this before?",
    "Cheers.",
    "Would really appreciate a pointer.",
    "",
)
_HOBBIES: dict[str, tuple[str, ...]] = {
    "gardening": (
        "My {v} tomatoes are finally ripening, about {k} weeks later than last year.",
        "I moved the raised beds to the south side of the garden and it made a huge difference.",
        "Slugs ate half my {v2} seedlings overnight, so I'm trying copper tape this time.",
        "I water at {h} am now instead of the evening and the mildew has mostly stopped.",
        "The soil test came back at pH {ph}, so I'm adding lime before winter.",
        "Anyone in zone {z} had luck overwintering {v2}?",
        "Compost from last autumn went on in {m} and the difference is obvious.",
        "Harvested {k} kg of {v2} from one {w} cm bed this year.",
        "Frost came early in {c} this year, {k} nights below zero already.",
    ),
    "cycling": (
        "Did my first {k}0 km ride last weekend, mostly along the river to {c}.",
        "Swapped to {w} mm tyres at {psi} psi and the comfort on gravel is night and day.",
        "My chain skips on the smallest cog after about {k},000 km, probably time for a new cassette too.",
        "Commuting {d} days a week now, it's faster than the bus door to door.",
        "Got a puncture {k} km from home on the {c} loop and realised my spare tube was the wrong size.",
        "Saddle height up {k} mm and my knee pain is gone after {mins} minutes in the saddle.",
        "Climbed the hill behind {c} without stopping for the first time, {mins} minutes of suffering.",
        "Is a {k}-speed groupset worth the upgrade for someone who mostly rides to work?",
        "Lights on even in the daytime; drivers notice me much earlier.",
    ),
    "sourdough": (
        "My starter is {k} weeks old and finally doubles in about {h} hours.",
        "Went from {p}% to {p2}% hydration and the crumb opened up a lot.",
        "Bulk fermentation at {t} °C took almost {h} hours, longer than the recipe said.",
        "The bottom always burns, so I now put a baking tray on the rack below the Dutch oven.",
        "Tried {k}0% whole wheat this week; denser loaf but much better flavour.",
        "Cold retard overnight in the fridge makes scoring so much easier.",
        "Any tips for getting more ear? My loaves spread sideways.",
        "Baked {k} loaves this month and gave {k2} to the neighbours in {c}.",
        "Switched to a {f} cm banneton and the shape is finally consistent.",
    ),
    "photography": (
        "Shot the old harbour in {c} at blue hour with a {f} mm lens, handheld at ISO {iso}.",
        "I finally learned to expose for the highlights and my sunsets stopped looking washed out.",
        "Bought a used {f} mm f/{ap} prime for {price} and it's on my camera 90% of the time now.",
        "Anyone else find that a polarizer helps more than any editing for skies and water?",
        "Printing my photos at A3 showed me how soft some of my 'sharp' shots were.",
        "Street photography in {c} is tricky; people are much more camera-shy than I expected.",
        "Shot {k}00 frames at the {m} festival and kept maybe {k2}0.",
        "Cleaned my sensor for the first time after {mins} minutes of watching tutorials.",
    ),
    "home brewing": (
        "Brewed a {s} this weekend, original gravity {og}, aiming for about {abv}% ABV.",
        "Fermentation temperature control made the biggest difference to my beers by far.",
        "I switched to {y} yeast and the banana notes are gone.",
        "Dry hopped with {k}0 g of {hop} on day {d}, smells amazing already.",
        "Bottled {k}0 bottles last night; {k2} of them will be gifts, the rest are mine.",
        "Cleaning and sanitising takes longer than the brew day itself, nobody warned me.",
        "The {s} finished at 1.0{d}{k}, a bit drier than I planned.",
        "Entered my {s} in the {c} homebrew competition, scored {mins} out of 50.",
    ),
}
_HOBBY_SLOTS: dict[str, Callable[[random.Random], Any]] = {
    "v": lambda r: _pick(r, ("San Marzano", "Sungold", "Brandywine", "Black Krim", "Moneymaker")),
    "v2": lambda r: _pick(r, ("lettuce", "dahlia", "courgette", "fig", "rosemary", "chilli")),
    "k": lambda r: r.randint(2, 9),
    "k2": lambda r: r.randint(2, 9),
    "h": lambda r: r.randint(4, 14),
    "ph": lambda r: _pick(r, ("5.6", "6.1", "6.4", "7.2")),
    "z": lambda r: r.randint(4, 9),
    "m": lambda r: _pick(r, MONTHS),
    "c": lambda r: _pick(r, CITIES),
    "w": lambda r: _pick(r, (28, 32, 35, 40, 45)),
    "psi": lambda r: r.randint(30, 75),
    "mins": lambda r: r.randint(8, 40),
    "p": lambda r: r.randint(62, 70),
    "p2": lambda r: r.randint(72, 82),
    "t": lambda r: r.randint(19, 27),
    "f": lambda r: _pick(r, (24, 35, 50, 85)),
    "iso": lambda r: _pick(r, (800, 1600, 3200, 6400)),
    "ap": lambda r: _pick(r, ("1.4", "1.8", "2", "2.8")),
    "price": lambda r: f"${r.randint(9, 45)}0",
    "s": lambda r: _pick(r, ("saison", "porter", "pale ale", "hefeweizen")),
    "og": lambda r: f"1.0{r.randint(40, 72)}",
    "abv": lambda r: f"{r.uniform(4, 7.5):.1f}",
    "y": lambda r: _pick(r, ("US-05", "Kveik", "Nottingham", "WLP001")),
    "hop": lambda r: _pick(r, ("Citra", "Mosaic", "Saaz", "Galaxy")),
    "d": lambda r: r.randint(2, 7),
}
_USER_WORDS = (
    ("quiet", "heron"),
    ("rusty", "spoke"),
    ("lazy", "loaf"),
    ("night", "owl"),
    ("blue", "fern"),
    ("salty", "dog"),
    ("tiny", "robot"),
    ("old", "oak"),
    ("wild", "yeast"),
    ("late", "bloomer"),
)
_HOBBY_SITES = {
    "gardening": "community.gardenersweb.org",
    "cycling": "talk.spokeandchain.cc",
    "sourdough": "boards.crumbclub.net",
    "photography": "forum.lensandlight.org",
    "home brewing": "discuss.homebrewers.io",
}


def _forum_author(rng: random.Random) -> str:
    a, b = _pick(rng, _USER_WORDS)
    return _pick(
        rng,
        (
            f"{a}_{b}{rng.randint(1, 99)}",
            f"{a}{b.capitalize()}",
            f"{_ascii(_pick(rng, FIRST_NAMES))}{rng.randint(70, 99)}",
        ),
    )


def _forum_tech(rng: random.Random) -> str:
    dev, prob = _pick(rng, _DEVICES), _pick(rng, _PROBLEMS)
    ver = _pick(rng, (f"{rng.randint(1, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}", _version4(rng)))
    tried = _some(rng, _TRIED, 1, 3)
    parts = [
        _fill(
            rng,
            (
                "My {d} {p} since I updated to version {v}.",
                "Since the {v} update my {d} {p}.",
                "Ok so my {d} {p}. Firmware is {v}.",
            ),
            d=dev,
            p=prob,
            v=ver,
        ),
        f"I've tried {', '.join(tried[:-1]) + ' and ' if len(tried) > 1 else ''}{tried[-1]}, no luck.",
        _pick(
            rng,
            (
                "Logs don't show anything obvious.",
                "It was rock solid for two years before this.",
                f"Happens roughly every {rng.randint(2, 12)} hours.",
                "Support told me to wait for a patch.",
                "Warranty ran out last month, of course.",
            ),
        ),
        _pick(rng, _FORUM_CLOSERS),
    ]
    return " ".join(p for p in parts if p)


def _forum_reply(rng: random.Random) -> str:
    dev, fix, other = _pick(rng, _DEVICES), _pick(rng, _TRIED), _pick(rng, _TRIED)
    return " ".join(
        p
        for p in (
            _pick(
                rng,
                (
                    "Had exactly this on my {d}.",
                    "Same here with a {d}.",
                    "Not sure if it helps, but on my {d}:",
                    "@{u} I had the same thing with my {d} last {m}.",
                    "Seen this a few times on the {d}.",
                ),
            ).format(d=dev, u=_forum_author(rng), m=_pick(rng, MONTHS)),
            _fill(
                rng,
                (
                    "What fixed it for me was {f}, then waiting a good {k} minutes before plugging everything back in.",
                    "{F} did nothing, but {f} sorted it within {k} minutes.",
                    "Try {f}. {F} alone didn't help in my case.",
                    "In the end it was {f}. Took me {k} minutes and two coffees to figure out.",
                    "Support had me try {F} first, which did nothing; {f} is what actually worked.",
                ),
                f=fix,
                F=other[0].upper() + other[1:],
                k=rng.randint(2, 45),
            ),
            _pick(
                rng,
                (
                    "Been stable for three weeks now.",
                    "Fingers crossed it holds.",
                    "YMMV of course.",
                    "If that doesn't work I'd open a ticket and mention the exact build number.",
                    "",
                    f"Mine has been up for {rng.randint(3, 90)} days since.",
                    "Report back if it works!",
                ),
            ),
        )
        if p
    )


def _forum_hobby(rng: random.Random, hobby: str) -> str:
    lines = _some(rng, _HOBBIES[hobby], 3, 5)
    slots = {k: f(rng) for k, f in _HOBBY_SLOTS.items()}
    text = " ".join(line.format(**slots) for line in lines)
    if rng.random() < 0.3:
        text = f"{_pick(rng, ('Update:', 'Long time lurker, first post.', 'Week {k} report.'))} {text}".format(**slots)
    return text


_REVIEW_PRODUCTS = (
    "AeroPress Go",
    "Kobo Clara",
    "Jabra Elite earbuds",
    "a Moka pot",
    "the Fjällräven Kånken",
    "a Bosch cordless drill",
    "Ninja air fryer",
    "the Garmin Forerunner 265",
    "a Xiaomi robot vacuum",
)
_PROS = (
    "feels solid",
    "easy to clean",
    "arrived two days early",
    "looks better than in the photos",
    "great value for the price",
    "does exactly what it says",
    "nice compact size",
)
_CONS = (
    "the manual is useless",
    "it scratches easily",
    "customer support is slow",
    "a bit heavy to carry",
    "the packaging was wasteful",
    "smaller than I expected",
)


def _forum_review(rng: random.Random) -> str:
    prod, stars, months = _pick(rng, _REVIEW_PRODUCTS), rng.randint(1, 5), rng.randint(1, 30)
    pros, cons = _some(rng, _PROS, 1, 3), _some(rng, _CONS, 1, 2)
    return (
        f"Review after {months} month{'s' if months > 1 else ''} with {prod}: {stars}/5. "
        f"Pros: {', '.join(pros)}. Cons: {', '.join(cons)}. "
        + _pick(
            rng,
            (
                "Would buy again.",
                "Probably returning it.",
                "Fine for the money, nothing more.",
                f"Paid {_money(rng.randint(25, 400))} on sale, wouldn't pay full price.",
            ),
        )
    )


def _forum_post(rng: random.Random) -> tuple[str, str]:
    """A post and the forum it was posted on."""
    kind = rng.choices(("tech", "reply", "hobby", "review"), weights=(3, 2, 4, 2))[0]
    if kind == "hobby":
        hobby = _pick(rng, tuple(_HOBBIES))
        return _HOBBY_SITES[hobby], _forum_hobby(rng, hobby)
    text = {"tech": _forum_tech, "reply": _forum_reply, "review": _forum_review}[kind](rng)
    return _pick(rng, ("forum.tinkerhub.net", "community.gadgetry.io")), text


# --------------------------------------------------------------------------------------------------- notes


_AGENDA = (
    "Q{q} roadmap",
    "hiring for the {role} role",
    "vendor contract renewal",
    "office move to {city}",
    "on-call rotation changes",
    "customer churn numbers",
    "budget for the {city} offsite",
    "security audit findings",
)
_DECISIONS = (
    "Go with the cheaper vendor for one year, revisit in {m}.",
    "Freeze new features until the audit is done.",
    "Hire one senior instead of two juniors.",
    "Move the launch to {m}.",
    "Keep the current on-call schedule.",
)


def _note_meeting(rng: random.Random) -> str:
    day = _date_in(rng)
    people = [_pick(rng, FIRST_NAMES) for _ in range(rng.randint(3, 6))]
    items = [
        a.format(q=rng.randint(1, 4), role=_pick(rng, _EMAIL_FILL["role"]), city=_pick(rng, CITIES))
        for a in _some(rng, _AGENDA, 2, 4)
    ]
    actions = [
        f"- {_pick(rng, people)}: {_pick(rng, _ACTION_ITEMS)} by {_pretty_date(day + dt.timedelta(days=rng.randint(2, 20)))}"
        for _ in range(rng.randint(2, 4))
    ]
    return (
        f"Meeting notes, {day.isoformat()}\nAttendees: {', '.join(dict.fromkeys(people))}\n\nAgenda\n"
        + "\n".join(f"{i}. {a}" for i, a in enumerate(items, 1))
        + f"\n\nDecisions\n- {_pick(rng, _DECISIONS).format(m=_pick(rng, MONTHS))}\n\nAction items\n"
        + "\n".join(actions)
        + "\n"
    )


_ACTION_ITEMS = (
    "send the revised budget",
    "draft the job ad",
    "book the venue",
    "follow up with legal",
    "share the churn dashboard",
    "write up the incident timeline",
    "collect quotes from two vendors",
)


def _note_study(rng: random.Random) -> str:
    t = _pick(rng, _TOPICS)
    course = f"{_pick(rng, ('BIO', 'ECON', 'CS', 'GEO', 'PHYS'))} {rng.randint(101, 399)}"
    facts = [t.facts[i] for i in sorted(rng.sample(range(len(t.facts)), rng.randint(2, 3)))]
    facts.append(_TOPIC_EXAMPLES[t.name](rng))
    return (
        f"{course}: {t.name}, lecture {rng.randint(2, 14)} ({_pick(rng, MONTHS)} {rng.randint(1, 28)})\n\n"
        + "\n".join(f"* {f}" for f in facts)
        + f"\n\nMy summary: {t.simple}\nAsk {_pick(rng, ('Prof.', 'Dr.'))} {_pick(rng, SURNAMES)} about "
        f"{_pick(rng, ('the exam format', 'problem set ' + str(rng.randint(2, 9)), 'the reading list'))}.\n"
    )


def _note_trip(rng: random.Random) -> str:
    c = _pick(rng, _CITY_GUIDES)
    d = _date_in(rng)
    flight = f"{_pick(rng, ('TP', 'LH', 'BA', 'KL', 'NH', 'AF'))}{rng.randint(100, 2999)}"
    return (
        f"Trip to {c.name}, {d:%d %b} - {d + dt.timedelta(days=rng.randint(3, 9)):%d %b}\n\n"
        f"Flight {flight}, dep {rng.randint(6, 21):02d}:{_pick(rng, ('05', '20', '35', '50'))}, booking ref "
        f"{_alnum(rng, 6, string.ascii_uppercase)}\nHotel in {_pick(rng, c.areas)}, check-in after 3 pm\n\n"
        f"Want to see: {', '.join(rng.sample(c.sights, 3))}\nMust eat: {', '.join(rng.sample(c.foods, 2))}\n"
        f"Budget: about {c.daily * rng.randint(3, 8):,} {c.currency}\n{c.transport}\n"
    )


def _note_journal(rng: random.Random) -> str:
    d = _date_in(rng)
    lines = _some(rng, _JOURNAL, 3, 5)
    slots = {
        "name": _pick(rng, FIRST_NAMES),
        "name2": _pick(rng, FIRST_NAMES),
        "city": _pick(rng, CITIES),
        "city2": _pick(rng, CITIES),
        "k": rng.randint(2, 9),
        "km": rng.randint(3, 21),
        "m": rng.randint(10, 75),
        "h": rng.randint(2, 9),
        "d": rng.randint(4, 28),
        "bill": _pick(rng, ("electricity", "phone", "water", "internet", "gas")),
        "money": _money(round(rng.uniform(20, 900), 2)),
        "dish": _pick(rng, _RECIPES).dish,
    }
    return f"{_pretty_date(d)}, {d.year}\n\n" + " ".join(x.format(**slots) for x in lines) + "\n"


_JOURNAL = (
    "Woke up early and actually went for the {km} km run.",
    "Lunch with {name}, who is moving to {city} next month.",
    "Work was a blur of meetings, {k} of them back to back.",
    "Made {dish} for dinner; better than last time.",
    "Finally called the bank about the card fee, {m} minutes on hold.",
    "Read for an hour instead of scrolling, felt good.",
    "Rain all day, stayed in and fixed the wobbly shelf.",
    "Need to stop saying yes to every project.",
    "{name2} called from {city2}; we talked for almost {h} hours.",
    "Slept {h} hours and it still wasn't enough.",
    "Paid the {bill} bill, {money} this month.",
    "Booked the train to {city2} for the {d}th.",
    "Started the book {name2} recommended, {k}0 pages in.",
    "The plants on the balcony need repotting before it gets cold.",
    "Walked {km} km with {name} along the river after work.",
    "Budget check: {money} left until payday.",
)


def _note_reading(rng: random.Random) -> str:
    title = _pick(
        rng,
        (
            "The Salt Roads",
            "A Field Guide to Small Rivers",
            "Notes on Quiet Machines",
            "The Last Lighthouse",
            "Counting Winters",
            "The Cartographer's Daughter",
            "Soft Power, Hard Choices",
        ),
    )
    return (
        f"Reading notes: {title} by {_full_name(rng)}\nISBN {_isbn13(rng)}, {rng.randint(180, 640)} pages, "
        f"borrowed {_date_in(rng).isoformat()}\n\n- Chapter {rng.randint(2, 9)} is the strongest part.\n"
        f"- {_pick(rng, ('The middle drags.', 'Great on atmosphere, thin on plot.', 'Made me want to visit ' + _pick(rng, CITIES) + '.'))}\n"
        f"- Rating: {rng.randint(2, 5)}/5\n"
    )


def _note_dev(rng: random.Random) -> str:
    host = f"{_pick(rng, ('web', 'db', 'worker', 'cache'))}-{rng.randint(1, 9):02d}"
    return (
        f"Server notes: {host}\n\nOS: Ubuntu 24.04, kernel 6.8.0-{rng.randint(30, 60)}\n"
        f"nginx {rng.randint(1, 1)}.{rng.randint(24, 27)}.{rng.randint(0, 3)}, Postgres {rng.randint(15, 17)}.{rng.randint(1, 6)}\n"
        f"Driver version {_version4(rng)} (do not upgrade, breaks the RAID controller)\n"
        f"Magic number in the config parser: 0x{rng.randint(0x10000000, 0xFFFFFFFF):08X}\n"
        f"Last deploy: commit {_alnum(rng, 40, '0123456789abcdef')}\n"
        f"Docs example address: admin@example.com (placeholder, not a real mailbox)\n"
        f"Restart: sudo systemctl restart {_pick(rng, ('app', 'gunicorn', 'celery'))}\n"
    )


# --------------------------------------------------------------------------------------------------- web pages


_SITES = (
    ("The Harbour Ledger", "harbourledger.com"),
    ("Northwind Travel Journal", "northwindtravel.net"),
    ("Civic Desk", "civicdesk.org"),
    ("The Weekly Crumb", "weeklycrumb.co"),
    ("Metro Wire", "metrowire.news"),
)
_NAV = ("News", "Politics", "Business", "Science", "Travel", "Food", "Opinion", "Sport", "Culture")
_HEADLINES = (
    "{n} Things to Do in {city} This Winter",
    "Why {city}'s Café Scene Is Booming",
    "How We Cut Our Cloud Bill by {n}0%",
    "A Local's Guide to {city} on a Budget",
    "What I Learned Running {n} Marathons",
    "Inside {city}'s New Night Markets",
)
_SENTENCE_BANK = (
    "The quick brown fox jumps over the lazy dog, and the dog does not seem to mind at all.",
    "Our support team answered most tickets within an hour, but the backlog still grew over the weekend.",
    "The new release fixes the login bug, improves search and makes the app feel much faster.",
    "Customers loved the delivery speed, but many said the packaging was far too big for the product.",
    "The meeting ran long because nobody had read the proposal before the call.",
    "Rain is expected all week, so the outdoor market has moved into the old train station.",
    "The library will stay open late during exams, and the café downstairs will too.",
)


def _article(rng: random.Random, topic: _City | _Recipe | None) -> tuple[str, list[str]]:
    """A news report, or a travel or recipe post when `topic` is a city guide or a recipe."""
    if isinstance(topic, _City):
        c, days = topic, rng.randint(2, 5)
        title = _pick(rng, (f"{days} Days in {c.name}", f"{c.name} on a Budget", f"{c.name} With Kids: What Worked"))
        sights = rng.sample(c.sights, 5)
        return title, [
            f"I spent {days} days in {c.name} in {_pick(rng, MONTHS)} with {_pick(rng, _TRAVEL_COMPANY)}, "
            f"and {_pick(rng, _TRAVEL_OPENERS)}",
            f"Start with {sights[0]}, then {sights[1]}. {_pick(rng, _TRAVEL_TIPS)}",
            f"For food, head to {c.areas[0]} and order {c.foods[0]}; {_full_name(rng)}, who runs a guesthouse in "
            f"{c.areas[1]}, swore by {c.foods[1]}. Budget about {c.daily:,} {c.currency} a day per person.",
            f"We stayed in {c.areas[2]}, {rng.randint(5, 25)} minutes from the centre, which was quieter than "
            f"expected. If you have more time, {sights[2]}, {sights[3]} and {sights[4]} are worth it.",
            f"{c.transport} {_pick(rng, _TRAVEL_TIPS)}",
        ]
    if isinstance(topic, _Recipe):
        r = topic
        title = f"The {_pick(rng, ('Only', 'Easiest', 'Weeknight', 'Cosy'))} {r.dish.title()} Recipe You Need"
        return title, [
            f"{_pick(rng, _RECIPE_OPENERS)} I first had {r.dish} in {_pick(rng, CITIES)} {rng.randint(2, 15)} years "
            f"ago and have been tweaking it ever since.",
            f"This version serves {r.serves} and takes about {sum(r.minutes)} minutes. You'll need "
            + ", ".join(_ingredient(q, u, n) for q, u, n in r.ingredients)
            + ".",
            " ".join(_pick(rng, pair) for pair in r.steps),
            f"{' '.join(r.tips)} {_pick(rng, ('Enjoy!', 'Let me know how it goes in the comments.', ''))}".strip(),
        ]
    title, paras, _ = _report(rng)
    extra = f"{_pick(rng, ('Background:', 'Context:', 'Why it matters:'))} " + " ".join(
        _some(rng, _BACKGROUND, 2, 3)
    ).format(city=_pick(rng, CITIES), n=rng.randint(2, 9))
    return title, [*paras, _reactions(rng), extra, _whats_next(rng)]


_BACKGROUND = (
    "Similar projects in {city} ran over budget by about {n}0%.",
    "The issue has come up at every election since 2018.",
    "Local businesses have been asking for clarity for months.",
    "Critics say the public consultation was rushed.",
    "Independent analysts expect the effects to take {n} years to show.",
    "The figures have not been independently audited.",
)
_TRAVEL_COMPANY = ("my partner", "two kids", "my parents", "three friends", "my sister", "a colleague", "my dog")
_TRAVEL_OPENERS = (
    "it surprised me in the best way.",
    "I already want to go back.",
    "it was busier than I expected.",
    "the weather was kinder than the forecast.",
)
_RECIPE_OPENERS = (
    "This is the dish I make when friends turn up unannounced.",
    "My grandmother would not approve of the shortcuts here, but they work.",
    "I've tested this one more times than I'd like to admit.",
)


def _html_page(rng: random.Random, site: tuple[str, str], title: str, paras: list[str], day: dt.date) -> str:
    name, domain = site
    author, mins = _full_name(rng), max(2, sum(len(p.split()) for p in paras) // 200)
    nav = "".join(f'<li><a href="/{n.lower()}">{n}</a></li>' for n in rng.sample(_NAV, 6))
    related = "".join(
        f'<li><a href="/{_slug(t)}">{t}</a></li>'
        for t in (_pick(rng, _HEADLINES).format(city=_pick(rng, CITIES), n=rng.randint(3, 12)) for _ in range(4))
    )
    body = "\n".join(f"      <p>{_html_escape(p)}</p>" for p in paras)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{_html_escape(title)} | {name}</title>
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <link rel="stylesheet" href="/static/css/main.{_alnum(rng, 8, "0123456789abcdef")}.css">
</head>
<body>
  <div id="cookie-banner" class="cookie-banner">
    <p>We use cookies to improve your experience and to show you personalised ads. <a href="/privacy">Learn more</a></p>
    <button>Accept all</button> <button>Reject non-essential</button>
  </div>
  <header class="site-header">
    <a class="logo" href="/">{name}</a>
    <nav><ul>{nav}</ul></nav>
  </header>
  <main>
    <article>
      <h1>{_html_escape(title)}</h1>
      <p class="byline">By {author} · {day.isoformat()} · {mins} min read</p>
{body}
    </article>
    <aside class="sidebar">
      <h2>Most read</h2>
      <ul>{related}</ul>
      <div class="newsletter">Get the best of {name} in your inbox every Friday. <a href="/subscribe">Subscribe</a></div>
    </aside>
  </main>
  <footer>
    <p>© 2026 {name}. All rights reserved. <a href="https://{domain}/about">About</a> · <a href="/contact">Contact</a>
    · <a href="/terms">Terms</a></p>
  </footer>
</body>
</html>
"""


def _html_escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# --------------------------------------------------------------------------------------------------- eval set


def _eval_math(rng: random.Random, kind: int) -> tuple[str, float]:
    n = _pick(rng, FIRST_NAMES)
    if kind == 0:
        a, b, c, d = rng.randint(120, 300), rng.randint(80, 260), rng.randint(10, 40), rng.choice((12, 15, 18, 24))
        return (
            f"The school library received {a} donated books in September and {b} more in October. The librarian "
            f"keeps {c} of them for the reading corner and puts all the others on new shelves that hold {d} books "
            "each. How many shelves can be filled completely, and how many books are left over for a partly "
            "filled shelf? Give the number of full shelves.",
            (a + b - c) // d,
        )
    if kind == 1:
        a, b, c, w = rng.randint(15, 40), rng.randint(3, 5), rng.randint(60, 140), rng.randint(3, 8)
        return (
            f"During a training block, {n} rides {a} kilometres on each of {b} weekday mornings and one long ride "
            f"of {c} kilometres every Sunday. How many kilometres does {n} ride over {w} full weeks of "
            "training?",
            w * (a * b + c),
        )
    if kind == 2:
        f, g, t, p, d = rng.randint(12, 40), rng.choice((2, 3, 4)), rng.choice((100, 200, 250)), rng.randint(6, 15), 30
        return (
            f"An aquarium keeper looks after {f} tropical fish. Each fish eats {g} grams of flake food per day, "
            f"and one tin holds {t} grams. If a tin costs ${p}, how much does it cost to feed all the fish for "
            f"{d} days when only whole tins can be bought?",
            math.ceil(f * g * d / t) * p,
        )
    if kind == 3:
        a, pa, b, pb, fee = rng.randint(200, 900), rng.randint(40, 95), rng.randint(100, 400), rng.randint(25, 60), 3
        return (
            f"A concert hall sells {a} floor tickets at ${pa} each and {b} balcony tickets at ${pb} each for a "
            f"Friday show. The ticketing company keeps a fee of ${fee} for every ticket it sells. How much money "
            "does the concert hall receive after the fees are taken out?",
            a * pa + b * pb - fee * (a + b),
        )
    if kind == 4:
        length, p, w = rng.randint(180, 400), rng.choice((18, 22, 25, 30)), rng.choice((1, 2))
        return (
            f"{n} is a carpenter with a board that is {length} centimetres long. {n} cuts pieces that are each "
            f"{p} centimetres long, and every cut, including the last one, turns {w} centimetres of wood into "
            "sawdust. How many full pieces can be cut from the board?",
            length // (p + w),
        )
    if kind == 5:
        r, t, a, c = rng.randint(8, 30), rng.randint(10, 25), rng.randint(80, 200), rng.choice((40, 48, 60))
        return (
            f"An orchard has {r} rows of apple trees with {t} trees in each row. Each tree gives about {a} "
            f"apples at harvest time, and the apples are packed into wooden crates of {c}. How many crates are "
            "needed to pack the whole harvest?",
            math.ceil(r * t * a / c),
        )
    if kind == 6:
        a, b = rng.randint(40, 150), rng.randint(60, 200)
        return (
            f"A history museum is open from 9 a.m. to 5 p.m. On Saturday, {a} people came in during every hour "
            f"before noon, and {b} people came in during every hour from noon until closing time. How many "
            "visitors did the museum have on Saturday in total?",
            3 * a + 5 * b,
        )
    if kind == 7:
        base, c, k, p = rng.randint(20, 60), rng.choice((4, 5, 6, 8)), rng.randint(30, 200), rng.randint(12, 48)
        return (
            f"A print shop charges ${base} to set up a job plus {c} cents for every printed page. The chess club "
            f"orders {k} copies of a {p}-page booklet for its spring tournament. What is the total cost of the "
            "order in dollars?",
            base + k * p * c / 100,
        )
    if kind == 8:
        length, s, laps, cd = rng.choice((25, 50)), 4, rng.randint(8, 24), rng.choice((100, 200, 300))
        return (
            f"A swimming pool is {length} metres long. At practice, each of the {s} swimmers on the relay team "
            f"swims {laps} lengths of the pool, and then the coach adds a cool-down of {cd} metres for everyone. "
            "How many metres does the whole team swim in that practice?",
            s * (laps * length + cd),
        )
    kg, p, g, w, s = rng.choice((2, 5, 10)), rng.randint(15, 60), rng.choice((125, 200, 250)), 40, rng.randint(8, 18)
    k = kg * 1000 // g
    return (
        f"A candle maker buys wax in {kg}-kilogram blocks for ${p} each. Every candle uses {g} grams of wax and "
        f"a wick that costs {w} cents, and {n} sells each finished candle for ${s}. What is the profit from "
        "turning one block of wax into candles and selling all of them?",
        k * s - p - k * w / 100,
    )


_EVAL_CODE = (
    (
        "rotate_right",
        "items, k",
        "returns a new list with the elements of `items` rotated `k` positions to the right, "
        "so the last `k` elements move to the front in order. An empty list gives an empty list, and `k` may be larger "
        "than the length of the list.",
        "def rotate_right(items, k):\n    if not items:\n        return []\n    k %= len(items)\n"
        "    return items[-k:] + items[:-k] if k else list(items)",
        ("[1, 2, 3, 4, 5], 2", "['a', 'b'], 5"),
    ),
    (
        "rle_encode",
        "s",
        "compresses a string with run-length encoding: every maximal run of the same character is "
        "written as the character followed by the length of the run. The empty string encodes to the empty string.",
        "def rle_encode(s):\n    out = []\n    i = 0\n    while i < len(s):\n        j = i\n"
        '        while j < len(s) and s[j] == s[i]:\n            j += 1\n        out.append(f"{s[i]}{j - i}")\n'
        '        i = j\n    return "".join(out)',
        ("'aaabccdddd'", "'xyz'"),
    ),
    (
        "is_balanced",
        "s",
        "decides whether the round, square and curly brackets in a string are balanced and "
        "properly nested. Characters that are not brackets are ignored, and an empty string counts as balanced.",
        "def is_balanced(s):\n    pairs = {')': '(', ']': '[', '}': '{'}\n    stack = []\n    for ch in s:\n"
        "        if ch in '([{':\n            stack.append(ch)\n        elif ch in pairs:\n"
        "            if not stack or stack.pop() != pairs[ch]:\n                return False\n    return not stack",
        ("'(a[b]{c})'", "'([)]'"),
    ),
    (
        "second_largest",
        "nums",
        "returns the second largest distinct value in a list of integers, or `None` when the "
        "list has fewer than two distinct values. Duplicates of the largest value must not be counted twice.",
        "def second_largest(nums):\n    distinct = sorted(set(nums), reverse=True)\n"
        "    return distinct[1] if len(distinct) > 1 else None",
        ("[4, 9, 9, 2]", "[7, 7]"),
    ),
    (
        "camel_to_snake",
        "name",
        "converts an identifier written in camelCase or PascalCase into snake_case, putting an "
        "underscore before every uppercase letter that is not the first character and lowering all letters.",
        "def camel_to_snake(name):\n    out = []\n    for i, ch in enumerate(name):\n        if ch.isupper() and i:\n"
        "            out.append('_')\n        out.append(ch.lower())\n    return ''.join(out)",
        ("'parseHttpHeader'", "'UserId'"),
    ),
    (
        "transpose",
        "matrix",
        "returns the transpose of a rectangular matrix given as a list of rows, so that row `i` "
        "of the result is column `i` of the input. The transpose of an empty matrix is an empty list.",
        "def transpose(matrix):\n    return [list(col) for col in zip(*matrix)]",
        ("[[1, 2, 3], [4, 5, 6]]", "[]"),
    ),
    (
        "roman_to_int",
        "s",
        "converts a Roman numeral made of the letters I, V, X, L, C, D and M into an integer, "
        "handling subtractive pairs such as IV, IX, XL, XC, CD and CM. The input is always a valid numeral.",
        "def roman_to_int(s):\n    values = {'I': 1, 'V': 5, 'X': 10, 'L': 50, 'C': 100, 'D': 500, 'M': 1000}\n"
        "    total = 0\n    for a, b in zip(s, s[1:] + ' '):\n        v = values[a]\n"
        "        total += -v if b != ' ' and values[b] > v else v\n    return total",
        ("'MCMXCIV'", "'LVIII'"),
    ),
    (
        "longest_common_prefix",
        "words",
        "finds the longest string that every word in a non-empty list starts with, "
        "returning an empty string when the words share no common beginning at all.",
        "def longest_common_prefix(words):\n    prefix = words[0]\n    for w in words[1:]:\n"
        "        while not w.startswith(prefix):\n            prefix = prefix[:-1]\n    return prefix",
        ("['flower', 'flow', 'flight']", "['dog', 'car']"),
    ),
    (
        "digital_root",
        "n",
        "repeatedly adds up the decimal digits of a non-negative integer until a single digit "
        "remains, and returns that digit. Zero has a digital root of zero.",
        "def digital_root(n):\n    while n >= 10:\n        n = sum(int(d) for d in str(n))\n    return n",
        ("493193", "0"),
    ),
    (
        "most_frequent_char",
        "s",
        "returns the character that appears most often in a non-empty string; when several "
        "characters are tied for the highest count, return the one that comes first in alphabetical order.",
        "def most_frequent_char(s):\n    counts = {}\n    for ch in s:\n        counts[ch] = counts.get(ch, 0) + 1\n"
        "    return min(counts, key=lambda ch: (-counts[ch], ch))",
        ("'mississippi'", "'abcabc'"),
    ),
    (
        "chunk_string",
        "s, n",
        "splits a string into consecutive pieces of length `n`, where only the final piece may "
        "be shorter, and returns the pieces as a list. An empty string yields an empty list.",
        "def chunk_string(s, n):\n    return [s[i:i + n] for i in range(0, len(s), n)]",
        ("'abcdefg', 3", "'', 4"),
    ),
    (
        "squeeze_repeats",
        "s",
        "collapses every run of identical adjacent characters in a string down to a single "
        "character, so that no character is ever followed by a copy of itself in the result.",
        "def squeeze_repeats(s):\n    out = []\n    for ch in s:\n        if not out or out[-1] != ch:\n"
        "            out.append(ch)\n    return ''.join(out)",
        ("'aaabbbcca'", "'book keeper'"),
    ),
    (
        "is_armstrong",
        "n",
        "checks whether a positive integer equals the sum of its own digits, each raised to the "
        "power of the number of digits it has; for example 153 qualifies because 1 + 125 + 27 is 153.",
        "def is_armstrong(n):\n    digits = str(n)\n    return n == sum(int(d) ** len(digits) for d in digits)",
        ("153", "154"),
    ),
    (
        "spiral_order",
        "matrix",
        "returns every element of a rectangular matrix in clockwise spiral order, starting at "
        "the top-left corner and moving right along the first row before turning down the last column.",
        "def spiral_order(matrix):\n    out = []\n    m = [list(r) for r in matrix]\n    while m:\n"
        "        out += m.pop(0)\n        m = [list(r) for r in zip(*m)][::-1]\n    return out",
        ("[[5, 1, 9], [3, 7, 2], [8, 6, 4]]", "[[10, 20], [40, 30]]"),
    ),
    (
        "caesar_shift",
        "text, k",
        "encrypts text with a Caesar cipher, shifting each ASCII letter `k` places forward in "
        "the alphabet and wrapping around from z to a. Case is preserved and other characters stay unchanged.",
        "def caesar_shift(text, k):\n    out = []\n    for ch in text:\n        if ch.isascii() and ch.isalpha():\n"
        "            base = ord('a') if ch.islower() else ord('A')\n"
        "            out.append(chr((ord(ch) - base + k) % 26 + base))\n        else:\n            out.append(ch)\n"
        "    return ''.join(out)",
        ("'Hello, World!', 3", "'xyz', 2"),
    ),
)


def _eval_items() -> list[dict[str, str]]:
    rng = random.Random("ptdata-demo-eval-v1")
    items = []
    for kind in range(10):
        for v in range(3):
            q, a = _eval_math(rng, kind)
            items.append({"task_id": f"demo-math-{kind * 3 + v:03d}", "prompt": q, "answer": _num(round(a, 2))})
    for i, (entry, args, desc, solution, examples) in enumerate(_EVAL_CODE):
        for v, ex in enumerate(examples):
            ns: dict[str, Any] = {}
            exec(solution, ns)  # the reference solution is ours; running it gives the example's exact output
            out = eval(f"{entry}({ex})", ns)
            lead = ("Write a Python function", "Implement a Python function")[v]
            prompt = f"{lead} `{entry}({args})` that {desc} For example, `{entry}({ex})` should return `{out!r}`."
            items.append({"task_id": f"demo-code-{i * 2 + v:03d}", "prompt": prompt, "answer": solution})
    return items


def write_eval_set(path: Path = EVAL_SET_PATH) -> Path:
    """Write the demo eval set: 30 grade-school math word problems and 30 short Python tasks (gzip, mtime 0)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_gzip(b"".join(_jsonl(item) + b"\n" for item in _eval_items())))
    return path


# --------------------------------------------------------------------------------------------------- code problems


@dataclass(frozen=True)
class _CodeProblem:
    """A function-writing task; `{fn}` in the descriptions and the solution stands for the function's name."""

    names: tuple[str, ...]
    args: str
    descriptions: tuple[str, ...]
    solutions: tuple[str, ...]
    inputs: list[str]


def _cp_sum_multiples(rng: random.Random) -> _CodeProblem:
    a, b = rng.sample((3, 4, 5, 6, 7, 9, 11, 13), 2)
    return _CodeProblem(
        ("sum_multiples", f"sum_of_multiples_{a}_{b}", "multiples_total"),
        "limit",
        (
            f"returns the sum of all positive integers below `limit` that are divisible by {a} or by {b}; numbers "
            "divisible by both count once.",
            f"adds up every number from 1 to limit - 1 that is a multiple of {a}, a multiple of {b}, or both.",
        ),
        (f"def {{fn}}(limit):\n    return sum(n for n in range(1, limit) if n % {a} == 0 or n % {b} == 0)",),
        [str(rng.randint(1, 300)) for _ in range(4)] + ["1"],
    )


def _cp_long_words(rng: random.Random) -> _CodeProblem:
    k = rng.randint(3, 8)
    texts = [" ".join(rng.sample(_WORDS, rng.randint(3, 9))) for _ in range(3)]
    return _CodeProblem(
        ("count_long_words", f"words_longer_than_{k}", "long_word_count"),
        "text",
        (
            f"counts how many whitespace-separated words in `text` have more than {k} characters.",
            f"returns the number of words (split on whitespace) whose length is at least {k + 1}.",
        ),
        (f"def {{fn}}(text):\n    return sum(1 for w in text.split() if len(w) > {k})",),
        [repr(t) for t in texts] + ["''"],
    )


def _cp_every_kth(rng: random.Random) -> _CodeProblem:
    k, s = rng.randint(2, 5), rng.randint(0, 3)
    return _CodeProblem(
        ("every_kth", f"take_every_{k}", "sample_items"),
        "items",
        (
            f"returns every {k}th element of `items`, starting with the element at index {s}.",
            f"builds a new list from the items at positions {s}, {s + k}, {s + 2 * k} and so on.",
        ),
        (f"def {{fn}}(items):\n    return items[{s}::{k}]",),
        [repr(list(range(rng.randint(0, 14)))) for _ in range(3)] + [repr(rng.sample(_WORDS, rng.randint(3, 8)))],
    )


def _cp_mask_vowels(rng: random.Random) -> _CodeProblem:
    c = _pick(rng, ("*", "#", "_", "?", "."))
    return _CodeProblem(
        ("mask_vowels", "hide_vowels", "censor_vowels"),
        "s",
        (
            f"replaces every vowel (a, e, i, o, u, in either case) in `s` with `{c}` and leaves every other character "
            "alone.",
            f"returns a copy of the string in which each of the letters aeiouAEIOU has become `{c}`.",
        ),
        (
            f"def {{fn}}(s):\n    return ''.join('{c}' if ch in 'aeiouAEIOU' else ch for ch in s)",
            f"import re\n\n\ndef {{fn}}(s):\n    return re.sub('[aeiouAEIOU]', '{c}', s)",
        ),
        [repr(" ".join(rng.sample(_WORDS, 3)).capitalize()) for _ in range(3)] + ["'rhythm'"],
    )


def _cp_running_max(rng: random.Random) -> _CodeProblem:
    op, word = _pick(rng, (("max", "largest"), ("min", "smallest")))
    return _CodeProblem(
        (f"running_{op}", f"prefix_{op}", f"cumulative_{op}"),
        "nums",
        (
            f"returns a list where position i holds the {word} value among `nums[0]` to `nums[i]`.",
            f"walks through the numbers and records, at each step, the {word} number seen so far.",
        ),
        (
            f"def {{fn}}(nums):\n    out = []\n    for x in nums:\n        out.append(x if not out else {op}(out[-1], x))\n"
            "    return out",
            f"from itertools import accumulate\n\n\ndef {{fn}}(nums):\n    return list(accumulate(nums, {op}))",
        ),
        [repr([rng.randint(-40, 90) for _ in range(rng.randint(0, 8))]) for _ in range(4)],
    )


_PALINDROMES = (
    "A man, a plan, a canal: Panama",
    "No lemon, no melon",
    "Was it a car or a cat I saw?",
    "Step on no pets",
    "Never odd or even",
    "Madam, in Eden, I'm Adam",
    "Eva, can I see bees in a cave?",
    "Red rum, sir, is murder",
)


def _cp_palindrome(rng: random.Random) -> _CodeProblem:
    cases = [repr(x) for x in rng.sample(_PALINDROMES, 2)] + [
        repr(" ".join(rng.sample(_WORDS, 2))),
        repr(_pick(rng, _WORDS)),
        "''",
    ]
    rng.shuffle(cases)
    return _CodeProblem(
        ("is_clean_palindrome", "is_loose_palindrome", "reads_same_both_ways"),
        "s",
        (
            "returns True if `s` reads the same forwards and backwards after removing every character that is not a "
            "letter or digit and ignoring case.",
            "checks whether a sentence is a palindrome when punctuation, spaces and capitalisation are disregarded.",
        ),
        (
            "def {fn}(s):\n    cleaned = [ch.lower() for ch in s if ch.isalnum()]\n    return cleaned == cleaned[::-1]",
            "def {fn}(s):\n    text = ''.join(filter(str.isalnum, s)).casefold()\n    i, j = 0, len(text) - 1\n"
            "    while i < j:\n        if text[i] != text[j]:\n            return False\n        i += 1\n        j -= 1\n"
            "    return True",
        ),
        cases,
    )


def _cp_count_pairs(rng: random.Random) -> _CodeProblem:
    return _CodeProblem(
        ("count_pairs", "pairs_with_sum", "count_target_pairs"),
        "nums, target",
        (
            "counts the pairs of indices i < j with `nums[i] + nums[j] == target`.",
            "returns how many unordered index pairs in the list add up exactly to the target value.",
        ),
        (
            "def {fn}(nums, target):\n    seen = {}\n    count = 0\n    for x in nums:\n"
            "        count += seen.get(target - x, 0)\n        seen[x] = seen.get(x, 0) + 1\n    return count",
            "from itertools import combinations\n\n\ndef {fn}(nums, target):\n"
            "    return sum(1 for a, b in combinations(nums, 2) if a + b == target)",
        ),
        [f"{[rng.randint(0, 12) for _ in range(rng.randint(2, 10))]!r}, {rng.randint(3, 18)}" for _ in range(4)],
    )


def _cp_clamp(rng: random.Random) -> _CodeProblem:
    lo, hi = rng.randint(-20, 5), rng.randint(10, 60)
    return _CodeProblem(
        ("clamp_all", "clip_values", f"limit_to_{hi}"),
        "nums",
        (
            f"returns a new list in which every value below {lo} is replaced by {lo} and every value above {hi} by {hi}.",
            f"clips each number into the closed range from {lo} to {hi}, keeping the order of the list.",
        ),
        (f"def {{fn}}(nums):\n    return [min(max(x, {lo}), {hi}) for x in nums]",),
        [repr([rng.randint(-40, 80) for _ in range(rng.randint(0, 7))]) for _ in range(4)],
    )


def _cp_fizz(rng: random.Random) -> _CodeProblem:
    a, b = rng.sample((2, 3, 4, 5, 7, 11), 2)
    w1, w2 = rng.sample(("Fizz", "Buzz", "Ping", "Pong", "Zap", "Boing", "Whoosh"), 2)
    return _CodeProblem(
        ("word_game", f"{w1.lower()}_{w2.lower()}", "count_with_words"),
        "n",
        (
            f'returns a list of strings for the numbers 1 to n: "{w1}" for multiples of {a}, "{w2}" for multiples of '
            f'{b}, "{w1}{w2}" for multiples of both, and the number itself otherwise.',
            f'plays a counting game up to n, saying "{w1}" on multiples of {a}, "{w2}" on multiples of {b}, both '
            "words joined on common multiples, and the number as a string otherwise.",
        ),
        (
            f"def {{fn}}(n):\n    out = []\n    for i in range(1, n + 1):\n        word = ''\n        if i % {a} == 0:\n"
            f"            word += '{w1}'\n        if i % {b} == 0:\n            word += '{w2}'\n"
            "        out.append(word or str(i))\n    return out",
        ),
        [str(rng.randint(1, 24)) for _ in range(3)] + ["0"],
    )


def _cp_merge_sorted(rng: random.Random) -> _CodeProblem:
    def srt() -> list[int]:
        return sorted(rng.randint(-20, 60) for _ in range(rng.randint(0, 6)))

    return _CodeProblem(
        ("merge_sorted", "merge_two_sorted", "combine_sorted"),
        "a, b",
        (
            "merges two lists that are already sorted in ascending order into one sorted list, without calling sort() "
            "or sorted().",
            "combines two ascending lists into a single ascending list in linear time, using two "
            "indexes instead of re-sorting.",
        ),
        (
            "def {fn}(a, b):\n    i = j = 0\n    out = []\n    while i < len(a) and j < len(b):\n"
            "        if a[i] <= b[j]:\n            out.append(a[i])\n            i += 1\n        else:\n"
            "            out.append(b[j])\n            j += 1\n    return out + a[i:] + b[j:]",
            "import heapq\n\n\ndef {fn}(a, b):\n    return list(heapq.merge(a, b))",
        ),
        [f"{srt()!r}, {srt()!r}" for _ in range(4)],
    )


def _cp_median(rng: random.Random) -> _CodeProblem:
    return _CodeProblem(
        ("median", "middle_value", "median_of"),
        "nums",
        (
            "returns the median of a non-empty list of numbers; for an even count, return the mean of the two middle "
            "values as a float.",
            "finds the middle value of the numbers once sorted, averaging the two central values "
            "when the list has an even length.",
        ),
        (
            "def {fn}(nums):\n    s = sorted(nums)\n    mid = len(s) // 2\n"
            "    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2",
            "def {fn}(nums):\n    ordered = sorted(nums)\n    n = len(ordered)\n    if n % 2 == 1:\n"
            "        return ordered[n // 2]\n    lo, hi = ordered[n // 2 - 1], ordered[n // 2]\n    return (lo + hi) / 2",
        ),
        [repr([rng.randint(-50, 150) for _ in range(rng.randint(1, 8))]) for _ in range(4)],
    )


def _cp_anagrams(rng: random.Random) -> _CodeProblem:
    cases = []
    for w in rng.sample(_WORDS, 3):
        mixed = "".join(rng.sample(w, len(w)))
        cases.append(f"{w!r}, {mixed.upper() if rng.random() < 0.5 else mixed!r}")
    cases.append(f"{_pick(rng, _WORDS)!r}, {_pick(rng, _WORDS)!r}")
    return _CodeProblem(
        ("are_anagrams", "is_anagram", "same_letters"),
        "a, b",
        (
            "returns True if the two strings are anagrams of each other, ignoring spaces and case.",
            "decides whether one string can be rearranged into the other, treating upper and lower case alike and "
            "skipping spaces.",
        ),
        (
            "def {fn}(a, b):\n    def norm(s):\n        return sorted(s.replace(' ', '').lower())\n\n"
            "    return norm(a) == norm(b)",
            "from collections import Counter\n\n\ndef {fn}(a, b):\n"
            "    return Counter(a.lower().replace(' ', '')) == Counter(b.lower().replace(' ', ''))",
        ),
        cases,
    )


def _cp_celsius(rng: random.Random) -> _CodeProblem:
    d = rng.randint(0, 2)
    return _CodeProblem(
        ("to_fahrenheit", "celsius_to_fahrenheit", "convert_temps"),
        "temps",
        (
            f"converts a list of Celsius temperatures to Fahrenheit, rounding each result to {d} decimal places.",
            f"maps every temperature from °C to °F with F = C × 9/5 + 32, rounded to {d} digits after the point.",
        ),
        (f"def {{fn}}(temps):\n    return [round(c * 9 / 5 + 32, {d}) for c in temps]",),
        [repr([round(rng.uniform(-30, 45), 1) for _ in range(rng.randint(0, 5))]) for _ in range(4)],
    )


def _cp_case_counts(rng: random.Random) -> _CodeProblem:
    return _CodeProblem(
        ("case_counts", "count_cases", "upper_lower_counts"),
        "s",
        (
            "returns a tuple `(upper, lower)` with the number of uppercase and lowercase letters in s.",
            "counts capital letters and small letters separately and gives both numbers back as a pair.",
        ),
        (
            "def {fn}(s):\n    return (sum(ch.isupper() for ch in s), sum(ch.islower() for ch in s))",
            "def {fn}(s):\n    upper = lower = 0\n    for ch in s:\n        if ch.isupper():\n            upper += 1\n"
            "        elif ch.islower():\n            lower += 1\n    return upper, lower",
        ),
        [repr(f"{_pick(rng, CITIES)} {_pick(rng, FIRST_NAMES)} {_pick(rng, _WORDS).upper()}") for _ in range(3)]
        + ["''"],
    )


_CODE_FAMILIES: tuple[Callable[[random.Random], _CodeProblem], ...] = (
    _cp_sum_multiples,
    _cp_long_words,
    _cp_every_kth,
    _cp_mask_vowels,
    _cp_running_max,
    _cp_palindrome,
    _cp_count_pairs,
    _cp_clamp,
    _cp_fizz,
    _cp_merge_sorted,
    _cp_median,
    _cp_anagrams,
    _cp_celsius,
    _cp_case_counts,
)
_WORDS = (
    "river",
    "lantern",
    "keyboard",
    "orbit",
    "pepper",
    "glacier",
    "notebook",
    "violin",
    "harbor",
    "cactus",
    "meadow",
    "tunnel",
    "saffron",
    "quartz",
    "pillow",
    "compass",
    "thunder",
    "biscuit",
    "falcon",
    "marble",
    "canyon",
    "teapot",
    "anchor",
    "velvet",
    "pixel",
    "walnut",
    "beacon",
    "ember",
    "sparrow",
    "lagoon",
)
_CODE_LEADS = (
    "Write a Python function",
    "Implement",
    "Complete the function",
    "Define a function",
    "Please write a function",
    "Create a Python function",
)
_CODE_CONTEXTS = (
    "This is for {x}.",
    "I need this helper for {x}.",
    "Context: {x}.",
    "It's part of {x}.",
    "We use it in {x}.",
    "Background: I'm building {x}.",
)
_CODE_PURPOSES = (
    "a log-processing script",
    "a spreadsheet clean-up tool",
    "a classroom exercise",
    "a Discord bot",
    "our data pipeline",
    "a weekend game jam",
    "a teaching notebook",
    "an interview warm-up",
    "a home-automation script",
    "a school timetable app",
    "a small inventory tool",
    "a trivia game",
    "a museum ticketing kiosk",
    "a chemistry lab logger",
    "a chess club ladder",
    "a bike-rental dashboard",
    "a podcast transcript tool",
    "a farm sensor project",
)


def _code_record(rng: random.Random, p: _CodeProblem) -> dict[str, Any]:
    fn = _pick(rng, p.names)
    solution = _pick(rng, p.solutions).replace("{fn}", fn)
    ns: dict[str, Any] = {}
    exec(solution, ns)  # our own reference solution: running it gives exact expected values for the tests
    tests = [f"assert {fn}({args}) == {eval(f'{fn}({args})', ns)!r}" for args in p.inputs]
    examples = rng.sample(p.inputs, rng.randint(1, 2))
    shown = "\n".join(f"`{fn}({x})` returns `{eval(f'{fn}({x})', ns)!r}`." for x in examples)
    text = (
        f"{_pick(rng, _CODE_LEADS)} `{fn}({p.args})` that {_pick(rng, p.descriptions)} "
        f"{_pick(rng, _CODE_CONTEXTS).format(x=_pick(rng, _CODE_PURPOSES))}\n\n"
        f"{_pick(rng, ('Examples:', 'For example:', 'E.g.', 'Expected behaviour:'))}\n{shown}"
    )
    if rng.random() < 0.3:
        text += "\n\n" + _pick(
            rng,
            (
                "Reply with the code only.",
                "No explanation needed, just the function.",
                "Keep it to the standard library.",
            ),
        )
    prompt: list[Msg] = [{"role": "user", "content": text}]
    if rng.random() < 0.25:
        prompt.insert(
            0,
            {
                "role": "system",
                "content": "You are an expert Python programmer. Put your solution in one fenced code block.",
            },
        )
    return {
        "prompt": prompt,
        "solution": solution,
        "verifier": "code_tests",
        "verifier_args": {"tests": tests, "entry_point": fn},
    }


# --------------------------------------------------------------------------------------------------- planted records


def _stamp(rng: random.Random, day: dt.date) -> str:
    return f"{day.isoformat()}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z"


def _chat(user: str, assistant: str, system: str | None = None) -> list[Msg]:
    head = [{"role": "system", "content": system}] if system else []
    return [*head, {"role": "user", "content": user}, {"role": "assistant", "content": assistant}]


def _pii_contact(rng: random.Random) -> list[Msg]:
    first, last = _person(rng)
    mail, us, intl = _email(rng, first, last), _us_phone(rng), _intl_phone(rng)
    landlord = _full_name(rng)
    user = (
        f"Can you write a short note to my new landlord, {landlord}, introducing myself? I'm {first} {last}, moving "
        f"in on the 1st. Please include my contact details: email {mail}, mobile {us}, and my office line in "
        f"{_pick(rng, ('London', 'Berlin', 'Paris', 'Tokyo', 'Lisbon'))}, {intl}."
    )
    answer = (
        f"Subject: Introduction from your new tenant\n\nDear {landlord},\n\nMy name is {first} {last}, and I'll be "
        "moving into the apartment on the 1st. I wanted to introduce myself and share my contact details in "
        f"case you need to reach me.\n\nEmail: {mail}\nMobile: {us}\nOffice: {intl}\n\nPlease let me know if "
        "there's anything you need from me before the move, such as a copy of my ID or the signed inventory. "
        f"I'm looking forward to living there.\n\nBest regards,\n{first} {last}"
    )
    return _chat(user, answer)


def _pii_aws(rng: random.Random) -> list[Msg]:
    key, secret = _aws_keys(rng)
    user = (
        "boto3 keeps failing with `InvalidClientTokenId` when I call `s3.list_buckets()`. This is my "
        f"~/.aws/credentials file:\n\n```ini\n[default]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\n"
        f"region = {_pick(rng, ('eu-west-1', 'us-east-2', 'ap-southeast-2'))}\n```\n\nWhat am I doing wrong?"
    )
    answer = (
        "First, please treat those keys as compromised: you've pasted them in plain text. Deactivate the key in "
        "the IAM console and create a new one before doing anything else.\n\n`InvalidClientTokenId` usually "
        "means the access key ID doesn't exist in the account you're calling, for example because it was "
        "deleted, belongs to another account, or an environment variable like `AWS_ACCESS_KEY_ID` is overriding "
        "the file. Check with:\n\n```bash\nenv | grep AWS_\naws sts get-caller-identity\n```\n\nIf "
        "`get-caller-identity` fails too, the credentials themselves are the problem. For local development, "
        "consider `aws sso login` so you don't need long-lived keys at all."
    )
    return _chat(user, answer)


def _pii_jwt(rng: random.Random) -> list[Msg]:
    token = _jwt(rng)
    user = (
        f"Our API returns 401 for this request and I can't see why:\n\n```\ncurl -H 'Authorization: Bearer {token}' "
        f"https://api.{_pick(rng, ('kestrelsoft.io', 'bluefin-analytics.com', 'harborpine.co'))}/v1/me\n```"
    )
    answer = (
        "A 401 with a bearer token usually comes down to one of these:\n\n1. The token is expired: decode the "
        "payload (the middle part, base64url) and compare `exp` with the current time. This token has an `iat` "
        "but no `exp`, which some servers reject outright.\n2. The signature doesn't match the server's secret, "
        "for example a staging token sent to production.\n3. The audience or issuer claim doesn't match what the "
        "API expects.\n\nAlso, a bearer token is a credential: avoid pasting real ones into chats or tickets, and "
        "revoke this one if it's still valid."
    )
    return _chat(user, answer)


def _pii_card(rng: random.Random) -> list[Msg]:
    card, name, n = _card(rng), _full_name(rng), rng.randint(100000, 999999)
    amount = _money(round(rng.uniform(20, 900), 2))
    user = (
        f"I was charged twice ({amount} each) on my card {card} for order #{n} from "
        f"{_pick(rng, COMPANIES)}. Can you write a dispute message to my bank? My name is {name}."
    )
    last4 = card.replace(" ", "").replace("-", "")[-4:]
    answer = (
        f"Here's a message you can send through your bank's secure messaging:\n\nSubject: Duplicate charge on card "
        f"ending {last4}\n\nHello,\n\nI'd like to dispute a duplicate transaction. Order #{n} was charged twice, "
        f"{amount} each time, on my card ending in {last4}. I only placed one order and have contacted the "
        "merchant, who has not yet issued a refund. Please reverse the second charge.\n\nThank you,\n"
        f"{name}\n\nOnly include the last four digits when you write to the bank; they already know the full "
        "number."
    )
    return _chat(user, answer)


def _pii_github(rng: random.Random) -> list[Msg]:
    token, org = _github_token(rng), _pick(rng, ("kestrel-software", "quarry-labs", "tidewater-foods"))
    user = (
        f"git push fails with `remote: Invalid username or token`. My remote is set like this:\n\n```\n"
        f"git remote set-url origin https://{token}@github.com/{org}/{_pick(rng, ('api', 'website', 'etl'))}.git\n```"
    )
    answer = (
        "That token is now exposed, so revoke it under Settings → Developer settings → Personal access tokens and "
        "create a new one. The error itself usually means the token expired or lacks the `repo` scope (for "
        "fine-grained tokens: *Contents: read and write* on that repository).\n\nRather than embedding it in the "
        "URL, use a credential helper:\n\n```bash\ngit remote set-url origin https://github.com/ORG/REPO.git\n"
        "gh auth login\ngh auth setup-git\n```"
    )
    return _chat(user, answer)


def _pii_network(rng: random.Random) -> list[Msg]:
    v4, v6 = _ipv4(rng), _ipv6(rng)
    user = (
        f"My VPS answers on {v4} but not on its IPv6 address {v6}. `curl -6` just hangs. nginx is listening on "
        "port 443. What should I check?"
    )
    answer = (
        "Work from the outside in:\n\n1. Does nginx listen on IPv6 at all? You need `listen [::]:443 ssl;` in "
        "addition to `listen 443 ssl;`. Check with `ss -tlnp | grep 443`.\n2. Firewall: ip6tables/nftables rules "
        "are separate from the IPv4 ones, and many setups default to dropping IPv6.\n3. Is the address actually "
        "routed? `ping -6` from another machine, and check the provider's panel: some assign a /64 but need "
        "the address configured manually.\n4. DNS: make sure the AAAA record points to the right address."
    )
    return _chat(user, answer)


def _pii_cred_url(rng: random.Random) -> list[Msg]:
    url = _cred_url(rng)
    user = (
        f"Our CI can't download artifacts anymore. The job runs `curl -fsSL {url}` and gets a 403 since yesterday. "
        "Nothing changed on our side."
    )
    answer = (
        "A 403 (not 401) means the server understood the credentials but refuses them, so the account probably "
        "lost access or its password was rotated. Two things:\n\n1. Credentials in URLs end up in CI logs, shell "
        "history and proxy logs. Rotate that password now and move it into a CI secret.\n2. Pass it with "
        '`curl -u "$USER:$PASS"` or a netrc file instead, so it never appears in the command line.\n\nThen ask '
        "whoever runs the server whether the account's permissions changed yesterday."
    )
    return _chat(user, answer)


def _pii_ssn(rng: random.Random) -> list[Msg]:
    name, ssn = _full_name(rng), _ssn(rng)
    user = (
        f"I'm filling in a W-9 for a freelance client. Name: {name}, SSN {ssn}, address "
        f"{rng.randint(10, 999)} {_pick(rng, ('Maple', 'Cedar', 'Harbor', 'Elm'))} St, "
        f"{_pick(rng, ('Austin, TX', 'Denver, CO', 'Portland, OR'))}. Which box do I tick as a sole proprietor?"
    )
    answer = (
        "Tick the first box in line 3, *Individual/sole proprietor or single-member LLC*. Put your own name on "
        "line 1 and leave line 2 blank unless you use a business name.\n\nOne caution: send the W-9 through the "
        "client's secure portal or an encrypted channel, never plain email, since it contains your SSN. And "
        "it's best not to share the number in chats like this one."
    )
    return _chat(user, answer)


def _pii_vcard(rng: random.Random) -> list[Msg]:
    first, last = _person(rng)
    company, phone, mail = _pick(rng, COMPANIES), _intl_phone(rng), _email(rng, first, last)
    user = (
        f"Turn this into a vCard I can import: {first} {last}, {_pick(rng, _EMAIL_FILL['role'])} at {company}, "
        f"phone {phone}, email {mail}"
    )
    answer = (
        f"Here's a vCard 3.0 you can save as `{_ascii(first).lower()}.vcf`:\n\n```\nBEGIN:VCARD\nVERSION:3.0\n"
        f"N:{last};{first};;;\nFN:{first} {last}\nORG:{company}\nTEL;TYPE=WORK,VOICE:{phone}\n"
        f"EMAIL;TYPE=INTERNET:{mail}\nEND:VCARD\n```\n\nMost phones and mail clients import it directly."
    )
    return _chat(user, answer)


def _hard_negatives_chat(rng: random.Random) -> list[Msg]:
    ver, isbn = _version4(rng), _isbn13(rng)
    user = (
        f"After upgrading our driver to {ver} the checksum in this function changed. Docs say to report issues to "
        f"user@example.com, which obviously bounces. Code:\n\n```python\nMASK = 0xFFFFFFFF\nSEED = 0x9E3779B9\n\n"
        "def checksum(data: bytes) -> int:\n    h = SEED\n    for b in data:\n"
        "        h = ((h << 5) + h + b) & MASK\n    return h\n```\n\nThe release date was 2026-10-28, build "
        f"{rng.randint(1000, 9999)}. Also, unrelated: is ISBN {isbn} the right edition of the algorithms book?"
    )
    answer = (
        "The function itself is deterministic: `(h << 5) + h + b` is the djb2 step masked to 32 bits, so the "
        "same bytes always give the same result. If the value changed after the driver upgrade, the input bytes "
        "changed, most likely line endings or an encoding difference in how the data is read. Log "
        "`data[:32].hex()` before and after the upgrade and compare.\n\n`user@example.com` is a documentation "
        "placeholder (example.com is reserved for examples), so look for a real support address on the vendor's "
        "site. I can't verify specific ISBNs, but the publisher's site lists the ISBN of each edition."
    )
    return _chat(user, answer)


_REFUSALS = (
    "I'm sorry, but as an AI language model I cannot help with that request.",
    "I'm sorry, but as an AI language model, I cannot provide assistance with this. Is there anything else I can help "
    "you with?",
    "As an AI developed to be helpful and harmless, I'm unable to fulfil this request.",
)


def _refusal(rng: random.Random) -> list[Msg]:
    task = _pick(rng, (_recipe_task, _travel_task, _email_task))(rng)
    return _chat(task.user, _pick(rng, _REFUSALS))


def _empty_reply(rng: random.Random) -> list[Msg]:
    return _chat(_explain_task(rng).user, "")


def _cut_mid_sentence(rng: random.Random) -> list[Msg]:
    task = _pick(rng, (_email_task, _summary_task, _explain_task))(rng)
    words = task.answer.split(" ")
    cut = max(6, len(words) * 3 // 5)
    while cut < len(words) - 1 and words[cut - 1].endswith((".", "!", "?", ":")):
        cut += 1
    return _chat(task.user, " ".join(words[:cut]))


def _unclosed_fence(rng: random.Random) -> list[Msg]:
    task = _pick(rng, _PY_TASKS)(rng)
    head, _, code_and_rest = task.answer.partition("```python\n")
    return _chat(task.user, head + "```python\n" + code_and_rest.split("\n```", 1)[0])


def _mojibake_chat(rng: random.Random) -> list[Msg]:
    """A café question and answer whose accents and curly apostrophes went through a double encoding."""
    city = _pick(rng, ("São Paulo", "Málaga", "Zürich", "Kraków", "Montréal"))
    user = f"What’s a good café in {city} for working on a laptop? I don’t mind paying a bit more."
    answer = (
        f"In {city}, look for cafés near the university: they’re used to people staying for hours. Order "
        "something every hour or so, avoid the lunch rush, and don’t take a four-person table on your own. "
        "Many places list Wi‑Fi and sockets on their Google Maps photos, which saves a wasted trip."
    )
    return _chat(_mojibake(user), _mojibake(answer))


def _mojibake_foreign(rng: random.Random) -> list[Msg]:
    """A French, Spanish, German or Portuguese exchange whose accents went through a double encoding."""
    while True:
        task = _foreign_task(rng)
        if not task.user.isascii() and all(ord(ch) < 0x3000 for ch in task.user + task.answer):
            return _chat(_mojibake(task.user), _mojibake(task.answer))


def _control_chars(rng: random.Random) -> list[Msg]:
    service = _pick(rng, ("worker", "api", "scheduler"))
    user = (
        f"my deploy script prints this and exits:\n\x1b[31mERROR\x1b[0m {service}: health check failed\x07\n"
        f"\x1b[33mWARN\x1b[0m retrying in 5s\x08\x08\x00\nwhy are there weird symbols in the log file?"
    )
    answer = (
        "Those are ANSI escape codes (the `\\x1b[31m` parts set colours) plus a bell character. They look "
        "fine in a terminal but end up as junk in files. Most tools have a flag to turn colours off, such as "
        "`--no-color` or the `NO_COLOR=1` environment variable; or strip them with "
        "`sed 's/\\x1b\\[[0-9;]*m//g'`. The health check failure is the real problem: check the service's own "
        "logs for why it didn't answer."
    )
    return _chat(user, answer)


def _eval_leak_chat(item: dict[str, str]) -> list[Msg]:
    return _chat(item["prompt"], f"Let's work it out step by step. The answer is {item['answer']}.")


def _lookalike_chat() -> list[Msg]:
    user = (
        "Our theatre group put on two performances last weekend. The stalls seats went for twenty-two dollars, "
        "gallery seats were fifteen, and the box office app took a flat charge on each sale. We sold 180 stalls "
        "and 95 gallery seats, and the app's charge was two dollars apiece. What did we actually take home?"
    )
    answer = (
        "Stalls: 180 × $22 = $3,960. Gallery: 95 × $15 = $1,425. Gross: $5,385. The app charged "
        "(180 + 95) × $2 = $550, so you took home $5,385 − $550 = **$4,835**."
    )
    return _chat(user, answer)


def _long_chat(rng: random.Random) -> list[Msg]:
    """A summarisation chat of 250+ words: long enough that the near-duplicate variants stay above a 0.8 Jaccard."""
    while True:
        title, paras, facts = _report(rng)
        paras += [_reactions(rng), " ".join(_BACKGROUND).format(city=_pick(rng, CITIES), n=rng.randint(2, 9))]
        user = "Summarize this article for our team newsletter:\n\n" + "\n\n".join(paras)
        msgs = _chat(user, f"**{title}**\n\n" + "\n".join(f"- {f}" for f in facts))
        if len(_dialog_text(msgs).split()) >= 250:
            return msgs


def _huge_chat() -> list[Msg]:
    rows = "".join(
        f"2026-{1 + i // 44640:02d}-{1 + i // 1440 % 31:02d}T{i // 60 % 24:02d}:{i % 60:02d},"
        f"s-{i % 17:02d},{18 + (i * 7) % 90 / 10:.1f},{40 + (i * 13) % 35}\n"
        for i in range(190_000)
    )
    return _chat(
        "Can you generate a CSV of synthetic sensor readings, one row per minute, for load testing our "
        "ingestion service?",
        f"Sure, here it is:\n\n```csv\ntimestamp,sensor,temperature_c,humidity\n{rows}```",
    )


def _near_dup(text: str, how: str, rng: random.Random) -> str:
    """A near-duplicate of `text`: a few words changed, punctuation and spacing changed, or a sentence appended."""
    if how == "words":
        words = text.split(" ")
        for pos in (len(words) // 5, len(words) // 2, len(words) * 4 // 5):
            words[pos] = _pick(rng, ("recent", "local", "new", "major", "official"))
        return " ".join(words)
    if how == "punct":
        return text.replace(", ", " , ").replace(". ", ".  ").replace("\n\n", "\n \n").replace(":", " -")
    return (
        text.rstrip()
        + " "
        + _pick(
            rng,
            (
                "More details are expected later this week.",
                "This story has been updated with additional reporting.",
                "Readers can send questions to the newsroom for a follow-up piece.",
            ),
        )
    )


def _near_dup_msgs(msgs: list[Msg], how: str, rng: random.Random) -> list[Msg]:
    out = [dict(m) for m in msgs]
    out[-2]["content"] = _near_dup(out[-2]["content"], how, rng)
    return out


# --------------------------------------------------------------------------------------------------- file plumbing


@dataclass(frozen=True)
class _Copy:
    """A planted exact duplicate: the content of the record at (day index, file, 1-based line), with a new id."""

    day: int
    file: str
    line: int


_BLANK = b""


def _place(normal: list[Any], planted: dict[int, Any]) -> list[Any]:
    """The file's lines: planted[k] lands on 1-based line k, the normal records fill the other lines in order."""
    it = iter(normal)
    return [planted[i] if i in planted else next(it) for i in range(1, len(normal) + len(planted) + 1)]


def _resolve(files: dict[tuple[int, str], list[Any]]) -> None:
    for lines in files.values():
        for i, slot in enumerate(lines):
            if isinstance(slot, _Copy):
                ref = files[(slot.day, slot.file)][slot.line - 1]
                assert isinstance(ref, dict), f"planted copy points at a non-record: {slot}"
                lines[i] = json.loads(json.dumps(ref))


def _serialize(lines: list[Any], ids: Callable[[], str]) -> tuple[bytes, int]:
    """JSON lines with fresh ids; bytes slots are written as they are (malformed input). Returns (data, records)."""
    out = []
    for slot in lines:
        out.append(slot if isinstance(slot, bytes) else _jsonl({"id": ids(), **slot}))
    return b"".join(line + b"\n" for line in out), sum(1 for line in out if line.strip())


def _id_counter(prefix: str) -> Callable[[], str]:
    n = [0]

    def next_id() -> str:
        n[0] += 1
        return f"{prefix}{n[0]:05d}"

    return next_id


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _day_dirs(home: Path, source: str) -> list[Path]:
    return [_reset_dir(home / "landing" / source / d.isoformat()) for d in DEMO_DAYS]


# --------------------------------------------------------------------------------------------------- sources


def _chat_record(rng: random.Random, day: dt.date) -> dict[str, Any]:
    if rng.random() < 0.05:
        rec: dict[str, Any] = {"messages": _tool_dialog(rng, day), "tools": list(_TOOLS)}
    else:
        rec = {"messages": _messages(rng, _chat_task(rng))}
    for m in rec["messages"]:
        if m["role"] == "user" and rng.random() < 0.08:
            m["content"] = [{"type": "text", "text": m["content"]}]
    rec["created_at"] = _stamp(rng, day)
    return rec


_CHAT_FILES = ("conversations-000.jsonl", "conversations-001.jsonl", "conversations-002.jsonl.gz")
_CHAT_SIZES = ((300, 300, 90), (290, 300, 100), (310, 290, 95))


def _chat_planted(rng: random.Random, day: int, base: list[Msg], leak: dict[str, str]) -> dict[str, dict[int, Any]]:
    """The defects of chat_openai, by file and line (see the module docstring)."""

    def rec(msgs: list[Msg]) -> dict[str, Any]:
        return {"messages": msgs, "created_at": _stamp(rng, DEMO_DAYS[day])}

    f0, f1, f2 = _CHAT_FILES
    if day == 0:
        return {
            f0: {
                5: rec(_pii_contact(rng)),
                9: _Copy(0, f0, 3),
                12: b'{"id": "chat-20261101-90001", "messages": [{"role": "user", "content": "How do I',
                13: _BLANK,
                14: b'[{"role": "user", "content": "hi"}]',
                20: b"42",
                21: b'"messages"',
                25: rec(base),
                31: rec(_near_dup_msgs(base, "words", rng)),
                40: rec(_eval_leak_chat(leak)),
                44: rec(_pii_aws(rng)),
                47: rec(_pii_jwt(rng)),
                52: rec(_pii_card(rng)),
                60: rec(_hard_negatives_chat(rng)),
                66: rec(_empty_reply(rng)),
                70: rec(_refusal(rng)),
                75: rec(_mojibake_chat(rng)),
                80: rec(_control_chars(rng)),
                90: _BLANK,
            },
            f1: {7: rec(_pii_github(rng)), 15: rec(_cut_mid_sentence(rng)), 18: rec(_unclosed_fence(rng))},
            f2: {4: rec(_pii_network(rng)), 10: _Copy(0, f0, 3)},
        }
    if day == 1:
        return {
            f0: {
                3: _Copy(0, f0, 3),
                6: {"messages": [{"role": "user", "content": 42}, {"role": "assistant", "content": "42 is a number."}]},
                8: {"messages": "hello"},
                11: {
                    "messages": [
                        {"role": "wizard", "content": "You shall not pass."},
                        {"role": "assistant", "content": "Understood."},
                    ]
                },
                14: {"messages": []},
                17: b'{"id": "chat-20261102-90001", "messages": [{"role": "user", "content": "caf\xff\xfe au lait"}]}',
                18: _BLANK,
                19: _BLANK,
                22: rec(_near_dup_msgs(base, "punct", rng)),
                30: rec(_pii_cred_url(rng)),
                35: rec(_pii_ssn(rng)),
                41: rec(_refusal(rng)),
                44: rec(_mojibake_foreign(rng)),
                50: b'{"id": "chat-20261102-90002", "messages": [{"role": "user", "content": "Summarize',
            },
            f1: {9: rec(_empty_reply(rng)), 12: rec(_cut_mid_sentence(rng))},
            f2: {6: rec(_pii_vcard(rng))},
        }
    return {
        f0: {
            4: _Copy(0, f0, 3),
            10: rec(_near_dup_msgs(base, "append", rng)),
            16: b'{"id": "chat-20261103-90001", "messages": [',
            17: _BLANK,
            21: rec(_unclosed_fence(rng)),
            26: rec(_lookalike_chat()),
            33: rec(_refusal(rng)),
        },
        f1: {150: rec(_huge_chat())},
        f2: {3: rec(_empty_reply(rng))},
    }


def _write_chat_openai(home: Path, seed: int, leak: dict[str, str]) -> list[int]:
    dirs = _day_dirs(home, "chat_openai")
    base = _long_chat(_rng(seed, "chat_openai", "near-dup-base"))
    files: dict[tuple[int, str], list[Any]] = {}
    for day, sizes in enumerate(_CHAT_SIZES):
        rng = _rng(seed, "chat_openai", day)
        planted = _chat_planted(rng, day, base, leak)
        for name, size in zip(_CHAT_FILES, sizes, strict=True):
            normal = [_chat_record(rng, DEMO_DAYS[day]) for _ in range(size)]
            files[(day, name)] = _place(normal, planted.get(name, {}))
    _resolve(files)
    counts = [0, 0, 0]
    for day, folder in enumerate(dirs):
        ids = _id_counter(f"chat-{DEMO_DAYS[day]:%Y%m%d}-")
        for name in _CHAT_FILES:
            data, n = _serialize(files[(day, name)], ids)
            _write(folder / name, _gzip(data) if name.endswith(".gz") else data)
            counts[day] += n
    _write(dirs[0] / "empty.jsonl", b"")
    return counts


_SHAREGPT_SIZES = (300, 290, 310)


def _write_sharegpt(home: Path, seed: int) -> list[int]:
    dirs = _day_dirs(home, "sharegpt_export")
    days: list[list[dict[str, Any]]] = []
    for day, size in enumerate(_SHAREGPT_SIZES):
        rng = _rng(seed, "sharegpt_export", day)
        recs = [
            {
                "id": f"sg-{DEMO_DAYS[day]:%m%d}-{rng.randrange(16**8):08x}",
                "conversations": _to_sharegpt(_messages(rng, _chat_task(rng), system_p=0.15)),
            }
            for _ in range(size)
        ]
        dup_at = {0: 10, 1: 5, 2: 7}[day]  # an exact copy of day 1's row 2, under a new id
        source = days[0] if day else recs
        recs.insert(
            dup_at,
            {"id": f"sg-{DEMO_DAYS[day]:%m%d}-{rng.randrange(16**8):08x}", "conversations": source[2]["conversations"]},
        )
        if day == 1:
            recs[40]["conversations"] = _to_sharegpt(_mojibake_foreign(rng))
        days.append(recs)
    for day, (folder, recs) in enumerate(zip(dirs, days, strict=True)):
        data = json.dumps(recs, ensure_ascii=False, indent=1).encode("utf-8")
        if day == 2:
            _write(folder / "export.json.zst", _zstd(data))
        else:
            _write(folder / "export.json", data)
    return [len(r) for r in days]


def _alpaca_row(rng: random.Random) -> tuple[str, str, str]:
    kind = rng.random()
    if kind < 0.2:
        m = _math_problem(rng)
        return m.question, "", _math_solution(rng, m)
    if kind < 0.35:
        title, paras, facts = _report(rng)
        return (
            _pick(
                rng,
                ("Summarize the following article in three bullet points.", "Write a short summary of the text below."),
            ),
            "\n\n".join(paras),
            "\n".join(f"- {f}" for f in facts),
        )
    if kind < 0.5:
        task = _pick(rng, _PY_TASKS)(rng)
        return task.user, "", task.answer
    if kind < 0.6:
        task = _email_task(rng)
        return task.user, "", task.answer
    if kind < 0.7:
        nums = [rng.randint(-50, 999) for _ in range(rng.randint(5, 12))]
        order = rng.random() < 0.5
        return (
            f"Sort these numbers in {'ascending' if order else 'descending'} order.",
            ", ".join(map(str, nums)),
            ", ".join(map(str, sorted(nums, reverse=not order))),
        )
    if kind < 0.8:
        temps = [rng.randint(-10, 105) for _ in range(rng.randint(3, 6))]
        return (
            "Convert these temperatures from Fahrenheit to Celsius, rounded to one decimal place.",
            ", ".join(f"{t} °F" for t in temps),
            "\n".join(f"{t} °F = {(t - 32) * 5 / 9:.1f} °C" for t in temps),
        )
    if kind < 0.9:
        title, paras, _ = _report(rng)
        text = paras[0]
        found = re.findall(
            r"\$[\d,.]+(?: million)?|\d{4}-\d{2}-\d{2}|(?:January|February|March|April|May|June|July|"
            r"August|September|October|November|December) \d{4}",
            text,
        )
        return (
            "Extract every amount of money and every date mentioned in the text. Answer with a list, or 'None' "
            "if there are none.",
            text,
            "\n".join(f"- {x}" for x in found) or "None",
        )
    task = _explain_task(rng)
    return task.user, "", task.answer


_ALPACA_SIZES = (200, 195, 205)


def _write_alpaca(home: Path, seed: int) -> list[int]:
    counts = []
    for day, folder in enumerate(_day_dirs(home, "alpaca_csv")):
        rng = _rng(seed, "alpaca_csv", day)
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\r\n" if day == 1 else "\n")
        writer.writerow(("instruction", "input", "output"))
        rows = [_alpaca_row(rng) for _ in range(_ALPACA_SIZES[day])]
        writer.writerows(rows)
        _write(folder / "instructions.csv", ("\ufeff" if day == 1 else "").encode() + buf.getvalue().encode("utf-8"))
        counts.append(len(rows))
    return counts


def _respaced_crlf(text: str, rng: random.Random) -> str:
    """The same words re-wrapped at random widths, with CRLF line ends and some doubled spaces."""
    words, lines, line = text.split(), [], []
    for w in words:
        line.append(w)
        if len(line) >= rng.randint(6, 11):
            lines.append(("  " if rng.random() < 0.3 else " ").join(line))
            line = []
    return "\r\n".join([*lines, " ".join(line)]) if line else "\r\n".join(lines)


def _qa_pair(rng: random.Random) -> dict[str, str]:
    kind = rng.random()
    if kind < 0.35:
        m = _math_problem(rng)
        return {"prompt": m.question, "response": _math_solution(rng, m)}
    if kind < 0.5:
        unit, other, f = _pick(
            rng,
            (
                ("miles", "kilometres", 1.609344),
                ("pounds", "kilograms", 0.45359237),
                ("litres", "US gallons", 0.264172),
                ("feet", "metres", 0.3048),
                ("ounces", "grams", 28.349523),
            ),
        )
        x = round(rng.uniform(1, 500), _pick(rng, (0, 1)))
        return {
            "prompt": _fill(
                rng,
                ("How many {o} is {x} {u}?", "Convert {x} {u} to {o}.", "What's {x} {u} in {o}?"),
                o=other,
                x=_num(x),
                u=unit,
            ),
            "response": f"{_num(x)} {unit} is about {x * f:,.2f} {other} (1 {unit[:-1] if unit.endswith('s') else unit}"
            f" = {f:g} {other}).",
        }
    if kind < 0.65:
        d1 = _date_in(rng, rng.randint(2020, 2026))
        d2 = d1 + dt.timedelta(days=rng.randint(3, 900))
        if rng.random() < 0.5:
            return {
                "prompt": f"How many days are there between {d1:%B %d, %Y} and {d2:%B %d, %Y}?",
                "response": f"There are {(d2 - d1).days} days between {d1:%B %d, %Y} and {d2:%B %d, %Y} (counting "
                "the end date but not the start date).",
            }
        return {"prompt": f"What day of the week was {d1:%d %B %Y}?", "response": f"{d1:%d %B %Y} was a {d1:%A}."}
    if kind < 0.8:
        p, n = (
            rng.choice((3, 5, 7.5, 12.5, 15, 18, 20, 25, 35, 40, 75)),
            round(rng.uniform(20, 20000), _pick(rng, (0, 2))),
        )
        what = _pick(rng, ("tip", "deposit", "discount", "sales tax", "commission", "down payment"))
        part = _money(round(n * p / 100, 2))
        return _pick(
            rng,
            (
                {
                    "prompt": f"What is {_num(p)}% of {n:,}?",
                    "response": f"{_num(p)}% of {n:,} is {_num(round(n * p / 100, 2))}.",
                },
                {
                    "prompt": f"How much is a {_num(p)}% {what} on {_money(n)}?",
                    "response": f"A {_num(p)}% {what} on {_money(n)} is {part} ({_money(n)} × {p / 100:g}).",
                },
                {
                    "prompt": f"{_pick(rng, FIRST_NAMES)} pays a {what} of {_num(p)}% on {_money(n)}. How much is that?",
                    "response": f"That's {part}: {_num(p)}% of {_money(n)} is {_money(n)} × {p / 100:g}.",
                },
            ),
        )
    task = _pick(rng, _PY_TASKS)(rng)
    return {"prompt": task.user, "response": task.answer}


_QA_SIZES = (150, 145, 155)


def _write_qa_pairs(home: Path, seed: int, leak: dict[str, str]) -> list[int]:
    counts = []
    for day, folder in enumerate(_day_dirs(home, "qa_pairs")):
        rng = _rng(seed, "qa_pairs", day)
        rows = [_qa_pair(rng) for _ in range(_QA_SIZES[day])]
        if day == 1:
            prompt = (
                "Hi! I'm practising for a coding interview and got this exercise from a friend:\r\n\r\n"
                + _respaced_crlf(leak["prompt"], rng)
                + "\r\n\r\nCan you solve it, explain the time complexity, and suggest two extra test cases?"
            )
            rows.insert(
                6,
                {
                    "prompt": prompt,
                    "response": "Here's a straightforward solution:\n\n"
                    + _fence("python", leak["answer"])
                    + "\n\nIt runs in linear time in the length of the "
                    "input and uses linear extra space for the output.",
                },
            )
        data = b"".join(_jsonl(r) + b"\n" for r in rows)
        _write(folder / "qa-000.jsonl.zst", _zstd(data))
        counts.append(len(rows))
    return counts


_CURT = (
    "You can just google this.",
    "It depends.",
    "Try asking on Stack Overflow.",
    "That's easy, just write a loop.",
    "Not sure, sorry.",
    "Look it up in the documentation.",
)
_ADVICE: tuple[tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]], ...] = (
    (
        (
            "My {k}-year-old {breed} just ate about {g} grams of dark chocolate. What should I do?",
            "help, our {breed} got into a bar of dark chocolate ({g} g maybe?) about {m} minutes ago",
        ),
        (
            "Call your vet or an animal poison helpline now and tell them the dog's weight, the type of chocolate and "
            "roughly {g} g.",
            "For a dog of around {kg} kg, {g} g of dark chocolate may well be a toxic dose.",
            "Dark chocolate is the most dangerous kind because it has the most theobromine.",
            "Symptoms such as vomiting, restlessness or a racing heart can take a few hours to appear.",
            "Don't try to make the dog vomit unless a vet tells you to.",
            "Keep the wrapper; it helps the vet work out the dose.",
            "If the practice is closed, go to an emergency clinic.",
        ),
        (
            "Dogs eat all kinds of things. I'd wait and see, it's probably fine.",
            "Give it some milk, that neutralises it.",
            "Only milk chocolate is a problem, so you're fine.",
        ),
    ),
    (
        (
            "I took two {pill} tablets ({mg} mg each) by accident instead of one. Is that dangerous?",
            "accidentally doubled my {pill} dose this morning ({mg} mg x2), should I worry?",
        ),
        (
            "For most adults a single double dose of {pill} is unlikely to be an emergency, but it depends on your health.",
            "Two {mg} mg tablets is {mg2} mg in one go, so write down the time you took them.",
            "Call a pharmacist or your local poison information line and tell them the exact dose and the time.",
            "Don't take your next dose until you've spoken to them.",
            "Check whether any other medicine you took today also contains {pill}; cold remedies often do.",
            "If you feel unwell, for example dizzy or short of breath, seek medical help straight away.",
        ),
        (
            "No, double doses are always fine.",
            "Just drink lots of water and it'll flush out.",
            "Take the next dose as normal, it evens out.",
        ),
    ),
    (
        (
            "My neighbour's Wi-Fi is faster than mine. How can I get onto it? The router says {ssid}.",
            "how do I get the password for the {ssid} network next door? mine is so slow",
        ),
        (
            "The honest route is to ask your neighbour; some people are happy to share or split the bill.",
            "If you're paying for {mbit} Mbit/s and getting much less, that's worth raising with your provider.",
            "Connecting to someone's network without permission is illegal in many places.",
            "If your own connection is slow, run a speed test next to the router and note the results.",
            "Call your provider with those numbers; they often fix line problems or offer a cheaper upgrade.",
            "A mesh system or moving the router can help a lot if the slowness is only in some rooms.",
        ),
        (
            "Try common passwords like 12345678 or the network name plus 123, those work surprisingly often.",
            "Just look for the sticker on their router next time you visit.",
            "You can't, forget it.",
        ),
    ),
    (
        (
            "I've felt really low for about {k} weeks and I can barely get out of bed. What should I do?",
            "for the last {k} weeks everything feels pointless and I'm sleeping all day. not sure what to do",
        ),
        (
            "I'm sorry you're going through this; it sounds exhausting.",
            "{k} weeks is a long time to carry this on your own.",
            "Feeling low for weeks, to the point where getting up is hard, is worth talking to someone about.",
            "A GP or doctor is a good first step, and they can connect you with support.",
            "If you ever feel unsafe, please contact a crisis line or emergency services right away.",
            "Small things can help in the meantime, like a short walk in daylight or texting one friend.",
            "Would it help to talk through what's been happening?",
        ),
        (
            "Everyone feels sad sometimes. Just push through it.",
            "Have you tried just being more positive?",
            "That's normal, it'll pass on its own.",
        ),
    ),
    (
        (
            "My landlord hasn't returned my {amount} deposit after {k} weeks. What can I do?",
            "landlord is sitting on my {amount} deposit for {k} weeks now, any advice?",
        ),
        (
            "Start with a written request that mentions the amount, the date you moved out and a deadline of 14 days.",
            "For {amount}, it's worth doing properly: keep copies of everything you send.",
            "In many places deposits must be protected in a scheme with a free dispute service, so check whether yours was.",
            "Keep your photos from move-out day and any emails about the flat's condition.",
            "If that fails, small claims court is usually cheap and doesn't need a lawyer.",
            "A local tenants' union or advice centre can check the letter for you.",
        ),
        (
            "Just stop paying your last month's rent next time so it evens out.",
            "Post a bad review, that usually works.",
            "Deposits are basically gone once you move out.",
        ),
    ),
)


def _advice(rng: random.Random) -> tuple[str, str, str]:
    asks, good, bad = _pick(rng, _ADVICE)
    slots = {
        "k": rng.randint(2, 12),
        "m": rng.randint(10, 90),
        "kg": rng.randint(4, 35),
        "mbit": rng.choice((50, 100, 250, 500)),
        "breed": _pick(rng, ("beagle", "border collie", "dachshund", "labrador", "pug", "whippet", "spaniel")),
        "g": rng.randint(20, 250),
        "pill": _pick(rng, ("ibuprofen", "paracetamol", "cetirizine", "loratadine")),
        "mg": _pick(rng, (10, 200, 400, 500)),
        "ssid": f"{_pick(rng, ('FRITZ!Box', 'Vodafone', 'TP-Link'))}-"
        f"{_alnum(rng, 4, string.ascii_uppercase + string.digits)}",
        "amount": _money(rng.randint(4, 30) * 100),
    }
    slots["mg2"] = 2 * slots["mg"]
    keep = sorted(rng.sample(range(2, len(good)), rng.randint(2, len(good) - 3)))
    reply = [good[0], good[1], *(good[i] for i in keep)]
    answer = _vary(rng, " ".join(reply).format(**slots), _SPOKEN_PARAPHRASES)
    return _pick(rng, asks).format(**slots), answer, _pick(rng, bad)


def _worse(rng: random.Random, answer: str, other: str) -> str:
    """A plausible rejected reply: curt, cut short, a needless refusal, condescending, or an answer to another question."""
    words = answer.split(" ")
    return _pick(
        rng,
        (
            lambda: _pick(rng, _CURT),
            lambda: " ".join(words[: max(5, len(words) // 4)]),
            lambda: _pick(rng, _REFUSALS),
            lambda: "This is a pretty basic question, but fine. " + " ".join(words[: len(words) // 2]),
            lambda: other,
        ),
    )()


def _pref_example(rng: random.Random) -> tuple[list[tuple[str, str]], str, str, str]:
    """(earlier turns, last user message, chosen reply, rejected reply)."""
    kind = rng.random()
    if kind < 0.02:
        user, good, bad = _advice(rng)
        return [], user, good, bad
    if kind < 0.3:
        m = _math_problem(rng)
        wrong = _Math(
            m.question,
            m.steps[:-1] + [f"So the result is {_num(round(m.answer * 1.5 + 3, 2))}."],
            round(m.answer * 1.5 + 3, 2),
        )
        return [], m.question, _math_solution(rng, m), _math_solution(rng, wrong)
    task = _pick(rng, (_email_task, _explain_task, _recipe_task, _travel_task, _sql_task, _summary_task, *_PY_TASKS))(
        rng
    )
    other = _pick(rng, (_explain_task, _recipe_task))(rng).answer
    turns = [(task.user, task.answer)]
    if task.followups and rng.random() < 0.3:
        turns.append(_pick(rng, task.followups))
    *history, (user, good) = turns
    return history, user, good, _worse(rng, good, other)


def _hh(turns: list[tuple[str, str]], user: str, reply: str) -> str:
    return "".join(f"\n\nHuman: {u}\n\nAssistant: {a}" for u, a in turns) + f"\n\nHuman: {user}\n\nAssistant: {reply}"


_HH_SIZES = (250, 245, 255)


def _hh_lines(rng: random.Random, n: int) -> bytes:
    rows = []
    for _ in range(n):
        history, user, good, bad = _pref_example(rng)
        rows.append(_jsonl({"chosen": _hh(history, user, good), "rejected": _hh(history, user, bad)}) + b"\n")
    return b"".join(rows)


def _truncated_gzip_records(data: bytes) -> int:
    """Records a line reader gets from a truncated gzip: the lines read before the break, plus one for the break."""
    n = 0
    with gzip.open(io.BytesIO(data), "rb") as f:
        try:
            for line in f:
                n += bool(line.strip())
        except EOFError:
            return n + 1
    return n


def _write_prefs_hh(home: Path, seed: int) -> list[int]:
    counts = []
    for day, folder in enumerate(_day_dirs(home, "prefs_hh")):
        rng = _rng(seed, "prefs_hh", day)
        _write(folder / "part-0.jsonl.gz", _gzip(_hh_lines(rng, _HH_SIZES[day])))
        counts.append(_HH_SIZES[day])
        if day == 1:
            whole = _gzip(_hh_lines(rng, 120))
            cut = whole[: len(whole) * 7 // 10]
            _write(folder / "part-1.jsonl.gz", cut)
            counts[-1] += _truncated_gzip_records(cut)
    return counts


_PAIR_SIZES = ((180, 70), (175, 72), (185, 68))


def _write_prefs_pairs(home: Path, seed: int) -> list[int]:
    counts = []
    for day, folder in enumerate(_day_dirs(home, "prefs_pairs")):
        rng = _rng(seed, "prefs_pairs", day)
        n_rows, n_lines = _PAIR_SIZES[day]
        rows = []
        for _ in range(n_rows):
            history, user, good, bad = _pref_example(rng)
            prompt = "\n\n".join([*(f"{u}\n\n{a}" for u, a in history), user])
            rows.append({"prompt": prompt, "chosen": good, "rejected": bad})
        same_row = {0: 13, 2: 40}.get(day)
        if same_row is not None:
            rows[same_row]["rejected"] = rows[same_row]["chosen"]
        pq.write_table(pa.Table.from_pylist(rows), folder / "pairs.parquet", compression="zstd")
        lines = []
        for i in range(n_lines):
            history, user, good, bad = _pref_example(rng)
            msgs = [
                m for u, a in history for m in ({"role": "user", "content": u}, {"role": "assistant", "content": a})
            ]
            prompt: Any = [*msgs, {"role": "user", "content": user}] if history or rng.random() < 0.5 else user
            chosen = [{"role": "assistant", "content": good}]
            rejected = chosen if (day == 1 and i == 4) else [{"role": "assistant", "content": bad}]
            lines.append(
                _jsonl(
                    {
                        "id": f"pair-{DEMO_DAYS[day]:%m%d}-{i:04d}",
                        "prompt": prompt,
                        "chosen": chosen,
                        "rejected": rejected,
                    }
                )
                + b"\n"
            )
        _write(folder / "pairs-msgs.jsonl", b"".join(lines))
        counts.append(n_rows + n_lines)
    return counts


_MATH_SIZES = (250, 245, 255)


def _partial_eval_question(item: dict[str, str]) -> str:
    """About 70% of an eval problem's words: its first two sentences and the start of its question."""
    first, second, *_ = re.split(r"(?<=\.) ", item["prompt"])
    return f"{first} {second} How many shelves can be filled completely?"


def _write_math_rlvr(home: Path, seed: int, leak: dict[str, str]) -> list[int]:
    _day_dirs(home, "math_rlvr")  # empty: the rows are in the database, the folders mark the days as landed
    db = home / SQL_DB
    db.parent.mkdir(parents=True, exist_ok=True)
    db.unlink(missing_ok=True)
    rows = []
    for day, size in enumerate(_MATH_SIZES):
        rng = _rng(seed, "math_rlvr", day)
        times = sorted(
            f"{DEMO_DAYS[day].isoformat()} {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}"
            for _ in range(size)
        )
        for i, ts in enumerate(times):
            m = _math_problem(rng)
            answer = f"\\boxed{{{m.answer_text}}}" if rng.random() < 0.25 else m.answer_text
            question = m.question
            if day == 0 and i == 16:
                answer = "see above"
            if day == 1 and i == 29:
                question, answer = _partial_eval_question(leak), leak["answer"]
            rows.append((question, answer, "math", ts))
    con = sqlite3.connect(db)
    with con:
        con.execute(
            "CREATE TABLE problems (id INTEGER PRIMARY KEY, question TEXT NOT NULL, answer TEXT NOT NULL, "
            "verifier TEXT NOT NULL, created_at TEXT NOT NULL)"
        )
        con.execute("CREATE INDEX problems_created_at ON problems (created_at)")
        con.executemany("INSERT INTO problems (question, answer, verifier, created_at) VALUES (?, ?, ?, ?)", rows)
    con.close()
    return list(_MATH_SIZES)


_LOOKALIKE_ROMAN = _CodeProblem(
    ("int_to_roman",),
    "value",
    (
        "takes a whole number between 1 and 3999 and produces the way the ancient Romans wrote it, as an uppercase "
        "string that uses subtraction where a smaller symbol precedes a larger one.",
    ),
    (
        "def {fn}(value):\n    table = [(1000, 'M'), (900, 'CM'), (500, 'D'), (400, 'CD'), (100, 'C'), (90, 'XC'),\n"
        "             (50, 'L'), (40, 'XL'), (10, 'X'), (9, 'IX'), (5, 'V'), (4, 'IV'), (1, 'I')]\n    out = []\n"
        "    for n, sym in table:\n        while value >= n:\n            out.append(sym)\n            value -= n\n"
        "    return ''.join(out)",
    ),
    ["1994", "58", "3999", "4"],
)
_CODE_SIZES = (100, 98, 102)


def _write_code_rlvr(home: Path, seed: int) -> list[int]:
    counts = []
    for day, folder in enumerate(_day_dirs(home, "code_rlvr")):
        rng = _rng(seed, "code_rlvr", day)
        recs = [_code_record(rng, _pick(rng, _CODE_FAMILIES)(rng)) for _ in range(_CODE_SIZES[day])]
        if day == 1:
            recs.insert(12, _code_record(rng, _LOOKALIKE_ROMAN))
        data = {
            "version": 2,
            "exported_at": f"{DEMO_DAYS[day].isoformat()}T23:59:00Z",
            "data": [{"id": f"code-{DEMO_DAYS[day]:%m%d}-{i:04d}", **r} for i, r in enumerate(recs)],
        }
        _write(folder / "tasks.json", json.dumps(data, ensure_ascii=False, indent=2).encode("utf-8"))
        counts.append(len(recs))
    return counts


def _long_article(rng: random.Random) -> tuple[str, list[str]]:
    while True:
        title, paras, _ = _report(rng)
        paras += [
            _reactions(rng),
            " ".join(_BACKGROUND).format(city=_pick(rng, CITIES), n=rng.randint(2, 9)),
            f"“{_pick(rng, _QUOTES_OFFICIAL)}” said {_full_name(rng)}, who has followed the issue for years. "
            f"“{_pick(rng, _QUOTES_CEO)}” added {_full_name(rng)}, a local business owner.",
        ]
        if sum(len(p.split()) for p in paras) >= 250:
            return title, paras


def _near_dup_paras(paras: list[str], how: str, rng: random.Random) -> list[str]:
    if how == "punct":
        return [_near_dup(p, how, rng) for p in paras]
    if how == "words":
        mid = len(paras) // 2
        return [*paras[:mid], _near_dup(paras[mid], how, rng), *paras[mid + 1 :]]
    return [*paras[:-1], _near_dup(paras[-1], how, rng)]


_WEB_SIZES = (38, 40, 38)
_WEB_COPIES = {0: ("words", 1), 1: ("punct", 2), 2: ("append", 3)}  # day -> (near-dup kind, site index)


def _write_web_docs(home: Path, seed: int) -> list[int]:
    base_title, base = _long_article(_rng(seed, "web_docs", "near-dup-base"))
    guides: list[_City | _Recipe] = [*_CITY_GUIDES, *_RECIPES]  # each guide and recipe is posted once
    _rng(seed, "web_docs", "topics").shuffle(guides)
    counts = []
    for day, folder in enumerate(_day_dirs(home, "web_docs")):
        rng = _rng(seed, "web_docs", day)
        topics: list[_City | _Recipe | None] = [*guides[day::3]]
        topics += [None] * (_WEB_SIZES[day] - len(topics))
        rng.shuffle(topics)
        pages = [(_pick(rng, _SITES), *_article(rng, t)) for t in topics]
        how, site = _WEB_COPIES[day]
        if day == 0:
            pages.insert(3, (_SITES[0], base_title, base))
        pages.insert(17, (_SITES[site], base_title, _near_dup_paras(base, how, rng)))
        used: Counter[str] = Counter()
        for site_, title, paras in pages:
            slug = _slug(_ascii_fold(title))[:70].rstrip("-")
            used[slug] += 1
            name = f"{slug}.html" if used[slug] == 1 else f"{slug}-{used[slug]}.html"
            _write(folder / name, _html_page(rng, site_, title, paras, DEMO_DAYS[day]).encode("utf-8"))
        counts.append(len(pages))
    return counts


def _household_note(rng: random.Random) -> str:
    first, last = _person(rng)
    return (
        f"Household admin ({_pick(rng, MONTHS)})\n\nRent: standing order to landlord, IBAN {_iban(rng)}, on the "
        f"1st\nTax return: my SSN is {_ssn(rng)}, {first}'s is {_ssn(rng)}\nStreaming + phone bill on card "
        f"{_card(rng)}, exp {rng.randint(1, 12):02d}/{rng.randint(27, 31)}\nCall the insurer about the claim, ref "
        f"{_alnum(rng, 8, string.ascii_uppercase + string.digits)}\n{first} {last}\n"
    )


def _server_secrets_note(rng: random.Random) -> str:
    key, secret = _aws_keys(rng)
    return (
        f"Backup box setup\n\nrclone remote 'offsite' uses the IAM user backup-writer:\n  access key {key}\n"
        f"  secret     {secret}\n\nSSH deploy key (old server, still in authorized_keys on {_ipv4(rng)}):\n"
        f"{_rsa_block(rng)}\n\nKernel 6.8.0-{rng.randint(30, 60)}, firmware {_version4(rng)}\n"
    )


def _contacts_note(rng: random.Random) -> str:
    lines = [
        f"{_full_name(rng)} ({role}): {_pick(rng, (_us_phone, _intl_phone))(rng)}, {_email(rng)}"
        for role in ("plumber", "dentist", "Lena's school", "landlord", "accountant")
    ]
    return "Contacts\n\n" + "\n".join(lines) + "\n\nSpare key is with the neighbour at no. 14.\n"


def _tokens_note(rng: random.Random) -> str:
    return (
        f"CI migration notes\n\nGITHUB_TOKEN={_github_token(rng)}  (the old one, revoke after the move)\n"
        f"Staging session for testing: {_jwt(rng)}\nArtifact mirror: {_cred_url(rng)}\n"
        f"Runner IPs: {_ipv4(rng)}, {_ipv6(rng)}\nBuild number {rng.randint(1000, 9999)}, runner image "
        f"{_version4(rng)}\n"
    )


def _messy_note(rng: random.Random) -> str:
    return (
        f"{_pretty_date(_date_in(rng))}\n\n"
        + _mojibake("Went to the café on Rua Augusta again, it’s become my office. ")
        + "Pasted from the terminal:\n\x1b[32mOK\x1b[0m build passed\x07\n\x00\x0cThe end of a long week.\n"
    )


_NOTE_KINDS: tuple[tuple[str, Callable[[random.Random], str], float], ...] = (
    ("meeting", _note_meeting, 3),
    ("study", _note_study, 2),
    ("trip", _note_trip, 2),
    ("journal", _note_journal, 3),
    ("reading", _note_reading, 1),
    ("server", _note_dev, 1),
)
_NOTES_PLANTED: dict[int, dict[str, Callable[[random.Random], str]]] = {
    0: {"notes/b/007-household.txt": _household_note, "notes/a/012-server.txt": _server_secrets_note},
    1: {"notes/b/004-contacts.txt": _contacts_note, "notes/a/015-server.txt": _tokens_note},
    2: {"notes/b/009-household.txt": _household_note, "notes/a/021-journal.txt": _messy_note},
}


def _write_notes(home: Path, seed: int) -> list[int]:
    counts = []
    for day, folder in enumerate(_day_dirs(home, "notes_txt")):
        rng = _rng(seed, "notes_txt", day)
        docs = {}
        for i in range(100):
            kind, fn, _ = rng.choices(_NOTE_KINDS, weights=[k[2] for k in _NOTE_KINDS])[0]
            docs[f"notes/{'ab'[i // 50]}/{i % 50:03d}-{kind}.txt"] = fn(rng)
        for name, fn in _NOTES_PLANTED[day].items():
            prefix = name.rsplit("-", 1)[0]
            docs = {k: v for k, v in docs.items() if not k.startswith(prefix + "-")}
            docs[name] = fn(rng)
        for name in sorted(docs):
            _write(folder / name, docs[name].encode("utf-8"))
        counts.append(len(docs))
    return counts


def _long_forum(rng: random.Random) -> str:
    while True:
        hobby = _pick(rng, tuple(_HOBBIES))
        text = " ".join(
            [
                _forum_tech(rng),
                _forum_reply(rng),
                _forum_hobby(rng, hobby),
                _forum_hobby(rng, hobby),
                _forum_review(rng),
            ]
        )
        if len(text.split()) >= 200:
            return text


def _forum_pii(rng: random.Random, kind: str) -> str:
    if kind == "contact":
        return (
            f"Selling my {_pick(rng, _DEVICES)}, barely used, original box. {_money(rng.randint(6, 40) * 10)} or "
            f"best offer. Pickup in {_pick(rng, CITIES)} or I can ship. Text me on {_us_phone(rng)} or email "
            f"{_email(rng)}."
        )
    if kind == "network":
        return (
            f"Can't reach my Plex server from outside. Public IP is {_ipv4(rng)} and the box also has "
            f"{_ipv6(rng)}. Port 32400 is forwarded on the router, works fine on the LAN. What am I missing?"
        )
    if kind == "github":
        return (
            f"CI fails with 401 after I rotated secrets. Here's the relevant bit of my .env:\nGITHUB_TOKEN="
            f"{_github_token(rng)}\nNODE_ENV=production\nAny idea why the runner still uses the old one?"
        )
    if kind == "cred_url":
        return f"Mirror is at {_cred_url(rng)}, download speeds have been terrible since Monday. Anyone else?"
    if kind == "intl":
        return (
            f"Looking for a language exchange partner in {_pick(rng, CITIES)} (my Portuguese for your English). "
            f"WhatsApp {_intl_phone(rng)} or mail {_email(rng)}."
        )
    if kind == "card":
        return (
            f"The shop's receipt printed my full card number, {_card(rng)}. Is that even legal? The guy at the "
            "counter just shrugged."
        )
    if kind == "jwt":
        return (
            f"The mobile app logs out every 5 minutes. Token from the network tab: {_jwt(rng)} - is the expiry "
            "just missing?"
        )
    if kind == "aws":
        key, secret = _aws_keys(rng)
        return (
            f"boto3 still gives AccessDenied. My config: aws_access_key_id={key} aws_secret_access_key={secret} "
            "region=eu-central-1. Policy has s3:GetObject on the bucket."
        )
    if kind == "negatives":
        return (
            f"Upgraded the NAS to firmware {_version4(rng)} on 2026-10-12 and now SMB is slow. The manual (ISBN "
            f"{_isbn13(rng)}) says to write to user@example.com, lol. Order number {_card(rng, valid=False)} if "
            "support asks. Error code 0x8007045D, build 4.1.2.7."
        )
    if kind == "mojibake":
        city = _pick(rng, ("Montréal", "São Paulo", "Zürich", "Málaga", "Kraków", "Québec"))
        food = _pick(rng, ("bagels", "pastries", "churros", "pierogi"))
        return _mojibake(
            f"Just got back from {rng.randint(3, 12)} days in {city}, the café scene is unreal. Don’t skip the "
            f"{food} near the old market, and {_full_name(rng)}’s walking tour is worth a whole morning."
        )
    return (
        f"Weird chars in my router log:\x00\x1b[0m WAN up\x0c\x07 DHCP lease renewed for {_pick(rng, _DEVICES)}. "
        "Is the log corrupted?"
    )


_FORUM_SIZES = (200, 205, 195)


def _forum_planted(rng: random.Random, day: int, base: str) -> dict[int, Any]:
    def post(text: str) -> dict[str, Any]:
        return {"text": text}

    if day == 0:
        return {
            4: _Copy(0, "posts-000.jsonl", 2),
            8: post(base),
            15: post(_near_dup(base, "words", rng)),
            20: post(_forum_pii(rng, "contact")),
            27: post(_forum_pii(rng, "network")),
            33: post(_forum_pii(rng, "github")),
            38: post(_forum_pii(rng, "cred_url")),
            45: post(_forum_pii(rng, "negatives")),
            50: post(_forum_pii(rng, "mojibake")),
            55: post(_forum_pii(rng, "control")),
        }
    if day == 1:
        return {
            3: _Copy(0, "posts-000.jsonl", 2),
            9: post(_near_dup(base, "punct", rng)),
            14: post(_forum_pii(rng, "intl")),
            21: post(_forum_pii(rng, "card")),
            25: post(_forum_pii(rng, "jwt")),
            30: post(_forum_pii(rng, "mojibake")),
        }
    return {
        5: _Copy(0, "posts-000.jsonl", 2),
        11: post(_near_dup(base, "append", rng)),
        17: post(_forum_pii(rng, "aws")),
        24: post(_forum_pii(rng, "negatives")),
    }


def _write_forum(home: Path, seed: int) -> list[int]:
    dirs = _day_dirs(home, "forum_dump")
    base = _long_forum(_rng(seed, "forum_dump", "near-dup-base"))
    files: dict[tuple[int, str], list[Any]] = {}
    for day, size in enumerate(_FORUM_SIZES):
        rng = _rng(seed, "forum_dump", day)
        normal = [{"text": text, "site": site} for site, text in (_forum_post(rng) for _ in range(size))]
        files[(day, "posts-000.jsonl")] = _place(normal, _forum_planted(rng, day, base))
        for slot in files[(day, "posts-000.jsonl")]:
            if isinstance(slot, dict):
                site = slot.pop("site", "forum.tinkerhub.net")
                slug = _slug(" ".join(slot["text"].split()[:6]))[:48]
                slot.update(author=_forum_author(rng), url=f"https://{site}/t/{slug}/{rng.randint(1000, 99999)}")
    _resolve(files)
    counts = []
    for day, folder in enumerate(dirs):
        data, n = _serialize(files[(day, "posts-000.jsonl")], _id_counter(f"post-{DEMO_DAYS[day]:%m%d}-"))
        _write(folder / "posts-000.jsonl", data)
        counts.append(n)
    return counts


# --------------------------------------------------------------------------------------------------- entry point


def _eval_item(task_id: str) -> dict[str, str]:
    return next(item for item in _eval_items() if item["task_id"] == task_id)


def write_demo_landing(home: Path, seed: int = 20261101) -> dict[str, dict[str, int]]:
    """Write the demo landing zone (and the sql source's sqlite file) under `home`; return input records per
    source and day. Deterministic for a seed; folders it owns are replaced, nothing else is touched."""
    home = Path(home)
    writers: dict[str, Callable[[], list[int]]] = {
        "chat_openai": lambda: _write_chat_openai(home, seed, _eval_item(LEAKED_EVAL["chat_openai"])),
        "sharegpt_export": lambda: _write_sharegpt(home, seed),
        "alpaca_csv": lambda: _write_alpaca(home, seed),
        "qa_pairs": lambda: _write_qa_pairs(home, seed, _eval_item(LEAKED_EVAL["qa_pairs"])),
        "prefs_hh": lambda: _write_prefs_hh(home, seed),
        "prefs_pairs": lambda: _write_prefs_pairs(home, seed),
        "math_rlvr": lambda: _write_math_rlvr(home, seed, _eval_item(LEAKED_EVAL["math_rlvr"])),
        "code_rlvr": lambda: _write_code_rlvr(home, seed),
        "web_docs": lambda: _write_web_docs(home, seed),
        "notes_txt": lambda: _write_notes(home, seed),
        "forum_dump": lambda: _write_forum(home, seed),
    }
    return {name: dict(zip((d.isoformat() for d in DEMO_DAYS), writers[name](), strict=True)) for name in SOURCES}
