"""Typed, frozen dataclasses built from what users write (YAML mappings): the one validator of the project.

`build(cls, values)` checks every key against the dataclass's fields (unknown keys are refused with the
closest valid one; a field without a default is required, and absent, null or empty counts as missing),
coerces each value to its annotation (bool, int, float, str, `Text`, `X | None`, Literal, fixed and
variable tuples, nested dataclasses), checks the range declared beside a field (`ranged(...)`), and the
class's cross-field `RULES`. What is wrong is a `Problem` (its kind, the key, the value, what the key must
be); each document words it its own way (`say=`), and the error class is the document's (`error=`).
params.yaml (`vocalsep.config`) takes the default wording: the dotted key and what is allowed. The corpus
spec (`vocalsep.corpus.spec`) and the sources manifests (`vocalsep.sources`) word it by entry and field.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, NewType


class ParamsError(ValueError):
    """A parameter file that does not fit the schema."""


Rules = tuple[tuple[str, Callable[[Any], bool], str], ...]  # (key, holds(section), what it must be)
Text = NewType("Text", str)  # a str that also takes a YAML number as its text (a title like 1984, a version 2.0)
Kind = Literal["unknown", "missing", "type", "choice", "range", "rule"]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a mapping: `names` in the mapping at dotted path `at` ("" at the top, "groups[0]")."""

    kind: Kind
    at: str
    names: tuple[str, ...]
    value: Any = None
    must: str = ""  # what the (first) key must be: "an integer", ">= 0", the field's own `must`, a rule's text
    allowed: tuple[str, ...] = ()  # the mapping's keys (unknown, missing) or the allowed values (choice)
    message: str = ""  # params.yaml's wording: the dotted key and what is allowed
    closest: tuple[tuple[str, str], ...] = ()  # (unknown key, the closest allowed key) where one is close

    def words(self, label: str) -> str:
        """The wording the corpus spec and the manifests share, for an unknown key, a wrong choice or a wrong
        type or range: `label` names the key as the document does ("role", "field 'role'")."""
        if self.kind == "unknown":
            return f"unknown field(s) {', '.join(self.names)}; allowed: {', '.join(self.allowed)}{self.did_you_mean()}"
        if self.kind == "choice":
            return f"{label} is {self.value!r}; use one of {', '.join(self.allowed)}"
        return f"{label} must be {self.must}, got {self.value!r}"

    def did_you_mean(self) -> str:
        """A suffix naming the closest allowed keys ('; did you mean role?'), or an empty string."""
        return f"; did you mean {', '.join(close for _, close in self.closest)}?" if self.closest else ""

    @property
    def key(self) -> str:
        return f"{self.at}.{self.names[0]}" if self.at else self.names[0]


class _Found(Exception):
    def __init__(self, problem: Problem):
        super().__init__(problem.message)
        self.problem = problem


def _fail(kind: Kind, key: str, message: str, value: Any = None, must: str = "", allowed: tuple = ()) -> typing.NoReturn:
    at, _, name = key.rpartition(".")
    raise _Found(Problem(kind, at, (name,), value, must, tuple(map(str, allowed)), message))


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
        if value is None:
            return
        if isinstance(value, tuple):
            if len(value) == 2 and value[0] > value[1]:
                _fail("range", key, f"{key}: must be [low, high] with low <= high, got {list(value)}", value,
                      "[low, high] with low <= high")
            for i, item in enumerate(value):
                self.check(item, f"{key}[{i}]")
        elif not self.holds(value):
            _fail("range", key, f"{key}: {self.describe()}, got {value!r}", value, self.describe()[len("must be "):])


def ranged(default: Any, *, ge: float | None = None, gt: float | None = None, le: float | None = None,
           lt: float | None = None, unit: str = "", must: str = "") -> Any:
    """A field with its allowed range beside it: `lr: float = ranged(1e-3, gt=0)`; `must` words it for users."""
    return field(default=default, metadata={"range": Range(ge, gt, le, lt, unit), **({"must": must} if must else {})})


def must(text: str, default: Any = dataclasses.MISSING) -> Any:
    """A field that says what it must be, for the document's wording: `title: Text | None = must("text", None)`."""
    return field(default=default, metadata={"must": text})


