"""What every part of the demo generator shares: the fixture banks, seeded draws, formatting, people and PII."""

from __future__ import annotations

import ast
import base64
import datetime as dt
import gzip
import itertools
import json
import math
import operator
import random
import re
import shutil
import string
import unicodedata
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache, partial
from pathlib import Path
from typing import Any, NamedTuple

import zstandard

FIXTURES = Path(__file__).parent / "fixtures"
# "<fixture>/<bank>" of every bank the generator has read; the fixture test checks that none is left unread
READ: set[str] = set()

Msg = dict[str, Any]


class Bank(Mapping[str, Any]):
    """The banks of a fixture file by name (a bank that is a JSON object is a Bank too); reads are recorded in READ."""

    def __init__(self, path: str, data: dict[str, Any]) -> None:
        self.path, self._data = path, data

    def __getitem__(self, key: str) -> Any:
        path = f"{self.path}/{key}"
        READ.add(path)
        value = self._data[key]
        return Bank(path, value) if isinstance(value, dict) else value

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


@cache
def fixture(name: str) -> Bank:
    """fixtures/<name>.json.zst, zstd-compressed JSON (edit it with `zstd -d` and recompress with `zstd -19`)."""
    data = zstandard.ZstdDecompressor().decompressobj().decompress((FIXTURES / f"{name}.json.zst").read_bytes())
    return Bank(name, json.loads(data))


F = fixture("common")
DEMO_DAYS: list[dt.date] = [dt.date(2026, 11, 1), dt.date(2026, 11, 2), dt.date(2026, 11, 3)]


@dataclass
class Task:
    """One user request with its answer, and follow-up exchanges that make sense after it."""

    user: str
    answer: str
    followups: list[tuple[str, str]] = field(default_factory=list)
    kind: str = "general"  # picks a fitting system prompt: code, math, writing or general


# --------------------------------------------------------------------------------------------------- draws


def rng_for(seed: int, *parts: object) -> random.Random:
    """An independent, reproducible stream per (seed, source, day, ...); str seeds are hashed with SHA-512."""
    return random.Random(":".join([str(seed), *map(str, parts)]))


def pick(rng: random.Random, seq: Sequence[Any]) -> Any:
    return seq[rng.randrange(len(seq))]


def some(rng: random.Random, seq: Sequence[Any], lo: int, hi: int) -> list[Any]:
    return rng.sample(list(seq), rng.randint(lo, min(hi, len(seq))))


def fill(rng: random.Random, templates: Sequence[str], /, **slots: Any) -> str:
    return pick(rng, templates).format(**slots)


def wording(rng: random.Random, template: str | Sequence[str], /, **slots: Any) -> str:
    """A template filled in; of a list of alternative wordings one is drawn (a single template costs no draw)."""
    return template.format(**slots) if isinstance(template, str) else fill(rng, template, **slots)


def lognorm_int(rng: random.Random, median: float, sigma: float, lo: int, hi: int) -> int:
    return max(lo, min(hi, round(rng.lognormvariate(math.log(median), sigma))))


def vary(rng: random.Random, text: str, table: Sequence[tuple[str, Sequence[str]]]) -> str:
    """Small natural paraphrases (per hour / an hour, in total / altogether) so that texts made from the same
    template do not share long word sequences."""
    for pattern, options in table:
        text = re.sub(pattern, lambda _m, o=options: pick(rng, o), text)
    return text


# --------------------------------------------------------------------------------------------------- formulas

_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_COMPARE: dict[type, Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
}


@cache
def _parse(expr: str) -> ast.expr:
    return ast.parse(expr, mode="eval").body


