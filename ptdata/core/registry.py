"""A registry of named entries (the regimes, the input shapes): one home each, extended by registering."""

from __future__ import annotations

from typing import Generic, Protocol, TypeVar


class Named(Protocol):
    @property
    def name(self) -> str: ...


T = TypeVar("T", bound=Named)


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.entries: dict[str, T] = {}

    def register(self, entry: T) -> T:
        if entry.name in self.entries:
            raise ValueError(f"{self.kind} {entry.name!r} is registered already")
        self.entries[entry.name] = entry
        return entry

    def get(self, name: str) -> T:
        """The entry `name`; a ValueError naming the registered ones otherwise."""
        try:
            return self.entries[name]
        except KeyError:
            raise ValueError(f"unknown {self.kind} {name!r}; expected {self.listed()}") from None

    def names(self) -> tuple[str, ...]:
        return tuple(self.entries)

    def listed(self) -> str:
        """The registered names as a config error lists them: 'sft', 'preference', 'rlvr' or 'text'."""
        quoted = [f"'{n}'" for n in self.entries]
        return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"
