"""Typed, frozen dataclasses built from what users write (YAML mappings): the one validator of the project.

`build(cls, values)` checks every key against the dataclass's fields (unknown keys are refused with the
closest valid one), coerces each value to its annotation (bool, int, float, str, Literal, fixed and
variable tuples, nested dataclasses), checks the range declared beside a field (`ranged(...)`), and the
class's cross-field `RULES`. Every error is a `ParamsError` that names the dotted key and what is allowed.
`vocalsep.config` declares params.yaml with it.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal


class ParamsError(ValueError):
    """A parameter file that does not fit the schema."""


Rules = tuple[tuple[str, Callable[[Any], bool], str], ...]  # (key, holds(section), what it must be)


@dataclass(frozen=True)
class Range:
    """The allowed range of a number (or of each number of a pair, which must also be ordered low <= high)."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    unit: str = ""

    def holds(self, value: float) -> bool:
        return ((self.ge is None or value >= self.ge) and (self.gt is None or value > self.gt)
                and (self.le is None or value <= self.le) and (self.lt is None or value < self.lt))

    def describe(self) -> str:
        bounds = [f"{op} {bound:g}" for op, bound in ((">=", self.ge), (">", self.gt), ("<=", self.le), ("<", self.lt))
                  if bound is not None]
        return f"must be {' and '.join(bounds)}{' ' + self.unit if self.unit else ''}"

    def check(self, value: Any, key: str) -> None:
        if isinstance(value, tuple):
            if len(value) == 2 and value[0] > value[1]:
                raise ParamsError(f"{key}: must be [low, high] with low <= high, got {list(value)}")
            for i, item in enumerate(value):
                self.check(item, f"{key}[{i}]")
        elif not self.holds(value):
            raise ParamsError(f"{key}: {self.describe()}, got {value!r}")


def ranged(default: Any, *, ge: float | None = None, gt: float | None = None, le: float | None = None,
           lt: float | None = None, unit: str = "") -> Any:
    """A field with its allowed range beside it: `lr: float = ranged(1e-3, gt=0)`."""
    return field(default=default, metadata={"range": Range(ge, gt, le, lt, unit)})


def _coerce(value: Any, hint: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    if origin is Literal:
        allowed = typing.get_args(hint)
        if value not in allowed:
            raise ParamsError(f"{key}: {value!r} is not allowed; use one of {', '.join(map(repr, allowed))}")
        return value
    if origin is tuple and typing.get_args(hint)[1:] == (Ellipsis,):
        if not isinstance(value, (list, tuple)):
            raise ParamsError(f"{key}: expected a list, got {value!r}")
        return tuple(_coerce(v, typing.get_args(hint)[0], f"{key}[{i}]") for i, v in enumerate(value))
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ParamsError(f"{key}: expected a list of {len(args)} numbers, got {value!r}")
        return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if origin in (types.UnionType, typing.Union):
        raise ParamsError(f"{key}: union types are not supported in the schema")
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ParamsError(f"{key}: expected a mapping of {hint.__name__} fields, got {value!r}")
        return build(hint, value, key)
    return _coerce_scalar(value, hint, key)


def _coerce_scalar(value: Any, hint: Any, key: str) -> Any:
    if hint is bool:
        if not isinstance(value, bool):
            raise ParamsError(f"{key}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamsError(f"{key}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, str) and _is_number(value):  # YAML 1.1 reads 1e-4 as a string
            raise ParamsError(f"{key}: expected a number, got the string {value!r}; "
                              f"write it as {float(value)!r} (YAML needs a dot in 1.0e-4)")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamsError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ParamsError(f"{key}: expected a string, got {value!r}")
        return value
    raise ParamsError(f"{key}: unsupported schema type {hint!r}")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def build(cls: type, values: dict, prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        where = f"{prefix}." if prefix else ""
        hints_ = [f"{where}{u} -> did you mean {where}{close[0]}?" for u in unknown
                  if (close := difflib.get_close_matches(str(u), names, n=1, cutoff=0.6))]
        raise ParamsError(
            f"unknown key(s) {', '.join(where + str(u) for u in unknown)}"
            f"{' (' + '; '.join(hints_) + ')' if hints_ else ''}; "
            f"allowed keys{' in ' + prefix if prefix else ''}: {', '.join(names)}"
        )
    where = f"{prefix}." if prefix else ""
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in values:
            kwargs[f.name] = _coerce(values[f.name], hints[f.name], where + f.name)
            if "range" in f.metadata:
                f.metadata["range"].check(kwargs[f.name], where + f.name)
    built = cls(**kwargs)
    for name, holds, must in getattr(cls, "RULES", ()):
        if not holds(built):
            raise ParamsError(f"{where}{name}: {must.format_map(vars(built))}")
    return built
