"""IP addresses: dotted quads that are not versions, and IPv6 addresses that are not code."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator

from ptdata.silver.pii.allowlist import Allowlist
from ptdata.silver.pii.types import Span

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


def find_ipv4(text: str, allow: Allowlist) -> Iterator[Span]:
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


def find_ipv6(text: str, allow: Allowlist) -> Iterator[Span]:
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
