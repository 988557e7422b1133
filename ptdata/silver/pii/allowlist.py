"""What is not PII for a source: domains, networks, literals and fictional phone numbers, over the defaults."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

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
