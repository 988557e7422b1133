"""People, places and dates, and the PII (and PII look-alikes) planted in the demo's text. The simpler formats
(phone numbers, addresses, keys and tokens, ISBNs, version numbers) are `formats` of fixtures/people.json.zst,
drawn by fixture formulas."""

from __future__ import annotations

import base64
import datetime as dt
import json
import random
import re
import string
import unicodedata

from ptdata.demo.common import fixture, pick

F = fixture("people")


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


def email(rng: random.Random, first: str | None = None, last: str | None = None) -> str:
    f, s = person(rng)
    first, last = ascii_name(first or f).lower(), ascii_name(last or s).lower()
    user = pick(rng, (f"{first}.{last}", f"{first}{rng.randint(1, 99)}", f"{first[0]}{last}", f"{last}.{first}"))
    return f"{user}@{pick(rng, F['email_domains'])}"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(rng: random.Random) -> str:
    first, last = person(rng)
    sub, iat = str(rng.randint(10_000, 99_999)), 1793404800 + rng.randint(0, 900_000)
    claims = {"sub": sub, "name": f"{first} {last}", "iat": iat}
    header = _b64url(b'{"alg":"HS256","typ":"JWT"}')
    sig = _b64url(bytes(rng.randrange(256) for _ in range(32)))
    return f"{header}.{_b64url(json.dumps(claims, separators=(',', ':')).encode())}.{sig}"


def rsa_block(rng: random.Random) -> str:
    body = "MIIEpAIBAAKCAQEA" + base64.b64encode(bytes(rng.randrange(256) for _ in range(700))).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "-----BEGIN RSA PRIVATE KEY-----\n" + "\n".join(lines) + "\n-----END RSA PRIVATE KEY-----"
