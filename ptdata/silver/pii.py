"""Find and redact personal data and secrets in text, with typed placeholders. Pure: no I/O, no Dagster.

Placeholders: personal data becomes ``<TYPE>`` (``<EMAIL>``, ``<PHONE>``, ``<IP_ADDRESS>``, ``<CREDIT_CARD>``,
``<IBAN>``, ``<US_SSN>``) and secrets become ``<SECRET:TYPE>`` (``<SECRET:GITHUB_TOKEN>``, ...). A placeholder has no
digit, no ``@`` and no run a detector accepts, and any candidate overlapping one is dropped, so redacted text is
never re-detected. ``redact`` repeats until ``find_pii`` finds nothing (removing a span can join its neighbours
into a new candidate), so its output always passes the residual scan and ``redact(redact(x)) == redact(x)``.

Rules a reviewer should know (each is a trade of a little recall for a lot of precision on real text):
- PHONE: ``phonenumbers.PhoneNumberMatcher`` (leniency VALID) finds and validates numbers, international ones
  written with ``+`` in any region. In a NANP default region (US) a number written without ``+`` must be grouped
  like a NANP number (3-3-4 or 1-3-3-4) or be one run of 10/11 digits; a bare run (no separator, no ``+``) also
  needs a cue word (call, phone, tel, ...) just before it, because bare digit runs are mostly ids, order
  numbers and timestamps. The fictional NANP range 555-0100..555-0199 is allowlisted like documentation IPs.
- IP_ADDRESS: a dotted quad is a version, not an address, when it is glued to a word (``v1.2.3.4``), carries a
  pre-release/build suffix (``1.2.3.4-beta``, ``1.2.3.4+b7``), is part of a longer dotted name
  (``foo-1.2.3.4.tar.gz``), or follows a version cue (``version``, ``release``, ``build``, ``==``, ``>=``, or a
  runtime/OS name such as ``Python``). IPv6 candidates are validated by ``ipaddress`` and rejected when they look
  like code: slices such as ``10::100``, C++ scopes such as ``dead::beef`` (no digit in any group), byte dumps
  ``de:ad:be:ef:00:11:22:33`` (all groups two hex digits, no ``::``).
- US_SSN: ``AAA-GG-SSSS`` with dashes only: a bare 9-digit run is as likely an id or a zip+4, and the SSA
  invalid ranges (area 000, 666, 9xx; group 00; serial 0000) are excluded.
- EMAIL: the top-level domain must be a two-letter country code or a known generic TLD, so ``x@self.weight``
  (matrix product in Python) and ``pkg@1.2.3`` are not addresses; ``git@github.com:org/repo`` (scp-style remote)
  and ``https://user@host`` (URL userinfo) are not e-mail either.
- Secrets whose body looks like a placeholder (``ghp_`` then one letter repeated, fewer than 8 distinct characters) or whose value is
  a template (``${DB_PASSWORD}``, ``<password>``, ``****``) are left alone. OPENAI_KEY covers every ``sk-`` style
  key (OpenAI, Anthropic ``sk-ant-``, ...): they share the shape, and the type only names the placeholder.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import ipaddress
import re
import string
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
import phonenumbers

_SECRETS: tuple[str, ...] = (
    "AWS_ACCESS_KEY",
    "AWS_SECRET_KEY",
    "GITHUB_TOKEN",
    "SLACK_TOKEN",
    "OPENAI_KEY",
    "JWT",
    "PRIVATE_KEY",
    "URL_PASSWORD",
)
PII_TYPES: tuple[str, ...] = ("EMAIL", "PHONE", "IP_ADDRESS", "CREDIT_CARD", "IBAN", "US_SSN", *_SECRETS)
SECRET_TYPES: frozenset[str] = frozenset(_SECRETS)

# When two candidates overlap, the more specific one wins: a whole PEM block over the secrets inside it, a
# JWT over the base64 runs in it, a URL password over the "password@host" that also looks like an e-mail, and
# any structured number over the phone matcher, which is the loosest.
_PRIORITY: dict[str, int] = {
    t: i
    for i, t in enumerate(
        (
            "PRIVATE_KEY",
            "JWT",
            "GITHUB_TOKEN",
            "SLACK_TOKEN",
            "OPENAI_KEY",
            "AWS_ACCESS_KEY",
            "AWS_SECRET_KEY",
            "URL_PASSWORD",
            "EMAIL",
            "IBAN",
            "CREDIT_CARD",
            "US_SSN",
            "IP_ADDRESS",
            "PHONE",
        )
    )
}


def placeholder(pii_type: str) -> str:
    """The text that replaces a span of `pii_type`: ``<EMAIL>`` for personal data, ``<SECRET:JWT>`` for secrets."""
    return f"<SECRET:{pii_type}>" if pii_type in SECRET_TYPES else f"<{pii_type}>"


PLACEHOLDER_RE = re.compile("|".join(re.escape(placeholder(t)) for t in PII_TYPES))


@dataclass(frozen=True, slots=True)
class Span:
    """One detection: text[start:end] is personal data or a secret of `type`."""

    start: int
    end: int
    type: str
    text: str


# ---------------------------------------------------------------------------------------------------- allowlist

# RFC 2606 / RFC 6761 reserved names. "example.*" means the label "example" under any public suffix.
DEFAULT_EMAIL_DOMAINS: tuple[str, ...] = (
    "example.com",
    "example.org",
    "example.net",
    "example.*",
    "example",
    "localhost",
    "test",
    "invalid",
)
# Documentation ranges (RFC 5737, RFC 3849), loopback, and 0.0.0.0/8 ("this network", never a host's address)
DEFAULT_IP_NETWORKS: tuple[str, ...] = (
    "192.0.2.0/24",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "2001:db8::/32",
    "127.0.0.0/8",
    "::1/128",
    "::/128",
    "0.0.0.0/8",
)
# The AWS documentation's example credentials: they appear in every tutorial and are not anybody's secret
DEFAULT_LITERALS: tuple[str, ...] = ("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")

_IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Allowlist:
    """What is never redacted for a source: e-mail domains (and their subdomains), IP networks, literal strings.

    `fictional_phones` keeps NANP 555-0100..555-0199, the numbers reserved for fiction and examples.
    `ip_networks` may be given as strings ("10.0.0.0/8"); they are parsed here.
    """

    email_domains: tuple[str, ...] = DEFAULT_EMAIL_DOMAINS
    ip_networks: tuple[_IPNetwork | str, ...] = tuple(ipaddress.ip_network(n) for n in DEFAULT_IP_NETWORKS)
    literals: tuple[str, ...] = DEFAULT_LITERALS
    fictional_phones: bool = True
    # derived lookups, built once: the detectors ask them for every candidate
    _domains: frozenset[str] = field(init=False, repr=False, compare=False)
    _domain_bases: frozenset[str] = field(init=False, repr=False, compare=False)
    _folded_literals: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        networks = tuple(ipaddress.ip_network(n, strict=False) for n in self.ip_networks)
        object.__setattr__(self, "ip_networks", networks)
        domains = [d.strip().lower().rstrip(".") for d in self.email_domains]
        object.__setattr__(self, "_domains", frozenset(d for d in domains if not d.endswith(".*")))
        object.__setattr__(self, "_domain_bases", frozenset(d[:-2] for d in domains if d.endswith(".*")))
        object.__setattr__(self, "_folded_literals", frozenset(s.casefold() for s in self.literals))

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None, prefix: str = "pii.allowlist") -> Allowlist:
        """The defaults plus a source's additions: ``{"email_domains": [...], "ip_networks": [...],
        "literals": [...], "fictional_phones": bool}``. A bad entry raises ValueError naming its key path."""
        config = dict(config or {})
        known = {"email_domains", "ip_networks", "literals", "fictional_phones"}
        for key in config:
            if key not in known:
                raise ValueError(f"{prefix}.{key}: unknown key (expected one of {sorted(known)})")

        def strings(key: str) -> list[str]:
            value = config.get(key, [])
            if not isinstance(value, list | tuple) or not all(isinstance(v, str) and v for v in value):
                raise ValueError(f"{prefix}.{key}: expected a list of non-empty strings")
            return list(value)

        networks = list(cls.ip_networks)
        for i, net in enumerate(strings("ip_networks")):
            try:
                networks.append(ipaddress.ip_network(net, strict=False))
            except ValueError as exc:
                raise ValueError(f"{prefix}.ip_networks[{i}]: {exc}") from None
        fictional = config.get("fictional_phones", True)
        if not isinstance(fictional, bool):
            raise ValueError(f"{prefix}.fictional_phones: expected true or false")
        return cls(
            email_domains=tuple(dict.fromkeys([*DEFAULT_EMAIL_DOMAINS, *strings("email_domains")])),
            ip_networks=tuple(dict.fromkeys(networks)),
            literals=tuple(dict.fromkeys([*DEFAULT_LITERALS, *strings("literals")])),
            fictional_phones=fictional,
        )

    def allows_domain(self, domain: str) -> bool:
        """An allowlisted domain itself or any of its subdomains; "example.*" under any public suffix."""
        labels = domain.lower().rstrip(".").split(".")
        if any(".".join(labels[i:]) in self._domains for i in range(len(labels))):
            return True
        # "example.*": the base label followed by a one-label suffix, or a two-label one like co.uk / com.au
        for i, label in enumerate(labels[:-1]):
            if label in self._domain_bases:
                rest = labels[i + 1 :]
                if len(rest) == 1 or (len(rest) == 2 and len(rest[0]) <= 3):
                    return True
        return False

    def allows_ip(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        """In an allowlisted network; an IPv4-mapped IPv6 address (::ffff:a.b.c.d) is judged as its IPv4."""
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip.version == net.version and ip in net for net in self.ip_networks)

    def allows_literal(self, text: str) -> bool:
        """Equal to an allowlisted literal, ignoring case."""
        return text.casefold() in self._folded_literals


DEFAULT_ALLOWLIST = Allowlist()


# ------------------------------------------------------------------------------------------------------- e-mail

# Generic TLDs seen in real addresses, plus intranet pseudo-TLDs; any two-letter label counts as a country code.
_GENERIC_TLDS = frozenset(
    """com org net edu gov mil int info biz name pro aero coop museum mobi jobs travel tel asia cat post app dev
    tech online site xyz cloud email company digital global group inc llc ltd media network news shop store systems
    solutions world academy agency blog codes design engineering finance health law life live money page software
    studio team tools work zone science social space website wiki club capital center consulting services support
    today top vip bank insurance legal marketing partners photography properties school university institute
    education energy events expert exchange family foundation fund games gmbh guru host hosting international land
    link london nyc paris berlin tokyo one ooo pub red run sale solar style tax tips town trade training ventures
    vision works yoga google amazon microsoft apple icloud internal corp local lan intranet""".split()
)
# Matched around each "@" rather than by one regex over the text: a regex starting with the local part would be
# tried at every letter of the text, while "@" is rare and found at memchr speed.
_EMAIL_LOCAL = re.compile(r"[A-Za-z0-9._%+\-]{1,64}\Z")
_EMAIL_DOMAIN = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+([A-Za-z]{2,63})"
    # not followed by more domain, nor by ":path" (an scp-style git remote such as git@github.com:org/repo)
    r"(?![A-Za-z0-9\-]|\.[A-Za-z0-9]|:[\w~/])"
)
_EMAIL_LOCAL_CHARS = frozenset(string.ascii_letters + string.digits + "._%+-")


def _find_emails(text: str, allow: Allowlist) -> Iterator[Span]:
    at = text.find("@")
    while at != -1:
        domain = _EMAIL_DOMAIN.match(text, at + 1)
        local = _EMAIL_LOCAL.search(text, max(0, at - 64), at) if domain else None
        if domain and local:
            # the local part must be whole (at most 64 characters) and not URL userinfo ("https://user@host")
            before = text[local.start() - 1] if local.start() else ""
            # an address never has two dots in a row: "said...jane@x.io" starts at "jane"
            start = local.start() + local.group().rfind("..") + 2 if ".." in local.group() else local.start()
            while text[start] in "._%+-":  # "(-bob@x.io": the address starts at the name
                start += 1
            tld = domain.group(1).lower()
            if (
                start < at
                and before not in _EMAIL_LOCAL_CHARS
                and before != "/"
                and (len(tld) == 2 or tld in _GENERIC_TLDS)
                and not allow.allows_domain(text[at + 1 : domain.end()])
            ):
                yield Span(start, domain.end(), "EMAIL", text[start : domain.end()])
        at = text.find("@", at + 1)


# ------------------------------------------------------------------------------------------------------- phones

# A run of digits with short separators, at least 7 digits after a "+" and 8 otherwise: the only text worth
# handing to the (slow) phone matcher (a "(" before it is inside the matcher's window), and where card numbers
# are looked for. One scan serves both detectors. Every regex here starts with a plain character class, not a
# lookbehind, so that the regex engine can skip ahead to the candidates (five times faster on prose).
_NUMBER_RUN = re.compile(r"[+\d](?:[().\-/ \t]{0,3}\d){6,}")
_DIGIT_GROUPS = re.compile(r"\d+")
_PHONE_EXTENSION = re.compile(r"(?i)\s*(?:ext\.?|x|#|extension)\s*\d+$")
_PHONE_CUE = re.compile(  # "(?<!<)": the <PHONE> placeholder of an earlier round is not a cue
    r"(?i)(?<!<)\b(?:call(?:ed|ing)?|phone|tel|telephone|mobile|cell|fax|sms|text(?:ed)?|whats ?app|signal|contact|"
    r"reach|dial|ph|mob|ring)\b"
)
_WINDOW_BEFORE = 8  # the matcher looks one or two characters back (a letter or "+" glued to the number)
_WINDOW_AFTER = 24  # and forward, for extensions ("ext. 1234") and timestamp suffixes (":30")
_NANP_GROUPED = ((3, 3, 4), (1, 3, 3, 4))
_NANP_BARE = ((10,), (11,))
# a candidate run holds a 3-3-4 grouped number somewhere (a 1-3-3-4 one contains one too)
_NANP_IN_RUN = re.compile(r"(?<!\d)\d{3}\D{1,3}\d{3}\D{1,3}\d{4}(?!\d)")


def _has_cue(text: str, start: int) -> bool:
    return _PHONE_CUE.search(text, max(0, start - 40), start) is not None


def _find_phones(text: str, runs: list[re.Match[str]], allow: Allowlist, region: str) -> Iterator[Span]:
    nanp = phonenumbers.country_code_for_region(region) == 1
    windows: list[list[int]] = []
    for m in runs:
        run = m.group()
        if run.isdigit():  # a bare run (ids, timestamps): a phone only after a cue word, checked before the matcher
            worth = (not nanp or len(run) in (10, 11)) and _has_cue(text, m.start())
        elif run.startswith("+"):
            worth = True  # the run regex already asks for seven digits
        else:
            worth = not nanp or _NANP_IN_RUN.search(run) is not None
        if not worth:
            continue
        lo, hi = max(0, m.start() - _WINDOW_BEFORE), min(len(text), m.end() + _WINDOW_AFTER)
        if windows and lo <= windows[-1][1]:
            windows[-1][1] = hi
        else:
            windows.append([lo, hi])
    for lo, hi in windows:
        for match in phonenumbers.PhoneNumberMatcher(text[lo:hi], region, leniency=phonenumbers.Leniency.VALID):
            start, end, raw = lo + match.start, lo + match.end, match.raw_string
            national = _PHONE_EXTENSION.sub("", raw)
            groups = [len(g) for g in _DIGIT_GROUPS.findall(national)]
            if not raw.startswith("+"):
                shape = tuple(groups)
                if nanp and shape not in _NANP_GROUPED and shape not in _NANP_BARE:
                    continue
                if len(groups) == 1 and not _has_cue(text, start):
                    continue
            number = match.number
            if allow.fictional_phones and number.country_code == 1 and number.national_number % 10**7 // 100 == 55501:
                continue
            yield Span(start, end, "PHONE", raw)


# ------------------------------------------------------------------------------------------------ IP addresses

# Anchored on the first dot (a literal the engine jumps to); the first octet is read back from it in Python.
# Not glued to more of a dotted name or number, and no "-beta" / "+build" version suffix.
_IPV4_TAIL = re.compile(r"\.(?<=\d\.)\d{1,3}\.\d{1,3}\.\d{1,3}(?!\w|\.\w|-[A-Za-z]|\+\w)")
_DIGITS = frozenset("0123456789")
_VERSION_CUE = re.compile(
    r"(?i)(?:\b(?:v|ver|version|versions|release|build|rev|revision|firmware|kernel|python|node|nodejs|java|jdk|"
    r"ruby|perl|php|golang|rustc|gcc|clang|cuda|chrome|firefox|safari|windows|ios|android|macos|ubuntu|debian)"
    r"\.?\s*[:#]?\s*|(?:==|>=|<=|~=|!=|\^|~)\s*"
    # a Markdown heading, as changelogs title their entries: "## 1.2.3.4" or "## [1.2.3.4] - 2026-11-24"
    r"|(?:^|(?<=\n))\#{1,6}[ \t]*\[?)$"
)
# every IPv6 address has "::" or three groups between colons; times (12:30:45) have neither
_IPV6_HINT = re.compile(r":[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:")
_IPV6_RE = re.compile(
    r"(?<![\w:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}"
    r"(?:(?<=:)(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3})?"
    r"(?:%[0-9A-Za-z_.]+)?(?![\w:]|\.\w)"
)


def _find_ipv4(text: str, allow: Allowlist) -> Iterator[Span]:
    if "." not in text:
        return
    for m in _IPV4_TAIL.finditer(text):
        start = m.start() - 1
        while start and text[start - 1] in _DIGITS and m.start() - start < 3:
            start -= 1
        if start and (text[start - 1].isalnum() or text[start - 1] in "_."):
            continue  # part of a longer number, word or dotted name
        value = text[start : m.end()]
        if not all(len(o) == 1 or (o[0] != "0" and int(o) <= 255) for o in value.split(".")):
            continue  # an octet over 255 or with a leading zero: not an address
        if _VERSION_CUE.search(text, max(0, start - 24), start):
            continue
        if not allow.allows_ip(ipaddress.IPv4Address(value)):
            yield Span(start, m.end(), "IP_ADDRESS", value)


def _looks_like_code_not_ipv6(candidate: str) -> bool:
    groups = [g for g in re.split(r"[:.]", candidate) if g]
    if not any(c.isdigit() for c in candidate):
        return True  # C++/Rust scopes: dead::beef, abc::def
    if len(groups) <= 2 and all(g.isdigit() for g in groups):
        return True  # slices and ranges: a[10::100], [::2]
    return "::" not in candidate and all(len(g) == 2 for g in groups)  # byte dumps and MACs


_HEX_OR_COLON = frozenset("0123456789abcdefABCDEF:")


def _ipv6_candidates(text: str) -> Iterator[re.Match[str]]:
    """The regex is tried only where an anchor ("::" or three groups between colons) is, from the start of the
    hex-and-colon run around it: scanning the whole text with it would try every letter."""
    anchors = [m.start() for m in _IPV6_HINT.finditer(text)]
    pos = text.find("::")
    while pos != -1:
        anchors.append(pos)
        pos = text.find("::", pos + 2)
    last_end = -1
    for anchor in sorted(anchors):
        if anchor < last_end:
            continue
        # an address is at most 45 characters: a longer hex-and-colon run holds none, and walking back further
        # would make a long run quadratic
        start, floor = anchor, max(0, anchor - 45)
        while start > floor and text[start - 1] in _HEX_OR_COLON:
            start -= 1
        m = _IPV6_RE.match(text, start)
        if m:
            last_end = m.end()
            yield m


def _find_ipv6(text: str, allow: Allowlist) -> Iterator[Span]:
    for m in _ipv6_candidates(text):
        address = m.group().split("%", 1)[0]
        if address.count(":") < 2 or _looks_like_code_not_ipv6(address):
            continue
        try:
            ip = ipaddress.IPv6Address(address)
        except ValueError:
            continue
        if not allow.allows_ip(ip):
            yield Span(m.start(), m.end(), "IP_ADDRESS", m.group())


# ------------------------------------------------------------------------------------------ cards, IBAN and SSN

# 13-19 digits with optional single spaces or dashes, not part of a longer number or a decimal
_CARD_SEPARATOR = re.compile(r"[ -]")
_CARD_RE = re.compile(r"\d(?<![\w.,]\d)(?<!\d[ -]\d)(?:[ -]?\d){12,18}(?![ -]?\d)(?![.,]\d)(?!\w)")


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _card_brand_ok(d: str) -> bool:
    """A known issuer (IIN) prefix with a length that issuer uses; unknown prefixes are not cards."""
    n, p2, p3, p4, p6 = len(d), int(d[:2]), int(d[:3]), int(d[:4]), int(d[:6])
    if d[0] == "4":
        return n in (13, 16, 19)  # Visa
    if 51 <= p2 <= 55 or 2221 <= p4 <= 2720:
        return n == 16  # Mastercard
    if p2 in (34, 37):
        return n == 15  # American Express
    if p4 == 6011 or 644 <= p3 <= 649 or p2 == 65 or 622126 <= p6 <= 622925:
        return 16 <= n <= 19  # Discover
    if 3528 <= p4 <= 3589:
        return 16 <= n <= 19  # JCB
    if 300 <= p3 <= 305 or p4 == 3095 or p2 in (36, 38, 39):
        return 14 <= n <= 19  # Diners Club
    if p2 in (62, 81):
        return 16 <= n <= 19  # UnionPay
    if 2200 <= p4 <= 2204:
        return 16 <= n <= 19  # Mir
    if p4 in (5018, 5020, 5038, 5893, 6304, 6759, 6761, 6762, 6763):
        return 13 <= n <= 19  # Maestro
    return False


def _find_cards(text: str, runs: list[re.Match[str]]) -> Iterator[Span]:
    """Cards inside the number runs (a card is one: 13+ digits with single spaces or dashes)."""
    long_runs = (r for r in runs if r.end() - r.start() >= 13)
    for run in long_runs:
        # two characters past the run let the lookaheads see a ",5" decimal tail the run stops before
        for m in _CARD_RE.finditer(text, run.start(), min(len(text), run.end() + 2)):
            groups = [len(g) for g in _CARD_SEPARATOR.split(m.group())]
            # printed cards group by four (Amex and Diners 4-6-5 / 4-6-4); other layouts are ids such as UUIDs
            if len(groups) > 1 and groups[:-1] != [4] * (len(groups) - 1) and groups[:2] != [4, 6]:
                continue
            digits = m.group().replace(" ", "").replace("-", "")
            if _card_brand_ok(digits) and _luhn_ok(digits):
                yield Span(m.start(), m.end(), "CREDIT_CARD", m.group())


# IBAN lengths per country (SWIFT IBAN registry)
_IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BI": 27, "BR": 29,
    "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28, "EE": 20, "EG": 29,
    "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28,
    "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28,
    "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20,
    "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29, "PT": 25,
    "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27,
    "SO": 23, "ST": 25, "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip
_IBAN_START = re.compile(r"([A-Z](?<![A-Za-z0-9][A-Z])[A-Z])\d{2}(?=[ ]?[A-Z0-9])")


def _iban_checksum_ok(iban: str) -> bool:
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def _find_ibans(text: str) -> Iterator[Span]:
    for m in _IBAN_START.finditer(text):
        length = _IBAN_LENGTHS.get(m.group(1))
        if length is None:
            continue
        # walk exactly the country's length: printed IBANs group by four with single spaces, electronic ones
        # have none, and stopping at the length keeps a following uppercase word out of the span
        chars, pos = [m.group()], m.end()
        need = length - 4
        while need and pos < len(text):
            ch = text[pos]
            if ch == " " and pos + 1 < len(text) and text[pos + 1] != " ":
                pos += 1
                continue
            if not ("A" <= ch <= "Z" or "0" <= ch <= "9"):
                break
            chars.append(ch)
            need -= 1
            pos += 1
        if need or (pos < len(text) and text[pos].isalnum()):
            continue
        if _iban_checksum_ok("".join(chars)):
            yield Span(m.start(), pos, "IBAN", text[m.start() : pos])


# anchored on the first dash (a literal the engine jumps to) with the area digits checked behind it
_SSN_RE = re.compile(r"-(?<=(?<![\w-])\d{3}-)\d\d-\d{4}(?![\w-])")


def _find_ssns(text: str) -> Iterator[Span]:
    for m in _SSN_RE.finditer(text):
        start = m.start() - 3
        area, group, serial = text[start : m.end()].split("-")
        # the SSA never issues area 000, 666 or 900-999, group 00, or serial 0000
        if area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000":
            yield Span(start, m.end(), "US_SSN", text[start : m.end()])


# ------------------------------------------------------------------------------------------------------ secrets


def _looks_random(body: str) -> bool:
    """Real tokens are random; documentation's "ghp_" + one repeated letter, or "sk-...aaaa", are not."""
    return len(set(body)) >= 8


