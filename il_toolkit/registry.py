"""One small registry type; every registry in the toolkit is an instance of it.

Entries are either objects or lazy ``"module:attr"`` strings resolved on first use, so
registering a trainer or an expert never imports torch, MuJoCo or pygame. Duplicate keys are
refused, and an unknown key is answered with the list of known ones.
"""

from __future__ import annotations

import importlib
from typing import Any, Generic, Iterator, TypeVar

T = TypeVar("T")


class UnknownKeyError(KeyError):
    """A key that is not registered; the message lists the known keys."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class DuplicateKeyError(ValueError):
    """A key that is already registered."""


def _import_indirect(target: str) -> Any:
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"indirect entry must look like 'package.module:attr', got {target!r}")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


class Registry(Generic[T]):
    """A named mapping from string keys to values, resolved lazily.

    >>> r = Registry("example")
    >>> r.register("sqrt", indirect="math:sqrt")
    >>> r.get("sqrt")(4.0)
    2.0
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._entries: dict[str, T | str] = {}
        self._resolved: dict[str, T] = {}
        self._metadata: dict[str, dict[str, Any]] = {}

    def register(
        self,
        key: str,
        value: T | None = None,
        *,
        indirect: str | None = None,
        **metadata: Any,
    ) -> None:
        """Add ``key`` with either a ``value`` or an ``indirect`` ``"module:attr"`` target.

        Extra keyword arguments are stored as metadata (see :meth:`metadata`), readable
        without resolving the entry.
        """
        if (value is None) == (indirect is None):
            raise ValueError("register() takes exactly one of value= or indirect=")
        if key in self._entries:
            raise DuplicateKeyError(f"{self.name} registry already has {key!r}; pick another key")
        if indirect is not None:
            module_name, sep, attr = indirect.partition(":")
            if not (module_name and sep and attr):
                raise ValueError(f"indirect entry must look like 'package.module:attr', got {indirect!r}")
            self._entries[key] = indirect
        else:
            self._entries[key] = value  # type: ignore[assignment]
            self._resolved[key] = value  # type: ignore[assignment]
        self._metadata[key] = dict(metadata)

    def get(self, key: str) -> T:
        """The value for ``key``, importing it on first use."""
        if key not in self._entries:
            raise UnknownKeyError(self._unknown_message(key))
        if key not in self._resolved:
            self._resolved[key] = _import_indirect(self._entries[key])  # type: ignore[arg-type]
        return self._resolved[key]

    def metadata(self, key: str) -> dict[str, Any]:
        """The keyword metadata given at registration (never imports the entry)."""
        if key not in self._entries:
            raise UnknownKeyError(self._unknown_message(key))
        return dict(self._metadata[key])

    def keys(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, key: str) -> T:
        return self.get(key)

    def _unknown_message(self, key: str) -> str:
        known = ", ".join(self.keys()) or "(none registered)"
        return f"unknown {self.name} {key!r}; known {self.name} keys: {known}"

    def __repr__(self) -> str:
        return f"Registry({self.name!r}, keys={self.keys()})"
