"""Secrets: cloud and API keys, tokens, JWTs, private key blocks and passwords in URLs."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator

import orjson

from ptdata.silver.pii.types import Span


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


def find_secrets(text: str) -> Iterator[Span]:
    if "AKIA" in text or "ASIA" in text:
        for m in _AWS_KEY_RE.finditer(text):
            yield Span(m.start(), m.end(), "AWS_ACCESS_KEY", m.group())
    # substring tests beat a (?i) regex scan, and written out they cost half of any() over a generator
    if "aws" in text or "AWS" in text or "Aws" in text or "ecret" in text or "ECRET" in text:
        for m in _AWS_SECRET_RE.finditer(text):
            value = m.group()
            # only next to an aws/secret keyword, and never a hex digest (git SHA-1s are 40 hex characters)
            if (
                _mixed(value)
                and not set(value) <= _HEX
                and _AWS_CONTEXT.search(text, max(0, m.start() - 100), m.start())
            ):
                yield Span(m.start(), m.end(), "AWS_SECRET_KEY", value)
    # what the pattern's literal starts need, not "gh" alone, which most English text has ("right", "though")
    if "ghp_" in text or "gho_" in text or "ghu_" in text or "ghs_" in text or "ghr_" in text or "github_pat_" in text:
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
