"""Config values converted by the type their dataclass field declares.

One system for every config dataclass: the agents' hyperparameters
(:class:`distrl_agents.agents.hparams.AgentConfig`) and the run's sections
(:mod:`distrl_agents.training.config`). Values arrive from YAML, the command line and Python:
YAML gives ints where floats are meant and lists where tuples are, PyYAML reads ``5e-5`` as a
string, the command line may give ``"true"``. :func:`convert` turns each into the declared type
(``typing.get_type_hints`` of the dataclass), or raises :class:`ConversionError` naming the
field, what it must be and the value it got.

Declared types understood: ``bool``, ``int``, ``float``, ``str``, ``Any``, ``X | None``, unions
of these (``bool | str``: the first member that takes the value as it is, else the first that
converts it), ``Literal[...]``, ``tuple[X, ...]`` / ``tuple[X, Y]`` / ``Sequence[X]`` (a
tuple), ``list[X]`` and ``dict[K, V]``.
"""

from __future__ import annotations

import dataclasses
import functools
import numbers
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["ConversionError", "convert", "convert_fields", "field_types"]


class ConversionError(ValueError):
    """A value that the declared type of field ``field`` cannot take."""

    def __init__(self, field: str, expected: str, value: Any) -> None:
        self.field, self.expected, self.value = field, expected, value
        super().__init__(f"{field} must be {expected}, got {value!r}.")


@functools.cache
def field_types(klass: type) -> dict[str, Any]:
    """The declared type of each dataclass field of ``klass`` (string annotations resolved)."""
    hints = typing.get_type_hints(klass)
    return {f.name: hints[f.name] for f in dataclasses.fields(klass)}


def convert_fields(klass: type, values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``values`` (a subset of ``klass``'s fields) each converted to its field's declared type;
    errors name the field as ``prefix + name``."""
    declared = field_types(klass)
    return {name: convert(value, declared[name], prefix + name) for name, value in values.items()}


_TRUE = ("true", "yes", "on")
_FALSE = ("false", "no", "off")
_NULL = ("null", "none", "~")


def convert(value: Any, declared: Any, field: str) -> Any:
    """``value`` as the type ``declared`` (a resolved annotation) of field ``field``."""
    if declared is Any:
        return value
    origin = typing.get_origin(declared)
    if origin is typing.Union or origin is types.UnionType:
        return _union(value, typing.get_args(declared), field)
    if origin is typing.Literal:
        choices = typing.get_args(declared)
        if value in choices:
            return value
        raise ConversionError(field, f"one of {list(choices)}", value)
    if origin is tuple or origin is Sequence:
        args = typing.get_args(declared)
        return _tuple(value, (args[0], ...) if origin is Sequence else args, field)
    if origin is list:
        if isinstance(value, list | tuple):
            (item,) = typing.get_args(declared) or (Any,)
            return [convert(v, item, f"{field}[{i}]") for i, v in enumerate(value)]
        raise ConversionError(field, "a list", value)
    if origin is dict or declared is dict:
        if isinstance(value, Mapping):
            return dict(value)
        raise ConversionError(field, "a mapping", value)
    scalar = _SCALARS.get(declared)
    if scalar is None:
        raise TypeError(f"{field}: no conversion for the declared type {declared!r}")
    return scalar(value, field)


def _bool(value: Any, field: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    if isinstance(value, numbers.Integral) and value in (0, 1):
        return bool(value)
    raise ConversionError(field, "true or false", value)


def _int(value: Any, field: str) -> int:
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            try:
                value = float(text)  # 1e6, 50000.0
            except ValueError:
                raise ConversionError(field, "an integer", value) from None
    if isinstance(value, bool):
        raise ConversionError(field, "an integer", value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real) and float(value).is_integer():
        return int(float(value))
    raise ConversionError(field, "an integer", value)


def _float(value: Any, field: str) -> float:
    if isinstance(value, str):
        try:
            return float(value.strip())  # PyYAML reads 5e-5 (no dot) as a string
        except ValueError:
            raise ConversionError(field, "a number", value) from None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConversionError(field, "a number", value)
    return float(value)


def _str(value: Any, field: str) -> str:
    if isinstance(value, bool):
        return str(value).lower()  # YAML reads `true` for a tri-state such as channels_last
    if isinstance(value, str):
        return value
    raise ConversionError(field, "a string", value)


_SCALARS: dict[Any, Any] = {bool: _bool, int: _int, float: _float, str: _str}


def _union(value: Any, members: tuple[Any, ...], field: str) -> Any:
    if type(None) in members:
        if value is None:
            return None
        rest = tuple(m for m in members if m is not type(None))
        if str not in rest and isinstance(value, str) and value.strip().lower() in _NULL:
            return None
        if len(rest) == 1:
            try:
                return convert(value, rest[0], field)
            except ConversionError as exc:
                raise ConversionError(field, f"{exc.expected} or null", value) from None
        members = rest
    for member in members:  # a value already of a member's type stays what it is
        if isinstance(member, type) and type(value) is member:
            return value
    for member in members:
        try:
            return convert(value, member, field)
        except ConversionError:
            continue
    names = " or ".join(getattr(m, "__name__", str(m)) for m in members)
    raise ConversionError(field, f"a value of type {names}", value)


def _tuple(value: Any, items: tuple[Any, ...], field: str) -> tuple[Any, ...]:
    if not isinstance(value, list | tuple):
        raise ConversionError(field, "a list", value)
    if len(items) == 2 and items[1] is Ellipsis:
        return tuple(convert(v, items[0], f"{field}[{i}]") for i, v in enumerate(value))
    if items and len(value) != len(items):
        raise ConversionError(field, f"a list of {len(items)} values", value)
    return tuple(
        convert(v, items[i] if items else Any, f"{field}[{i}]") for i, v in enumerate(value)
    )