def _coerce(value: Any, hint: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    if origin is Literal:
        allowed = typing.get_args(hint)
        if value not in allowed:
            _fail("choice", key, f"{key}: {value!r} is not allowed; use one of {', '.join(map(repr, allowed))}",
                  value, f"one of {', '.join(map(str, allowed))}", allowed)
        return value
    if origin is tuple and typing.get_args(hint)[1:] == (Ellipsis,):
        if not isinstance(value, (list, tuple)):
            _fail("type", key, f"{key}: expected a list, got {value!r}", value, "a list")
        return tuple(_coerce(v, typing.get_args(hint)[0], f"{key}[{i}]") for i, v in enumerate(value))
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            _fail("type", key, f"{key}: expected a list of {len(args)} numbers, got {value!r}", value,
                  f"a list of {len(args)} numbers")
        return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if origin in (types.UnionType, typing.Union):
        rest = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(rest) != 1 or len(typing.get_args(hint)) != 2:
            _fail("type", key, f"{key}: only X | None unions are supported in the schema")
        return None if value is None else _coerce(value, rest[0], key)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            _fail("type", key, f"{key}: expected a mapping of {hint.__name__} fields, got {value!r}", value,
                  f"a mapping of {hint.__name__} fields")
        return _build(hint, value, key)
    return _coerce_scalar(value, hint, key)


_EXPECTED = {bool: "true or false", int: "an integer", float: "a number", str: "a string", Text: "text"}


def _coerce_scalar(value: Any, hint: Any, key: str) -> Any:
    if hint not in _EXPECTED:
        _fail("type", key, f"{key}: unsupported schema type {hint!r}")
    if hint is float and isinstance(value, str) and _is_number(value):  # YAML 1.1 reads 1e-4 as a string
        _fail("type", key, f"{key}: expected a number, got the string {value!r}; "
                           f"write it as {float(value)!r} (YAML needs a dot in 1.0e-4)", value, "a number")
    fits = {bool: isinstance(value, bool), int: isinstance(value, int) and not isinstance(value, bool),
            float: isinstance(value, (int, float)) and not isinstance(value, bool), str: isinstance(value, str),
            Text: isinstance(value, (str, int, float)) and not isinstance(value, bool)}[hint]
    if not fits:
        _fail("type", key, f"{key}: expected {_EXPECTED[hint]}, got {value!r}", value, _EXPECTED[hint])
    return float(value) if hint is float else str(value) if hint is Text else value


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _missing(values: dict, name: str, hint: Any) -> bool:
    """Absent, empty, or null where null is no allowed choice (a null Literal is worded as a wrong choice)."""
    value = values.get(name)
    return name not in values or value in ("", [], (), {}) or (value is None and typing.get_origin(hint) is not Literal)


def _check_keys(cls: type, values: dict, prefix: str, hints: dict) -> None:
    fields = [f for f in dataclasses.fields(cls) if f.init]
    names = [f.name for f in fields]
    where = f"{prefix}." if prefix else ""
    unknown = sorted(map(str, set(values) - set(names)))
    if unknown:
        closest = tuple((u, close[0]) for u in unknown if (close := difflib.get_close_matches(u, names, n=1, cutoff=0.6)))
        hints_ = [f"{where}{u} -> did you mean {where}{close}?" for u, close in closest]
        message = (f"unknown key(s) {', '.join(where + str(u) for u in unknown)}"
                   f"{' (' + '; '.join(hints_) + ')' if hints_ else ''}; "
                   f"allowed keys{' in ' + prefix if prefix else ''}: {', '.join(names)}")
        raise _Found(Problem("unknown", prefix, tuple(unknown), allowed=tuple(names), message=message, closest=closest))
    missing = tuple(f.name for f in fields if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
                    and _missing(values, f.name, hints[f.name]))
    if missing:
        first = next(f for f in fields if f.name == missing[0])
        raise _Found(Problem("missing", prefix, missing, must=first.metadata.get("must", ""), allowed=tuple(names),
                             message=f"missing key(s) {', '.join(where + m for m in missing)}; give a value"))


class _Fields(dict):
    """A rule's text reads the built object's fields and properties: "{low} must be below {high}"."""

    def __init__(self, built: Any):
        super().__init__()
        self.built = built

    def __missing__(self, name: str) -> Any:
        return getattr(self.built, name)


def _build(cls: type, values: dict, prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    _check_keys(cls, values, prefix, hints)
    where = f"{prefix}." if prefix else ""
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.init and f.name in values:
            try:
                kwargs[f.name] = _coerce(values[f.name], hints[f.name], where + f.name)
                if "range" in f.metadata:
                    f.metadata["range"].check(kwargs[f.name], where + f.name)
            except _Found as found:
                if "must" in f.metadata and found.problem.key == where + f.name and found.problem.kind != "choice":
                    raise _Found(dataclasses.replace(found.problem, must=f.metadata["must"])) from None
                raise
    built = cls(**kwargs)
    for name, holds, rule in getattr(cls, "RULES", ()):
        if not holds(built):
            text = rule.format_map(_Fields(built))
            _fail("rule", where + name, f"{where}{name}: {text}", getattr(built, name, None), text)
    return built


def build(cls: type, values: dict, prefix: str = "", *, say: Callable[[Problem], str] | None = None,
          error: Callable[[str], Exception] = ParamsError) -> Any:
    """`cls` built from `values`; what is wrong raises `error(say(problem))` (params.yaml's wording by default)."""
    try:
        return _build(cls, values, prefix)
    except _Found as found:
        raise error(say(found.problem) if say else found.problem.message) from None