def _ev(node: ast.expr, env: _Env) -> Any:
    match node:
        case ast.Constant(value=value):
            return value
        case ast.Name(id=name):
            return env[name]
        case ast.List(elts=items):
            return [_ev(x, env) for x in items]
        case ast.Tuple(elts=items):
            return tuple(_ev(x, env) for x in items)
        case ast.BinOp(left=a, op=op, right=b):
            return _BINARY[type(op)](_ev(a, env), _ev(b, env))
        case ast.UnaryOp(op=ast.USub(), operand=a):
            return -_ev(a, env)
        case ast.UnaryOp(op=ast.Not(), operand=a):
            return not _ev(a, env)
        case ast.BoolOp(op=op, values=values):
            for v in values:
                result = _ev(v, env)
                if bool(result) is isinstance(op, ast.Or):
                    break
            return result
        case ast.Compare(left=a, ops=ops, comparators=rest):
            left = _ev(a, env)
            for op, b in zip(ops, rest, strict=True):
                right = _ev(b, env)
                if not _COMPARE[type(op)](left, right):
                    return False
                left = right
            return True
        case ast.ListComp(elt=elt, generators=generators):
            return _comprehension(elt, generators, env)
        case ast.IfExp(test=test, body=body, orelse=orelse):
            return _ev(body if _ev(test, env) else orelse, env)
        case ast.Subscript(value=value, slice=ast.Slice(lower=lo, upper=hi)):
            return _ev(value, env)[_ev(lo, env) if lo else None : _ev(hi, env) if hi else None]
        case ast.Subscript(value=value, slice=index):
            return _ev(value, env)[_ev(index, env)]
        case ast.Call(func=func, args=args, keywords=keywords):
            if isinstance(func, ast.Attribute) and not func.attr.startswith("_"):
                target = _ev(func.value, env)
                if not isinstance(target, str | dt.date):
                    raise ValueError(f"only str and date methods may be called: {ast.unparse(node)}")
                f = getattr(target, func.attr)
            else:  # a function of the formulas' namespace, or one drawn from a list of them
                f = _ev(func, env)
            return f(*(_ev(x, env) for x in args), **{k.arg: _ev(k.value, env) for k in keywords})
    raise ValueError(f"not allowed in a fixture formula: {ast.unparse(node)}")


def _comprehension(elt: ast.expr, generators: list[ast.comprehension], env: _Env) -> list[Any]:
    """[elt for a in xs if ... for b in ys ...], evaluated in Python's order: iterables, conditions, elements."""
    first, *rest = generators
    if not isinstance(first.target, ast.Name):
        raise ValueError(f"a comprehension variable must be a name: {ast.unparse(first.target)}")
    out = []
    for value in _ev(first.iter, env):
        inner = env.child(first.target.id, value)
        if all(_ev(test, inner) for test in first.ifs):
            out += _comprehension(elt, rest, inner) if rest else [_ev(elt, inner)]
    return out


def draw(rng: random.Random, spec: Mapping[str, Any], banks: Mapping[str, Any] = F, **given: Any) -> dict[str, Any]:
    """The values of a fixture entry's `let` table, evaluated in order: each formula is a Python expression of
    literals, earlier values, arithmetic, comparisons, conditionals, str and date methods and the draws and
    helpers below; any other name is a bank of the entry itself, of `banks` or of the common fixture."""
    funcs = {"randint": rng.randint, "uniform": rng.uniform, "random": rng.random, "sample": rng.sample}
    funcs |= {f.__name__: partial(f, rng) for f in _DRAWS} | _HELPERS
    env = _Env(given, funcs, (spec, banks, F))
    for names, formula in spec["let"].items():
        value = _ev(_parse(formula), env)
        targets = [n.strip() for n in names.split(",")]  # "a, b" unpacks
        env.values.update(zip(targets, value, strict=True) if len(targets) > 1 else {names: value})
    return env.values


class _Env(Mapping[str, Any]):
    """A formula's names: the values so far, then the functions, then the banks."""

    def __init__(self, values: dict[str, Any], funcs: dict[str, Any], banks: Sequence[Mapping[str, Any]]) -> None:
        self.values, self.funcs, self.banks = dict(values), funcs, banks

    def child(self, name: str, value: Any) -> _Env:
        return _Env({**self.values, name: value}, self.funcs, self.banks)

    def __getitem__(self, name: str) -> Any:
        for scope in (self.values, self.funcs, *self.banks):
            if name in scope:
                return scope[name]
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)