def _mixed(body: str) -> bool:
    return any(c.isupper() for c in body) and any(c.islower() for c in body) and any(c.isdigit() for c in body)


# Secret patterns start with their literal prefix and check the character before it afterwards, so the regex
# engine can jump from one occurrence of the prefix to the next.
_AWS_KEY_RE = re.compile(r"A[KS]IA(?<![A-Za-z0-9]A[KS]IA)[A-Z0-9]{16}(?![A-Za-z0-9])")
_AWS_SECRET_RE = re.compile(r"(?<![A-Za-z0-9/+])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")
_AWS_CONTEXT = re.compile(r"(?i)aws|secret")
_HEX = frozenset("0123456789abcdefABCDEF")
_GITHUB_RE = re.compile(
    r"g(?<![A-Za-z0-9_]g)(?:h[pousr]_[A-Za-z0-9]{36,251}|ithub_pat_[A-Za-z0-9_]{50,244})(?![A-Za-z0-9_])"
)
_SLACK_RE = re.compile(r"xox(?<![A-Za-z0-9-]xox)[abeoprs]-[A-Za-z0-9-]{10,250}(?![A-Za-z0-9-])")
_SLACK_HOOK_RE = re.compile(r"hooks\.slack\.com/(?:services|workflows)/([A-Za-z0-9_/]{20,120})")
_OPENAI_RE = re.compile(r"sk-(?<![A-Za-z0-9_-]sk-)[A-Za-z0-9_-]{20,250}(?![A-Za-z0-9_-])")
_JWT_RE = re.compile(r"eyJ(?<![A-Za-z0-9_-]eyJ)[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*(?![A-Za-z0-9_-])")
_PEM_BEGIN = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")
_PEM_END = re.compile(r"-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")
# A truncated block (no END line): the whole lines of base64 or headers that follow, with real or escaped
# newlines; a line of prose ("and the rest") is not base64 as a whole, so the tail stops before it
_PEM_TAIL = re.compile(r"(?:(?:\r?\n|\\r?\\n)(?:[A-Za-z0-9+/=]+(?=[\r\n\"']|\\[rn]|$)|[A-Za-z-]+: [^\n\\]*|))*")
_URL_PASSWORD_RE = re.compile(
    r"://(?<=[A-Za-z0-9]://)[^\s:@/?#\[\]\"'`]*:"
    # greedy up to the last "@" of the authority: an unencoded "@" inside a password is common in hand-written URLs
    r"([^\s/?#\"'`]+)@(?=[^\s@/?#\"'`])"
)
_TEMPLATE_VALUE = re.compile(r"\$\{?\w+\}?|\{\{.*\}\}|%\(\w+\)s|<[^<>]*>|\[[^\]]*\]|\*+|x+|X+|\.\.\.|…")


