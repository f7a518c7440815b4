"""Typed configuration objects: one small frozen dataclass per stage.

Each stage's configuration is a frozen dataclass that inherits :class:`StageConfig`. It
validates its values when created and :meth:`StageConfig.from_dict` rejects unknown keys,
so a typo in an option is an error instead of a silently ignored setting.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, TypeVar

import numpy as np

from edgetrack.runtime.errors import ConfigError

C = TypeVar("C", bound="StageConfig")


@dataclasses.dataclass(frozen=True)
class StageConfig:
    """Base class: validation hook and construction from a mapping."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` if a value is out of range. Subclasses extend this."""

    @classmethod
    def from_dict(cls: type[C], values: Mapping[str, Any] | None = None, **overrides: Any) -> C:
        """Build the configuration from a mapping (and keyword overrides); unknown keys are errors."""
        merged = dict(values or {})
        merged.update(overrides)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(merged) - known)
        if unknown:
            raise ConfigError(
                f"{cls.__name__}: unknown option(s) {', '.join(map(repr, unknown))}; "
                f"known options are {', '.join(sorted(known))}"
            )
        try:
            return cls(**merged)
        except TypeError as exc:  # wrong types caught by dataclass init
            raise ConfigError(f"{cls.__name__}: {exc}") from None

    def replace(self: C, **changes: Any) -> C:
        """Return a copy with some values changed (unknown keys are errors)."""
        return type(self).from_dict(dataclasses.asdict(self), **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def require(condition: bool, message: str) -> None:
    """Raise :class:`ConfigError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise ConfigError(message)


def is_int(value: Any) -> bool:
    """True for a Python or NumPy integer (booleans excluded)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def is_real(value: Any) -> bool:
    """True for a Python or NumPy integer or float (booleans excluded; NaN and inf included)."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