def render(rng: random.Random, spec: Mapping[str, Any], banks: Mapping[str, Any] = F, **given: Any) -> str:
    """A text spec filled in with its drawn values: its `text` template, or its `text` parts joined by spaces
    (parts that come out empty are left out)."""
    v = draw(rng, spec, banks, **given)
    text = spec["text"]
    return text.format(**v) if isinstance(text, str) else " ".join(p for p in (t.format(**v) for t in text) if p)


# --------------------------------------------------------------------------------------------------- formatting


def with_article(noun: str) -> str:
    return f"{'an' if noun[0].lower() in 'aeiou' else 'a'} {noun}"


def cap(s: str) -> str:
    """The first letter upper-cased, the rest left alone (unlike str.capitalize)."""
    return s[0].upper() + s[1:]


def fence(lang: str, code: str) -> str:
    return f"```{lang}\n{code}\n```"


def money(x: float, sym: str = "$") -> str:
    return f"{sym}{x:,.2f}" if x != int(x) else f"{sym}{int(x):,}"


def num(x: float) -> str:
    """A number as a person writes it: no trailing .0, at most two decimals."""
    return str(int(x)) if float(x).is_integer() else f"{x:.2f}".rstrip("0")


def slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def jsonl(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode("utf-8")


def gz(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=6, mtime=0)


def zstd(data: bytes) -> bytes:
    return zstandard.ZstdCompressor(level=10).compress(data)


def mojibake(text: str) -> str:
    """UTF-8 bytes decoded as Windows-1252, the classic double-encoding accident ("café" -> "cafÃ©")."""
    return text.encode("utf-8").decode("cp1252", errors="replace")


def chat(user: str, assistant: str, system: str | None = None) -> list[Msg]:
    head = [{"role": "system", "content": system}] if system else []
    return [*head, {"role": "user", "content": user}, {"role": "assistant", "content": assistant}]


# --------------------------------------------------------------------------------------------------- files


class Copy(NamedTuple):
    """A planted exact duplicate: the content of the record at (day index, file, 1-based line), with a new id."""

    day: int
    file: str
    line: int


def place(normal: list[Any], planted: Mapping[int, Any]) -> list[Any]:
    """The file's lines: planted[k] lands on 1-based line k, the normal records fill the other lines in order."""
    it = iter(normal)
    return [planted[i] if i in planted else next(it) for i in range(1, len(normal) + len(planted) + 1)]


def resolve(files: dict[tuple[int, str], list[Any]]) -> None:
    """Replace every Copy by a deep copy of the record it points at."""
    for lines in files.values():
        for i, slot in enumerate(lines):
            if isinstance(slot, Copy):
                ref = files[(slot.day, slot.file)][slot.line - 1]
                assert isinstance(ref, dict), f"planted copy points at a non-record: {slot}"
                lines[i] = json.loads(json.dumps(ref))


def ids(prefix: str) -> Iterator[str]:
    """prefix00001, prefix00002, ...: record ids, numbered across all files of a source's day."""
    return (f"{prefix}{n:05d}" for n in itertools.count(1))


def serialize(lines: list[Any], ids: Iterator[str]) -> tuple[bytes, int]:
    """JSON lines with fresh ids; bytes slots are written as they are (malformed input). Returns (data, records)."""
    out = [slot if isinstance(slot, bytes) else jsonl({"id": next(ids), **slot}) for slot in lines]
    return b"".join(line + b"\n" for line in out), sum(1 for line in out if line.strip())


def write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def day_dirs(home: Path, source: str) -> list[Path]:
    """The source's day folders under home/landing, emptied (a rerun replaces them and nothing else)."""
    dirs = [home / "landing" / source / d.isoformat() for d in DEMO_DAYS]
    for d in dirs:
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
    return dirs


# --------------------------------------------------------------------------------------------------- people


FIRST_NAMES, SURNAMES, COMPANIES, CITIES = F["first_names"], F["surnames"], F["companies"], F["cities"]
MONTHS, WEEKDAYS = F["months"], F["weekdays"]


def person(rng: random.Random) -> tuple[str, str]:
    return pick(rng, FIRST_NAMES), pick(rng, SURNAMES)


def full_name(rng: random.Random) -> str:
    return " ".join(person(rng))


def ascii_fold(s: str) -> str:
    s = s.translate(str.maketrans({"ł": "l", "Ł": "L", "ø": "o", "Ø": "O", "ß": "ss"}))
    return unicodedata.normalize("NFKD", s).encode("ascii", "ignore").decode()


def ascii_name(s: str) -> str:
    """A name as it appears in an e-mail address or a user name: ASCII letters only."""
    return re.sub(r"[^A-Za-z]", "", ascii_fold(s))


def date_in(rng: random.Random, year: int = 2026) -> dt.date:
    return dt.date(year, 1, 1) + dt.timedelta(days=rng.randrange(365))


def pretty_date(d: dt.date) -> str:
    return f"{WEEKDAYS[d.weekday()]}, {MONTHS[d.month - 1]} {d.day}"


# --------------------------------------------------------------------------------------------------- PII


def digits(rng: random.Random, n: int) -> str:
    return "".join(str(rng.randrange(10)) for _ in range(n))


def alnum(rng: random.Random, n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def luhn_ok(number: str) -> bool:
    """The Luhn checksum every payment card number satisfies (spaces and dashes ignored)."""
    ds = [int(c) for c in number if c.isdigit()]
    total = sum(d if i % 2 == 0 else (d * 2 - 9 if d > 4 else d * 2) for i, d in enumerate(reversed(ds)))
    return len(ds) >= 12 and total % 10 == 0


def card(rng: random.Random, valid: bool = True) -> str:
    body = pick(rng, ("4", "51", "53", "55"))
    body += digits(rng, 15 - len(body))
    check = next(d for d in "0123456789" if luhn_ok(body + d))
    if not valid:
        check = str((int(check) + rng.randint(1, 9)) % 10)
    n, sep = body + check, pick(rng, (" ", "-", ""))
    return sep.join(n[i : i + 4] for i in range(0, 16, 4))


def iban(rng: random.Random) -> str:
    country, bban = pick(rng, (("GB", pick(rng, ("NWBK", "BARC", "MIDL")) + digits(rng, 14)), ("DE", digits(rng, 18))))
    check = 98 - int("".join(str(int(c, 36)) for c in bban + country + "00")) % 97
    s = f"{country}{check:02d}{bban}"
    return " ".join(s[i : i + 4] for i in range(0, len(s), 4))


def ssn(rng: random.Random) -> str:
    return f"{rng.randint(101, 665):03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


def us_phone(rng: random.Random) -> str:
    area, last = rng.choice(("212", "312", "415", "617", "646", "720", "503")), digits(rng, 4)
    return pick(rng, (f"({area}) 555-{last}", f"{area}-555-{last}", f"+1 {area} 555 {last}"))


def intl_phone(rng: random.Random) -> str:
    # every format draws its digits before one is picked, as the planted records were first generated
    return pick(
        rng,
        (
            f"+44 20 7946 {digits(rng, 4)}",
            f"+49 30 {digits(rng, 8)}",
            f"+33 1 {digits(rng, 2)} {digits(rng, 2)} {digits(rng, 2)} {digits(rng, 2)}",
            f"+81 3-{digits(rng, 4)}-{digits(rng, 4)}",
            f"+351 21 {digits(rng, 3)} {digits(rng, 4)}",
        ),
    )


def email(rng: random.Random, first: str | None = None, last: str | None = None) -> str:
    f, s = person(rng)
    first, last = ascii_name(first or f).lower(), ascii_name(last or s).lower()
    user = pick(rng, (f"{first}.{last}", f"{first}{rng.randint(1, 99)}", f"{first[0]}{last}", f"{last}.{first}"))
    return f"{user}@{pick(rng, F['email_domains'])}"


def ipv4(rng: random.Random) -> str:
    first = rng.choice((31, 46, 78, 85, 91, 109, 176, 188, 212))
    return f"{first}.{rng.randint(1, 254)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def ipv6(rng: random.Random) -> str:
    return f"2a02:{rng.randint(0x1000, 0xFFFF):x}:" + ":".join(f"{rng.randint(0, 0xFFFF):x}" for _ in range(6))


def aws_keys(rng: random.Random) -> tuple[str, str]:
    key_id = "AKIA" + alnum(rng, 16, string.ascii_uppercase + "234567")
    return key_id, alnum(rng, 40, string.ascii_letters + "0123456789+/")


def github_token(rng: random.Random) -> str:
    return "ghp_" + alnum(rng, 36)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(rng: random.Random) -> str:
    first, last = person(rng)
    claims = {
        "sub": str(rng.randint(10_000, 99_999)),
        "name": f"{first} {last}",
        "iat": 1793404800 + rng.randint(0, 900_000),
    }
    header = _b64url(b'{"alg":"HS256","typ":"JWT"}')
    sig = _b64url(bytes(rng.randrange(256) for _ in range(32)))
    return f"{header}.{_b64url(json.dumps(claims, separators=(',', ':')).encode())}.{sig}"


def rsa_block(rng: random.Random) -> str:
    body = "MIIEpAIBAAKCAQEA" + base64.b64encode(bytes(rng.randrange(256) for _ in range(700))).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "-----BEGIN RSA PRIVATE KEY-----\n" + "\n".join(lines) + "\n-----END RSA PRIVATE KEY-----"


def cred_url(rng: random.Random) -> str:
    user = pick(rng, F["cred_users"])
    pw = alnum(rng, 6) + pick(rng, ("!", "#", "%21", "_")) + alnum(rng, 5)
    host = pick(rng, F["cred_hosts"])
    return f"https://{user}:{pw}@{host}/{pick(rng, F['cred_paths'])}"


def isbn13(rng: random.Random) -> str:
    """A real-looking, checksum-valid ISBN: a hard negative for number-shaped PII detectors."""
    core = "978" + digits(rng, 9)
    check = (10 - sum(int(c) * (3 if i % 2 else 1) for i, c in enumerate(core)) % 10) % 10
    return f"{core[:3]}-{core[3]}-{core[4:8]}-{core[8:12]}-{check}"


def shuffled(rng: random.Random, seq: Sequence[Any]) -> list[Any]:
    out = list(seq)
    rng.shuffle(out)
    return out


def version4(rng: random.Random) -> str:
    return f"{rng.randint(1, 31)}.{rng.randint(0, 9)}.{rng.randint(0, 40)}.{rng.randint(100, 9999)}"


# what fixture formulas may call: draws (given the record's rng) and pure helpers
_DRAWS = (pick, some, fill, person, full_name, email, us_phone, intl_phone, card, iban, ssn, ipv4, ipv6, aws_keys)
_DRAWS += (github_token, jwt, rsa_block, cred_url, isbn13, version4, digits, alnum, date_in, lognorm_int, shuffled)
_HELPERS: dict[str, Callable[..., Any]] = {f.__name__: f for f in (num, money, cap, with_article, pretty_date, slug)}
_HELPERS |= {f.__name__: f for f in (ascii_name, mojibake, round, abs, min, max, len, sum, str, int, sorted, format)}
_HELPERS |= {f.__name__: f for f in (range, repr, list, ascii_fold)}
_HELPERS |= {"ceil": math.ceil, "datetime": dt.datetime, "timedelta": dt.timedelta}