def _find_secrets(text: str) -> Iterator[Span]:
    if "AKIA" in text or "ASIA" in text:
        for m in _AWS_KEY_RE.finditer(text):
            yield Span(m.start(), m.end(), "AWS_ACCESS_KEY", m.group())
    if any(k in text for k in ("aws", "AWS", "Aws", "ecret", "ECRET")):  # substring tests beat a (?i) regex scan
        for m in _AWS_SECRET_RE.finditer(text):
            value = m.group()
            # only next to an aws/secret keyword, and never a hex digest (git SHA-1s are 40 hex characters)
            if (
                _mixed(value)
                and not set(value) <= _HEX
                and _AWS_CONTEXT.search(text, max(0, m.start() - 100), m.start())
            ):
                yield Span(m.start(), m.end(), "AWS_SECRET_KEY", value)
    if "gh" in text or "github_pat_" in text:
        for m in _GITHUB_RE.finditer(text):
            if _looks_random(m.group().partition("_")[2]):
                yield Span(m.start(), m.end(), "GITHUB_TOKEN", m.group())
    if "xox" in text:
        for m in _SLACK_RE.finditer(text):
            # real Slack tokens carry numeric team/user ids; "xoxb-your-token-here" does not
            if any(c.isdigit() for c in m.group()) and _looks_random(m.group()[5:]):
                yield Span(m.start(), m.end(), "SLACK_TOKEN", m.group())
    if "hooks.slack.com" in text:  # an incoming-webhook URL: its path is the credential
        for m in _SLACK_HOOK_RE.finditer(text):
            yield Span(m.start(1), m.end(1), "SLACK_TOKEN", m.group(1))
    if "sk-" in text:
        for m in _OPENAI_RE.finditer(text):
            body = m.group()[3:]
            if _mixed(body) and _looks_random(body):
                yield Span(m.start(), m.end(), "OPENAI_KEY", m.group())
    if "eyJ" in text:
        for m in _JWT_RE.finditer(text):
            if _jwt_header_ok(m.group().split(".", 1)[0]):
                yield Span(m.start(), m.end(), "JWT", m.group())
    if "PRIVATE KEY" in text:
        yield from _find_pem_blocks(text)
    if "://" in text and "@" in text:
        for m in _URL_PASSWORD_RE.finditer(text):
            password = m.group(1)
            if not _TEMPLATE_VALUE.fullmatch(password):
                yield Span(m.start(1), m.end(1), "URL_PASSWORD", password)


