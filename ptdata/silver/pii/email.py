"""E-mail addresses: a local part, a domain whose top-level domain is real, not a URL's userinfo or a git remote."""

from __future__ import annotations

import re
import string
from collections.abc import Iterator

from ptdata.silver.pii.allowlist import Allowlist
from ptdata.silver.pii.types import Span

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


def find_emails(text: str, allow: Allowlist) -> Iterator[Span]:
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
