"""Generate pii_labelled.jsonl: the labelled PII test set (seeded, so the file is reproducible byte for byte).

    python ptdata_tests/data/make_pii_labelled.py

Each line is {"text": ..., "spans": [{"type": ..., "value": ...}]}; every value occurs exactly once in its text.
Positives of every type sit in realistic contexts (chat, code, logs, e-mail, config, forum posts, tickets) and in
several formats; hard negatives (versions, dates, digests, ISBNs, math, prices, allowlisted examples, ...) have no
spans. Values are built independently of ptdata (own Luhn, IBAN and JWT code), but the contexts were written
alongside the detector: the scores measure it against the conventions below and the formats listed here, not
against data in the wild. Labelling decisions, applied consistently:
- a dotted quad after a version cue ("version", "v", "Python", "==") is a version, not an IP;
- NANP 555-0100..555-0199, documentation IPs and RFC 2606 domains are allowlisted examples, not PII;
- bare 10-digit runs are phone numbers only with a cue word ("call", "phone", ...); otherwise they are ids;
- template passwords in URLs (${VAR}, <password>, ****) and placeholder tokens (ghp_XXXX...) are not secrets.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import random
import string
from collections.abc import Callable
from pathlib import Path

import phonenumbers

OUT = Path(__file__).with_name("pii_labelled.jsonl")
SEED = 20261124

FIRST = "alice bob carol david emma farid grace hiro ines jamal kate liam maria nikolai olga pedro quinn rosa sven tara umar vera wei yusuf zoe".split()
LAST = "smith jones garcia muller rossi dubois kowalski tanaka okafor nguyen schmidt silva patel kim novak berg fischer moreau".split()
DOMAINS = (
    "gmail.com outlook.com yahoo.co.uk proton.me icloud.com acme-corp.com mail.uni-heidelberg.de bigbank.ch "
    "startup.io fastmail.fm globex.net contoso.org initech.co hooli.xyz corp.internal research.ai web.de"
).split()
US_AREA = "212 213 217 303 305 312 347 404 415 503 512 602 617 646 702 713 718 773 818 917 919 206 720 808".split()


def luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    for check in string.digits:
        digits = body + check
        total = sum(
            (d * 2 - 9 if d * 2 > 9 else d * 2) if i % 2 else d for i, d in enumerate(int(c) for c in reversed(digits))
        )
        if total % 10 == 0:
            return digits
    raise AssertionError("unreachable: one check digit always completes a Luhn sum")


def iban_with_check(country: str, bban: str) -> str:
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    return f"{country}{98 - int(numeric) % 97:02d}{bban}"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def rand(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


# allowlisted by default: documentation ranges, loopback, "this network"
NOT_PII_V4 = [
    ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "127.0.0.0/8", "0.0.0.0/8")
]
ALNUM = string.ascii_letters + string.digits
B64 = ALNUM + "+/"
B64URL = ALNUM + "-_"


class Gen:
    """Random realistic values of every type."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def name(self) -> tuple[str, str]:
        return self.rng.choice(FIRST), self.rng.choice(LAST)

    def email(self) -> str:
        f, last = self.name()
        local = self.rng.choice(
            [f"{f}.{last}", f"{f[0]}{last}", f"{f}_{last}", f"{f}{self.rng.randint(1, 99)}", f"{f}+news", f"{last}.{f}"]
        )
        value = f"{local}@{self.rng.choice(DOMAINS)}"
        return value.title() if self.rng.random() < 0.1 else value

    def us_phone(self) -> str:
        while True:
            area, exch, line = self.rng.choice(US_AREA), self.rng.randint(201, 989), self.rng.randint(0, 9999)
            if exch % 100 == 11 or exch == 555:
                continue
            number = phonenumbers.parse(f"+1{area}{exch}{line:04d}")
            if phonenumbers.is_valid_number(number):
                break
        a, b, c = area, f"{exch}", f"{line:04d}"
        return self.rng.choice(
            [
                f"({a}) {b}-{c}",
                f"{a}-{b}-{c}",
                f"{a}.{b}.{c}",
                f"{a} {b} {c}",
                f"+1 {a} {b} {c}",
                f"+1-{a}-{b}-{c}",
                f"1-{a}-{b}-{c}",
                f"+1 ({a}) {b}-{c}",
                f"({a}){b}-{c}",
                f"+1{a}{b}{c}",
                f"({a}) {b} {c}",
                f"{a}/{b}-{c}",
                f"1 {a} {b} {c}",
                f"+1 {a}.{b}.{c}",
            ]
        )

    def intl_phone(self) -> str:
        region = self.rng.choice("GB DE FR ES IT NL JP IN BR AU MX CH SE PL IE ZA SG KR".split())
        example = phonenumbers.example_number_for_type(
            region, self.rng.choice([phonenumbers.PhoneNumberType.FIXED_LINE, phonenumbers.PhoneNumberType.MOBILE])
        )
        national = str(example.national_number)
        while True:  # vary the digits after the leading ones (they carry the area / mobile prefix)
            keep = max(2, len(national) // 3)
            candidate = national[:keep] + rand(self.rng, string.digits, len(national) - keep)
            number = phonenumbers.parse(f"+{example.country_code}{candidate}")
            if phonenumbers.is_valid_number(number):
                break
        formatted = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
        style = self.rng.random()
        if style < 0.2:
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        if style < 0.35:
            return formatted.replace(" ", "-")
        if style < 0.45 and region in ("GB", "DE", "CH", "AU"):  # the trunk prefix kept in brackets: +44 (0)20 ...
            code, _, rest = formatted.partition(" ")
            return f"{code} (0){rest}"
        return formatted

    def ipv4(self) -> str:
        while True:
            first = self.rng.choice([10, 172, 192, self.rng.randint(1, 223)])
            if first == 172:
                ip = f"172.{self.rng.randint(16, 31)}.{self.rng.randint(0, 255)}.{self.rng.randint(1, 254)}"
            elif first == 192:
                ip = f"192.168.{self.rng.randint(0, 255)}.{self.rng.randint(1, 254)}"
            else:
                ip = f"{first}.{self.rng.randint(0, 255)}.{self.rng.randint(0, 255)}.{self.rng.randint(1, 254)}"
            if not any(ipaddress.IPv4Address(ip) in net for net in NOT_PII_V4):
                return ip

    def ipv6(self) -> str:
        r = self.rng
        kind = r.random()
        if kind < 0.15:
            return f"fe80::{r.randint(1, 0xFFFF):x}:{r.randint(1, 0xFFFF):x}:{r.randint(1, 0xFFFF):x}:{r.randint(1, 0xFFFF):x}"
        if kind < 0.25:
            return f"::ffff:{self.ipv4()}"
        if kind < 0.35:
            return (
                f"fd{r.randint(0, 255):02x}:{r.randint(0, 0xFFFF):x}:{r.randint(0, 0xFFFF):x}::{r.randint(1, 0xFFFF):x}"
            )
        groups = [f"{r.choice([0x2001, 0x2600, 0x2A00, 0x2A02, 0x2606, 0x2804]):x}", f"{r.randint(0x100, 0xFFFF):x}"]
        groups += [f"{r.randint(0, 0xFFFF):x}" for _ in range(6)]
        if r.random() < 0.5:
            groups[3:6] = ["0", "0", "0"]
        addr = ipaddress.IPv6Address(":".join(groups))
        return addr.exploded if r.random() < 0.2 else addr.compressed

    def card(self) -> str:
        brand = self.rng.choice(["visa", "visa", "mc", "mc2", "amex", "discover", "jcb", "diners"])
        prefix, length = {
            "visa": ("4", 16),
            "mc": (str(self.rng.randint(51, 55)), 16),
            "mc2": (str(self.rng.randint(2221, 2720)), 16),
            "amex": (self.rng.choice(["34", "37"]), 15),
            "discover": (self.rng.choice(["6011", "65"]), 16),
            "jcb": (str(self.rng.randint(3528, 3589)), 16),
            "diners": ("36", 14),
        }[brand]
        digits = luhn_complete(prefix, length, self.rng)
        sep = self.rng.choice([" ", " ", "-", ""])
        if length < 16:  # Amex and Diners print 4-6-5 / 4-6-4
            return sep.join([digits[:4], digits[4:10], digits[10:]])
        return sep.join(digits[i : i + 4] for i in range(0, 16, 4))

    def iban(self) -> str:
        country, bban_shape = self.rng.choice(
            [
                ("DE", "n18"),
                ("GB", "a4n14"),
                ("FR", "n23"),
                ("ES", "n20"),
                ("IT", "a1n22"),
                ("NL", "a4n10"),
                ("BE", "n12"),
                ("CH", "n17"),
                ("AT", "n16"),
                ("PL", "n24"),
                ("SE", "n20"),
                ("NO", "n11"),
                ("IE", "a4n14"),
                ("PT", "n21"),
            ]
        )
        bban, i = "", 0
        while i < len(bban_shape):
            kind, j = bban_shape[i], i + 1
            while j < len(bban_shape) and bban_shape[j].isdigit():
                j += 1
            count = int(bban_shape[i + 1 : j])
            bban += rand(self.rng, string.ascii_uppercase if kind == "a" else string.digits, count)
            i = j
        iban = iban_with_check(country, bban)
        if self.rng.random() < 0.55:
            return " ".join(iban[k : k + 4] for k in range(0, len(iban), 4))
        return iban

    def ssn(self) -> str:
        area = self.rng.choice([a for a in range(1, 900) if a != 666])
        return f"{area:03d}-{self.rng.randint(1, 99):02d}-{self.rng.randint(1, 9999):04d}"

    def aws_key(self) -> str:
        return self.rng.choice(["AKIA", "AKIA", "ASIA"]) + rand(self.rng, string.ascii_uppercase + "234567", 16)

    def aws_secret(self) -> str:
        while True:
            s = rand(self.rng, B64, 40)
            if any(c.isupper() for c in s) and any(c.islower() for c in s) and any(c.isdigit() for c in s):
                return s

    def github(self) -> str:
        if self.rng.random() < 0.25:
            return f"github_pat_{rand(self.rng, ALNUM, 22)}_{rand(self.rng, ALNUM, 59)}"
        return f"{self.rng.choice(['ghp', 'ghp', 'gho', 'ghs', 'ghu', 'ghr'])}_{rand(self.rng, ALNUM, 36)}"

    def slack(self) -> str:
        d = string.digits
        if self.rng.random() < 0.55:
            return f"xoxb-{rand(self.rng, d, 12)}-{rand(self.rng, d, 13)}-{rand(self.rng, ALNUM, 24)}"
        return f"xoxp-{rand(self.rng, d, 12)}-{rand(self.rng, d, 12)}-{rand(self.rng, d, 13)}-{rand(self.rng, '0123456789abcdef', 32)}"

    def slack_hook(self) -> str:
        """The secret path of a Slack incoming-webhook URL (after /services/)."""
        upper = string.ascii_uppercase + string.digits
        return f"T{rand(self.rng, upper, 8)}/B{rand(self.rng, upper, 10)}/{rand(self.rng, ALNUM, 24)}"

    def openai(self) -> str:
        kind = self.rng.random()
        if kind < 0.35:
            return "sk-" + rand(self.rng, ALNUM, 48)
        if kind < 0.8:
            return "sk-proj-" + rand(self.rng, B64URL, self.rng.choice([48, 64, 120, 156]))
        return "sk-ant-api03-" + rand(self.rng, B64URL, 93) + "AA"

    def jwt(self) -> str:
        alg = self.rng.choice(["HS256", "RS256", "ES256"])
        header = (
            {"alg": alg, "typ": "JWT"} if self.rng.random() < 0.7 else {"kid": rand(self.rng, ALNUM, 8), "alg": alg}
        )
        f, last = self.name()
        claims = {
            "sub": str(self.rng.randint(10**6, 10**9)),
            "name": f"{f} {last}".title(),
            "iat": 1790000000 + self.rng.randint(0, 10**7),
        }
        if self.rng.random() < 0.5:
            claims["role"] = self.rng.choice(["admin", "user", "service"])
        sig = rand(self.rng, B64URL, 43 if alg != "RS256" else 342)
        return (
            f"{b64url(json.dumps(header, separators=(',', ':')).encode())}.{b64url(json.dumps(claims).encode())}.{sig}"
        )

    def pem(self, escaped: bool = False) -> str:
        label = self.rng.choice(
            ["RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY", "ENCRYPTED PRIVATE KEY"]
        )
        lines = [rand(self.rng, B64, 64) for _ in range(self.rng.randint(3, 9))]
        lines.append(rand(self.rng, B64, self.rng.randint(8, 60)) + "==")
        nl = "\\n" if escaped else "\n"
        return nl.join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----"])

    def url_password(self) -> tuple[str, list[tuple[str, str]]]:
        """A URL with a password, and its labels: the password, and the host when it is an IP address."""
        scheme = self.rng.choice(
            ["postgres", "postgresql", "mysql", "mongodb+srv", "redis", "amqp", "https", "ftp", "smtp"]
        )
        user = self.rng.choice(["admin", "app", "root", "svc_etl", "deploy", self.rng.choice(FIRST), "readonly"])
        password = rand(self.rng, ALNUM, self.rng.randint(8, 20))
        if self.rng.random() < 0.3:
            password = password[:5] + self.rng.choice(["!", "%21", "$", "*", "&", "^", "~"]) + password[5:]
        if self.rng.random() < 0.1:
            password = password[:4] + "@" + password[4:]  # hand-written URLs often keep a raw "@"
        host = self.rng.choice(
            [
                "db.internal",
                "prod-db-3.cluster.local",
                "mq.acme-corp.com",
                "cache-01",
                "10.0.3.7",
                "cluster0.ab1cd.mongodb.net",
                "ftp.globex.net",
            ]
        )
        port = {"postgres": 5432, "postgresql": 5432, "mysql": 3306, "redis": 6379, "amqp": 5672}.get(scheme)
        path = self.rng.choice(["/app", "/analytics", "/0", "/", "", "/prod?sslmode=require"])
        url = f"{scheme}://{user}:{password}@{host}{f':{port}' if port and self.rng.random() < 0.6 else ''}{path}"
        return url, [("URL_PASSWORD", password)] + ([("IP_ADDRESS", host)] if host[0].isdigit() else [])


# ------------------------------------------------------------------------------------------------ positive contexts

Context = Callable[[Gen], tuple[str, list[tuple[str, str]]]]


def one(kind: str, templates: list[str], value: Callable[[Gen], str]) -> list[Context]:
    def make(template: str) -> Context:
        def ctx(g: Gen) -> tuple[str, list[tuple[str, str]]]:
            v = value(g)
            f, last = g.name()
            return template.format(v=v, f=f.title(), l=last.title(), n=g.rng.randint(2, 99)), [(kind, v)]

        return ctx

    return [make(t) for t in templates]


EMAIL_T = [
    "Hi team, please loop in {v} on the contract thread.",
    "From: {f} {l} <{v}>\nSubject: Re: invoice #{n}\n\nThanks, received.",
    "you can reach me at {v} if the link breaks again",
    "2026-11-24T08:13:02Z INFO auth: login ok user={v} ip=redacted",
    '{{"id": {n}, "name": "{f} {l}", "email": "{v}", "active": true}}',
    "Maintainer: {f} {l} ({v})",
    "{f},{l},{v},premium,2026-03-01",
    'git config user.email "{v}"',
    "> Posted by {f}: ping me ({v}) and I'll send the notebook.",
    "Send your CV to {v}. Deadline is Friday.",
    "mailto:{v}?subject=Hello",
    "ADMINS = [('{f}', '{v}')]",
    "Author: {f} {l} <{v}>\nDate:   Tue Nov 24 10:12:44 2026 +0100",
    "CC: {v}; please confirm the shipping address.",
]
PHONE_T = [
    "Call me at {v} after 5pm.",
    "Tel: {v}\nFax: n/a",
    "{f} {l} | Account Manager | {v}",
    "If it's urgent text {v}, otherwise email.",
    "customer_phone,{v}\n",
    "User: my number is {v}, can you update my profile?",
    '{{"contact": {{"name": "{f}", "phone": "{v}"}}}}',
    "Office: {v} (Mon-Fri 9-17)",
    "2026-11-24 14:03:55 WARN sms gateway retry to={v} attempt={n}",
    "Reach our front desk on {v} to reschedule.",
    "Mobile {v} — WhatsApp works too",
]
IP_T = [
    "Connection refused from {v} at 03:14, retrying in {n}s",
    'nginx: {v} - - [24/Nov/2026:10:01:02 +0000] "GET /api HTTP/1.1" 200 512',
    "ssh deploy@{v} -p 22",
    "bind_address = {v}",
    "Our VPN gateway moved to {v}; update your config.",
    "ping {v} gives 40% packet loss since this morning",
    "ALLOWED_HOSTS=['{v}']",
    "sshd[{n}]: Failed password for root from {v} port 51234 ssh2",
    "upstream backend {{ server {v}:8080; }}",
    "my public IP is {v} if you want to whitelist it",
    "X-Forwarded-For: {v}",
    "iptables -A INPUT -s {v}/32 -j DROP",
    "Blocked hosts: {v}, and two more from the same /24.",
]
IP6_T = [
    "Listening on [{v}]:443",
    "client {v} connected",
    "AAAA record points to {v} now",
    "ip -6 addr add {v}/64 dev eth0",
    "sshd: Accepted publickey for git from {v} port 50022",
    "The router hands out {v} to my laptop",
    "peer={v} state=ESTABLISHED",
]
CARD_T = [
    "Card number: {v}, exp 09/28, CVV 123",
    "Please charge {v} for the renewal.",
    "ORDER {n} PAID card={v} amount=49.99 USD",
    "i typed {v} into the form and it got declined??",
    '{{"payment": {{"pan": "{v}", "exp": "11/27"}}}}',
    "My new card is {v}, old one was stolen",
    "billing: {f} {l}, {v}",
]
IBAN_T = [
    "Please wire the deposit to IBAN {v} (BIC DEUTDEFF).",
    "Bank details: {f} {l}, {v}",
    "iban: {v}\nbic: COBADEFFXXX",
    "Refund goes to {v}, thanks!",
    "beneficiary_iban={v}",
    "Kontoinhaber {f} {l}, IBAN: {v}",
    "Salary account updated to {v} as of next month.",
]
SSN_T = [
    "SSN: {v}",
    "Applicant {f} {l}, social security number {v}, DOB 04/12/1988",
    "my ssn is {v} do you need anything else",
    "employee_id,{n},ssn,{v}",
    '{{"name": "{f} {l}", "ssn": "{v}"}}',
    "W-2 for {f} {l} (SSN {v}) attached.",
]
AWS_KEY_T = [
    "aws_access_key_id = {v}",
    "export AWS_ACCESS_KEY_ID={v}",
    "found leaked key {v} in the public repo, rotating now",
    '"AccessKeyId": "{v}",',
    "s3 = boto3.client('s3', aws_access_key_id='{v}')",
]
AWS_SECRET_T = [
    "aws_secret_access_key = {v}",
    "export AWS_SECRET_ACCESS_KEY={v}",
    '"SecretAccessKey": "{v}",',
    "AWS_SECRET={v}",
    "secret key: {v} (please rotate after the demo)",
]
GITHUB_T = [
    "git clone https://{v}@github.com/acme/infra.git",
    "export GITHUB_TOKEN={v}",
    "token: {v}",
    "Authorization: token {v}",
    "oops I pasted my PAT {v} in the channel, revoking",
    "GH_TOKEN={v} gh pr list",
]
SLACK_T = [
    "SLACK_BOT_TOKEN={v}",
    'client = WebClient(token="{v}")',
    "slack:\n  token: {v}\n  channel: '#alerts'",
    "the bot token {v} stopped working after reinstall",
]
SLACK_HOOK_T = [
    "curl -X POST -H 'Content-type: application/json' --data '{{\"text\":\"deploy done\"}}' https://hooks.slack.com/services/{v}",
    "SLACK_WEBHOOK_URL=https://hooks.slack.com/services/{v}",
    'webhook: "https://hooks.slack.com/services/{v}"',
]
OPENAI_T = [
    "OPENAI_API_KEY={v}",
    'client = OpenAI(api_key="{v}")',
    "Why does my key {v} return 401?",
    "export ANTHROPIC_API_KEY={v}",
    "headers = {{'Authorization': 'Bearer {v}'}}",
    "api_key: {v}",
]
JWT_T = [
    "Authorization: Bearer {v}",
    'curl -H "Authorization: Bearer {v}" https://api.acme-corp.com/v1/me',
    "Set-Cookie: session={v}; HttpOnly; Secure",
    "the token I get back is {v} but /me says expired",
    '{{"access_token": "{v}", "token_type": "bearer", "expires_in": 3600}}',
    "https://app.acme-corp.com/callback#id_token={v}&state=xyz",
]
PEM_T = [
    "Here is the key from the server:\n{v}\nDon't share it.",
    "deploy_key: |\n  {v}",
    "cat ~/.ssh/id_rsa\n{v}",
    "{v}",
]
PEM_ESCAPED_T = [
    '{{"type": "service_account", "private_key": "{v}\\n", "client_id": "{n}"}}',
    'PRIVATE_KEY="{v}"',
]
URL_T = [
    "DATABASE_URL={v}",
    'engine = create_engine("{v}")',
    "Connecting to {v} ... done",
    "broker_url: {v}",
    "Can't connect with {v}, timeout after 30s",
    '{{"dsn": "{v}"}}',
]


def url_contexts() -> list[Context]:
    def make(template: str) -> Context:
        def ctx(g: Gen) -> tuple[str, list[tuple[str, str]]]:
            url, labels = g.url_password()
            return template.format(v=url), labels

        return ctx

    return [make(t) for t in URL_T]


def bare_phone_contexts() -> list[Context]:
    """Bare 10-digit runs with a cue word: labelled phones."""

    def ctx(g: Gen) -> tuple[str, list[tuple[str, str]]]:
        v = g.us_phone()
        digits = "".join(c for c in v if c.isdigit())[-10:]
        template = g.rng.choice(["call me on {v} tonight", "phone: {v}", "Tel {v}", "text {v} when you land"])
        return template.format(v=digits), [("PHONE", digits)]

    return [ctx]


POSITIVES: dict[str, list[Context]] = {
    "EMAIL": one("EMAIL", EMAIL_T, Gen.email),
    "PHONE": one("PHONE", PHONE_T, Gen.us_phone) + one("PHONE", PHONE_T, Gen.intl_phone) + bare_phone_contexts(),
    "IP_ADDRESS": one("IP_ADDRESS", IP_T, Gen.ipv4) + one("IP_ADDRESS", IP6_T, Gen.ipv6),
    "CREDIT_CARD": one("CREDIT_CARD", CARD_T, Gen.card),
    "IBAN": one("IBAN", IBAN_T, Gen.iban),
    "US_SSN": one("US_SSN", SSN_T, Gen.ssn),
    "AWS_ACCESS_KEY": one("AWS_ACCESS_KEY", AWS_KEY_T, Gen.aws_key),
    "AWS_SECRET_KEY": one("AWS_SECRET_KEY", AWS_SECRET_T, Gen.aws_secret),
    "GITHUB_TOKEN": one("GITHUB_TOKEN", GITHUB_T, Gen.github),
    "SLACK_TOKEN": one("SLACK_TOKEN", SLACK_T, Gen.slack) + one("SLACK_TOKEN", SLACK_HOOK_T, Gen.slack_hook),
    "OPENAI_KEY": one("OPENAI_KEY", OPENAI_T, Gen.openai),
    "JWT": one("JWT", JWT_T, Gen.jwt),
    "PRIVATE_KEY": one("PRIVATE_KEY", PEM_T, Gen.pem)
    + one("PRIVATE_KEY", PEM_ESCAPED_T, lambda g: g.pem(escaped=True)),
    "URL_PASSWORD": url_contexts(),
}


def mixed_contexts() -> list[Context]:
    """Several types in one text, as in e-mail signatures, .env files, tickets and chat."""

    def signature(g: Gen) -> tuple[str, list[tuple[str, str]]]:
        f, last = g.name()
        email, phone = g.email(), g.rng.choice([g.us_phone, g.intl_phone])()
        text = f"Best regards,\n{f.title()} {last.title()}\nSenior Data Engineer, Globex\nE: {email}\nM: {phone}"
        return text, [("EMAIL", email), ("PHONE", phone)]

    def dotenv(g: Gen) -> tuple[str, list[tuple[str, str]]]:
        key, secret, oai = g.aws_key(), g.aws_secret(), g.openai()
        url, url_labels = g.url_password()
        text = (
            f"# .env (do not commit)\nDEBUG=false\nDATABASE_URL={url}\nAWS_ACCESS_KEY_ID={key}\n"
            f"AWS_SECRET_ACCESS_KEY={secret}\nOPENAI_API_KEY={oai}\nPORT=8080\n"
        )
        return text, [*url_labels, ("AWS_ACCESS_KEY", key), ("AWS_SECRET_KEY", secret), ("OPENAI_KEY", oai)]

    def ticket(g: Gen) -> tuple[str, list[tuple[str, str]]]:
        email, card, ssn = g.email(), g.card(), g.ssn()
        text = (
            f'Ticket #{g.rng.randint(10000, 99999)} (priority: high)\nCustomer wrote: "I was double charged on {card}. '
            f'My email is {email} and for verification my SSN is {ssn}."'
        )
        return text, [("CREDIT_CARD", card), ("EMAIL", email), ("US_SSN", ssn)]

    def access_log(g: Gen) -> tuple[str, list[tuple[str, str]]]:
        ip, email = g.ipv4(), g.email()
        text = (
            f"2026-11-24 09:41:{g.rng.randint(10, 59)} INFO login ok user={email} src={ip} agent=Mozilla/5.0 took=123ms"
        )
        return text, [("EMAIL", email), ("IP_ADDRESS", ip)]

    def hr_form(g: Gen) -> tuple[str, list[tuple[str, str]]]:
        f, last = g.name()
        ssn, iban, phone = g.ssn(), g.iban(), g.us_phone()
        text = f"New hire: {f.title()} {last.title()}\nSSN: {ssn}\nPayroll IBAN: {iban}\nEmergency contact: {phone}\nStart: 2026-12-01"
        return text, [("US_SSN", ssn), ("IBAN", iban), ("PHONE", phone)]

    def chat(g: Gen) -> tuple[str, list[tuple[str, str]]]:
        email, phone = g.email(), g.us_phone()
        text = f"user: hey can you update my contact info? new email {email} and phone {phone}\nassistant: Sure, done!"
        return text, [("EMAIL", email), ("PHONE", phone)]

    def k8s(g: Gen) -> tuple[str, list[tuple[str, str]]]:
        gh, slack = g.github(), g.slack()
        text = (
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: ci-tokens\nstringData:\n"
            f'  GITHUB_TOKEN: {gh}\n  SLACK_BOT_TOKEN: {slack}\n  REPLICAS: "3"'
        )
        return text, [("GITHUB_TOKEN", gh), ("SLACK_TOKEN", slack)]

    def forum(g: Gen) -> tuple[str, list[tuple[str, str]]]:
        jwt, ip = g.jwt(), g.ipv6() if g.rng.random() < 0.5 else g.ipv4()
        text = (
            "Re: 401 after upgrading to v2.3.1\n\nI'm sending the header exactly like the docs say:\n"
            f"    Authorization: Bearer {jwt}\nand the server ({ip}) logs 'signature invalid'. Any ideas? Using Python 3.12."
        )
        return text, [("JWT", jwt), ("IP_ADDRESS", ip)]

    def ssh_incident(g: Gen) -> tuple[str, list[tuple[str, str]]]:
        pem, ip = g.pem(), g.ipv4()
        text = f"Incident 2026-11-24: the bastion host {ip} had this key world-readable:\n{pem}\nRotated at 14:05 UTC."
        return text, [("PRIVATE_KEY", pem), ("IP_ADDRESS", ip)]

    return [signature, dotenv, ticket, access_log, hr_form, chat, k8s, forum, ssh_incident]


# ------------------------------------------------------------------------------------------------ hard negatives


def negatives(g: Gen) -> list[str]:
    r = g.rng
    hexd = "0123456789abcdef"
    sha1, sha256 = rand(r, hexd, 40), rand(r, hexd, 64)
    uuid = f"{rand(r, hexd, 8)}-{rand(r, hexd, 4)}-4{rand(r, hexd, 3)}-a{rand(r, hexd, 3)}-{rand(r, hexd, 12)}"
    ver = f"{r.randint(1, 12)}.{r.randint(0, 20)}.{r.randint(0, 9)}.{r.randint(0, 99)}"
    bad_card = luhn_complete("4", 16, r)
    bad_card = bad_card[:-1] + str((int(bad_card[-1]) + r.randint(1, 9)) % 10)
    good_iban = g.iban().replace(" ", "")
    bad_iban = good_iban[:2] + f"{(int(good_iban[2:4]) + r.randint(1, 50)) % 100:02d}" + good_iban[4:]
    epoch = 1700000000 + r.randint(0, 10**8)
    json_b64 = base64.b64encode(json.dumps({"user": r.choice(FIRST), "n": r.randint(1, 9)}).encode()).decode()
    no_alg_header = b64url(json.dumps({"typ": "JWT"}).encode())  # base64 JSON parts, but no "alg": not a JWT
    no_alg = f"{no_alg_header}.{b64url(json.dumps({'sub': r.randint(1, 999)}).encode())}.{rand(r, B64URL, 20)}"
    return [
        # versions (a dotted quad after a version cue, or with a suffix, is a version)
        f"Bumped the driver to version {ver} to fix the memory leak.",
        f"Release {ver} is out: faster tokenizer, fewer allocations.",
        f"## [{ver}] - 2026-11-{r.randint(10, 28)}\n### Fixed\n- crash on empty batch",
        f"pip install 'torch-foo=={ver}'",
        f"$ python --version\nPython {ver}",
        f"Tested on firmware {ver} and kernel 6.1.0-13-amd64.",
        f"ChangeLog: {r.randint(1, 12)}.0.0.{r.randint(1, 9)}-beta adds the new scheduler; v{ver} is deprecated.",
        f"Download foo-{ver}.tar.gz from the releases page.",
        f"Chrome {r.randint(100, 130)}.0.{r.randint(1000, 6999)}.{r.randint(10, 200)} crashes on this page",
        f"npm i lodash@4.17.{r.randint(10, 21)} --save-exact",
        f"Your order number is {r.randint(10**9, 10**10 - 1)}; keep it for returns.",
        f"population {r.randint(10**6, 10**7 - 1)} (2020 census), area {r.randint(100, 9999)} km²",
        # dates and times
        f"The meeting moved to 2026-{r.randint(1, 12):02d}-{r.randint(1, 28):02d} at {r.randint(8, 18)}:{r.randint(0, 59):02d}.",
        f"Due date: {r.randint(1, 12)}/{r.randint(1, 28)}/2026, invoice total $1,{r.randint(100, 999)}.00",
        f"Zeitraum: {r.randint(1, 28):02d}.{r.randint(1, 12):02d}.2026 bis {r.randint(1, 28):02d}.{r.randint(1, 12):02d}.2027",
        f"2026-11-24T{r.randint(0, 23):02d}:{r.randint(0, 59):02d}:{r.randint(0, 59):02d}.{r.randint(0, 999):03d}Z DEBUG cache miss key=user:{r.randint(1, 99999)}",
        f"elapsed {r.randint(0, 23):02d}:{r.randint(0, 59):02d}:{r.randint(0, 59):02d} (h:m:s), {r.randint(1, 99)} epochs",
        f"event ts={epoch} id={r.randint(10**9, 10**10 - 1)} ms={epoch * 1000 + r.randint(0, 999)}",
        # hex constants, digests, ids
        f"#define MAGIC 0x{rand(r, 'ABCDEF0123456789', 8)}\nuint32_t seed = 0xDEADBEEF;",
        f"commit {sha1}\nAuthor: CI Bot\n\n    fix secret rotation handling in the vault client",
        f"sha256:{sha256}  model.safetensors",
        f"docker pull ghcr.io/acme/api@sha256:{sha256}",
        f"request_id={uuid} status=200",
        f"Fixed in {sha1[:7]} and {rand(r, hexd, 7)} (see #{r.randint(100, 9999)})",
        f"checksum md5 {rand(r, hexd, 32)} ok",
        # ISBNs, math and long numbers
        f"ISBN 978-{r.randint(0, 1)}-{r.randint(100, 999)}-{r.randint(10000, 99999)}-{r.randint(0, 9)}",
        f"ISBN-10: 0-{r.randint(100, 999)}-{r.randint(10000, 99999)}-{r.randint(0, 9)}",
        "2^64 = 18446744073709551616 and 2^63 - 1 = 9223372036854775807",
        "pi ≈ 3.14159265358979323846264338327950288419716939937510",
        f"{r.randint(10**15, 10**16 - 1)} mod 97 = {r.randint(0, 96)}; gcd(2310, 1547) = 7",
        f"The sum is {r.randint(1, 9)},{r.randint(100, 999)},{r.randint(100, 999)},{r.randint(100, 999)} after {r.randint(2, 9)} iterations.",
        "e = 2.718281828459045, sqrt(2) = 1.4142135623730951, 10! = 3628800",
        f"matrix = [[{r.randint(1, 9)}, 0], [0, {r.randint(1, 9)}]]; det = {r.randint(1, 81)}",
        # order numbers, tracking, coordinates, prices, ports, colours
        f"Your order 11{r.randint(1, 9)}-{r.randint(10**6, 10**7 - 1)}-{r.randint(10**6, 10**7 - 1)} has shipped.",
        f"Order #{r.randint(10**9, 10**10 - 1)} confirmed, invoice INV-2026-{r.randint(0, 99999):05d}",
        f"Tracking number: 1Z{rand(r, string.ascii_uppercase + string.digits, 16)}",
        f"Coordinates: {r.uniform(-80, 80):.6f}, {r.uniform(-170, 170):.6f}",
        f"Price: ${r.randint(1, 9)},{r.randint(100, 999)}.{r.randint(0, 99):02d} (was €{r.randint(1000, 9999)},00)",
        f"Server listening on http://localhost:{r.randint(3000, 9000)} and 0.0.0.0:{r.randint(3000, 9000)}",
        f"color: #{rand(r, hexd, 6)}; background: rgb({r.randint(0, 255)}, {r.randint(0, 255)}, {r.randint(0, 255)});",
        f"POSTGRES_PORT={r.choice([5432, 5433, 6543])}\nREDIS_PORT=6379\nWORKERS={r.randint(2, 16)}",
        # base64 that is not a JWT, card-like numbers failing Luhn, broken IBANs, invalid SSNs
        f"data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAA{rand(r, B64, 60)}==",
        f"payload={json_b64}",
        f"cookie: prefs={no_alg}",
        f"Test with card {bad_card[:4]} {bad_card[4:8]} {bad_card[8:12]} {bad_card[12:]} should be rejected (bad checksum).",
        f"IBAN {bad_iban} fails validation, please double-check",
        f"SSN {r.choice(['000', '666', '9' + str(r.randint(10, 99))])}-{r.randint(10, 99)}-{r.randint(1000, 9999)} is not a valid number",
        f"part no. {r.randint(100, 999)}-{r.randint(10, 99)}-{r.randint(10000, 99999)} in stock",
        # allowlisted examples
        f"Send a test mail to {r.choice(FIRST)}@example.com or admin@example.org.",
        f"{r.choice(FIRST)}@mail.example.net, noreply@localhost, check@foo.test",
        f"curl http://192.0.2.{r.randint(1, 254)}/health and http://198.51.100.{r.randint(1, 254)}:8080",
        f"Docs: the server 203.0.113.{r.randint(1, 254)} and 2001:db8::{r.randint(1, 0xFFFF):x} are examples.",
        "bind to 127.0.0.1 or ::1, never 0.0.0.0 in production",
        f"For the demo call (212) 555-01{r.randint(0, 99):02d}.",
        "AWS docs use AKIAIOSFODNN7EXAMPLE / wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY as sample credentials.",
        # placeholders and templates of secrets
        "export GITHUB_TOKEN=ghp_XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
        "SLACK_BOT_TOKEN=xoxb-your-bot-token-here",
        "OPENAI_API_KEY=sk-... (put your key here)",
        "DATABASE_URL=postgres://app:${DB_PASSWORD}@db:5432/app",
        "redis://default:<password>@cache:6379/0",
        "https://user:****@registry.acme-corp.com/v2/",
        "pip install scikit-learn  # imported as sklearn, not sk-learn",
        # code that looks like e-mails or IPv6
        "@app.route('/users/<int:id>')\ndef get_user(id): ...",
        "h = x@self.weight.T + self.bias",
        "git remote add origin git@github.com:acme/infra.git",
        "std::vector<int> v; auto it = std::find(v.begin(), v.end(), 42);",
        f"xs[{r.randint(1, 9)}::{r.randint(2, 9)}], ys[::2], a[10::100]",
        f"MAC address {':'.join(rand(r, 'ABCDEF0123456789', 2) for _ in range(6))} on eth0",
        f"hexdump: {':'.join(rand(r, hexd, 2) for _ in range(8))}",
        f"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{rand(r, B64, 43)} {r.choice(FIRST)}@laptop",
        f"random blob {rand(r, B64, 40)} in a test fixture",
    ]


def build() -> list[dict]:
    rng = random.Random(SEED)
    g = Gen(rng)
    rows: list[dict] = []

    def add(text: str, spans: list[tuple[str, str]]) -> None:
        for _, value in spans:
            assert text.count(value) == 1, (value, text)
        rows.append({"text": text, "spans": [{"type": t, "value": v} for t, v in spans]})

    for contexts in POSITIVES.values():
        for i in range(32):
            while True:  # redraw the rare value that occurs twice in its text (e.g. a 4-digit group)
                text, spans = contexts[i % len(contexts)](g)
                if all(text.count(v) == 1 for _, v in spans):
                    break
            add(text, spans)
    mixed = mixed_contexts()
    for i in range(72):
        while True:
            text, spans = mixed[i % len(mixed)](g)
            if all(text.count(v) == 1 for _, v in spans):
                break
        add(text, spans)
    for _ in range(4):
        for text in negatives(g):
            add(text, [])
    rng.shuffle(rows)
    return rows


def main() -> None:
    rows = build()
    with OUT.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
    print(f"wrote {len(rows)} lines to {OUT}")


if __name__ == "__main__":
    main()
