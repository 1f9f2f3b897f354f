"""Building a dataclass from a JSON dict, refusing keys that are not its fields."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, TypeVar

T = TypeVar("T")


def from_known_fields(cls: type[T], data: Mapping[str, Any], error: type[Exception] = ValueError) -> T:
    """``cls(**data)`` for the dataclass ``cls``; a key that is not one of its fields raises
    ``error`` naming the unknown keys and the known fields (a typo in a saved config)."""
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - known)
    if unknown:
        raise error(f"unknown {cls.__name__} fields {unknown}; known fields: {sorted(known)}")
    return cls(**data)