def _jwt_header_ok(part: str) -> bool:
    """A JWT's first part is base64url JSON with an "alg" member; other base64 runs starting eyJ are not JWTs."""
    try:
        header = orjson.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (binascii.Error, ValueError):
        return False
    return isinstance(header, dict) and "alg" in header


def _find_pem_blocks(text: str) -> Iterator[Span]:
    begins = list(_PEM_BEGIN.finditer(text))
    for i, begin in enumerate(begins):
        limit = begins[i + 1].start() if i + 1 < len(begins) else len(text)
        end = _PEM_END.search(text, begin.end(), limit)
        stop = end.end() if end else _PEM_TAIL.match(text, begin.end()).end()
        if end is None:  # the tail may end on blank or whitespace-only lines; they are not part of the key
            stop = begin.end() + len(text[begin.end() : stop].rstrip())
        yield Span(begin.start(), stop, "PRIVATE_KEY", text[begin.start() : stop])


# --------------------------------------------------------------------------------------------------- find, redact

_DIGIT = re.compile(r"\d")


def find_pii(text: str, allow: Allowlist = DEFAULT_ALLOWLIST, region: str = "US") -> list[Span]:
    """Every span of personal data or secret in `text`, sorted by start, non-overlapping.

    `region` is the default region of phone numbers written without a country code; international numbers with
    "+" are found whatever it is. Deterministic: overlaps go to the higher-priority type, then the earlier and
    longer span.
    """
    if not text:
        return []
    found: list[Span] = [*_find_emails(text, allow), *_find_secrets(text), *_find_ipv6(text, allow)]
    if _DIGIT.search(text):
        runs = list(_NUMBER_RUN.finditer(text))
        found += [
            *_find_ipv4(text, allow),
            *_find_cards(text, runs),
            *_find_ibans(text),
            *_find_ssns(text),
            *_find_phones(text, runs, allow, region),
        ]
    if not found:
        return []
    # a placeholder is already redacted; a candidate touching one would re-detect or widen it
    taken = [(m.start(), m.end()) for m in PLACEHOLDER_RE.finditer(text)] if "<" in text else []
    starts = [s for s, _ in taken]
    chosen: list[Span] = []
    for span in sorted(found, key=lambda s: (_PRIORITY[s.type], s.start, s.start - s.end)):
        if allow.allows_literal(span.text):
            continue
        i = bisect.bisect_left(starts, span.start)
        if (i and taken[i - 1][1] > span.start) or (i < len(taken) and taken[i][0] < span.end):
            continue
        taken.insert(i, (span.start, span.end))
        starts.insert(i, span.start)
        chosen.append(span)
    return sorted(chosen, key=lambda s: s.start)


def redact(text: str, allow: Allowlist = DEFAULT_ALLOWLIST, region: str = "US") -> tuple[str, Counter[str]]:
    """`text` with every span replaced by its placeholder, and the number of spans redacted per type.

    Repeats until nothing is found, so the result passes a residual scan by construction; it terminates because
    each round turns at least one character of non-placeholder text into a placeholder, which is never matched.
    """
    counts: Counter[str] = Counter()
    spans = find_pii(text, allow, region)
    while spans:
        parts, pos = [], 0
        for span in spans:
            parts += [text[pos : span.start], placeholder(span.type)]
            pos = span.end
            counts[span.type] += 1
        parts.append(text[pos:])
        text = "".join(parts)
        spans = find_pii(text, allow, region)
    return text, counts
