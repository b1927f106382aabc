"""Type-driven conversion of configuration values into the Settings dataclasses.

Each value is converted by its annotated type (``int``, ``Path``, ``tuple[str, ...]``, a
nested settings dataclass, ``X | None``) unless a ``KeyRule`` (``keys.KEY_RULES``) gives its
own converter; every problem is recorded in the ``Context`` with its dotted key, so one
``ConfigError`` can list them all. Pure: nothing is read here.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from condaops.config.crosschecks import CROSS_CHECKS

NOT_KEYS = frozenset({"config_file"})  # Settings fields derived at load, never configured


class Invalid(Exception):
    """This value is wrong; the message says why (the caller adds the key)."""


class Skip(Exception):
    """This value cannot be built; its problems are already recorded."""


@dataclass(frozen=True)
class Problem:
    key: str | None
    message: str
    variable: str | None = None  # the CONDAOPS_* variable the value came from

    def detail(self) -> str:
        """The message, naming the variable the value came from."""
        return f"{self.message} (set by {self.variable})" if self.variable and self.key else self.message

    def text(self) -> str:
        """The line as ``ConfigError`` would put it after the file name."""
        return f"key '{self.key}': {self.detail()}" if self.key else self.detail()


@dataclass
class Context:
    base: Path  # relative paths resolve against this folder
    origins: Mapping[str, str]  # dotted key -> variable that set it
    problems: list[Problem]
    rules: Mapping[str, KeyRule]  # what particular keys accept beyond their type (keys.KEY_RULES)

    def report(self, key: str, message: str) -> None:
        head = key.split("[", 1)[0].split(".")
        variable = self.origins.get(".".join(head[:2])) or self.origins.get(head[0])
        self.problems.append(Problem(key, message, variable))

    def failed_under(self, prefix: str) -> bool:
        return any(p.key and (p.key + ".").startswith(prefix + ".") for p in self.problems)

    def path(self, text: str) -> Path:
        return Path(os.path.normpath(self.base / Path(text).expanduser()))

    def expected(self, tp: Any, key: str, value: Any) -> str:
        """``expected a <type>, got <value>`` for the value at ``key``."""
        name = type_name(tp, pattern_of(key), self.rules)
        return f"expected {'an' if name[0] in 'aeiou' else 'a'} {name}, got {describe(value)}"


Converter = Callable[[Any, Any, str, Context], Any]


@dataclass(frozen=True)
class KeyRule:
    """What a key accepts beyond its Python type. ``text`` is shown in the reference."""

    text: str = ""
    type: str | None = None  # name shown instead of the Python type's
    convert: Converter | None = None  # replaces the type-driven conversion
    check: Callable[[Any], str | None] | None = None  # a problem with the converted value


def settings_fields(cls: type) -> list[tuple[dataclasses.Field[Any], Any]]:
    """The configurable fields of a settings dataclass with their resolved types."""
    hints = typing.get_type_hints(cls)
    return [(f, hints[f.name]) for f in dataclasses.fields(cls) if f.name not in NOT_KEYS]


def type_name(tp: Any, pattern: str, rules: Mapping[str, KeyRule]) -> str:
    """How the reference and the messages name what ``pattern`` (``sources[].name``) takes."""
    inner, nullable = optional(tp)
    rule = rules.get(pattern)
    if rule and rule.type:
        name = rule.type
    elif dataclasses.is_dataclass(inner):
        name = "mapping"
    elif typing.get_origin(inner) is tuple:
        name = f"list of {type_name(typing.get_args(inner)[0], pattern + '[]', rules)}s"
    else:
        name = {bool: "boolean", int: "integer", float: "number", str: "string", Path: "path"}[inner]
    return f"{name} or null" if nullable else name


def pattern_of(key: str) -> str:
    """``sources[2].name`` -> ``sources[].name``: the form key rules are keyed by."""
    return re.sub(r"\[\d+\]", "[]", key)


def convert(value: Any, tp: Any, key: str, ctx: Context) -> Any:
    rule = ctx.rules.get(pattern_of(key), KeyRule())
    converted = (rule.convert or by_type)(value, tp, key, ctx)
    if rule.check and converted is not None and (problem := rule.check(converted)):
        raise Invalid(problem)
    return converted


def by_type(value: Any, tp: Any, key: str, ctx: Context) -> Any:
    inner, nullable = optional(tp)
    if value is None and nullable:
        return None
    if isinstance(inner, type) and dataclasses.is_dataclass(inner):
        return convert_section(inner, value, key, ctx)
    if typing.get_origin(inner) is tuple:
        items = convert_items(value, tp, key, ctx)
        if len(items) < len(value):
            raise Skip  # a list with bad items is not used; each bad item is reported
        return tuple(items.values())
    expected = {bool: (bool,), int: (int,), float: (int, float), str: (str,), Path: (str,)}[inner]
    wrong = not isinstance(value, expected) or (inner is not bool and isinstance(value, bool))
    if wrong:  # (a separate name keeps ``value`` typed as YAML gives it: Any)
        raise Invalid(ctx.expected(tp, key, value))
    if inner is Path:
        if not value:
            raise Invalid("expected a path, got an empty string")
        return ctx.path(value)
    return float(value) if inner is float else value


def convert_items(value: Any, tp: Any, key: str, ctx: Context) -> dict[int, Any]:
    """Convert each item of a list; bad items are reported and left out."""
    if not isinstance(value, list):
        raise Invalid(ctx.expected(tp, key, value))
    item_tp = typing.get_args(optional(tp)[0])[0]
    converted: dict[int, Any] = {}
    for index, item in enumerate(value):
        item_key = f"{key}[{index}]"
        try:
            converted[index] = convert(item, item_tp, item_key, ctx)
        except Invalid as exc:
            ctx.report(item_key, str(exc))
        except Skip:
            pass
    return converted


def convert_section(cls: type, value: Any, key: str, ctx: Context) -> Any:
    """Build one settings dataclass; unknown, bad and missing keys are reported."""
    if not isinstance(value, dict):
        section = cls.__name__.removesuffix("Settings").lower()
        raise Invalid(f"expected a mapping of {section} keys, got {describe(value)}")
    fields = settings_fields(cls)
    names = [f.name for f, _ in fields]
    for unknown in (k for k in value if k not in names):
        ctx.report(join(key, unknown), _unknown_key(str(unknown), key, names))
    kwargs: dict[str, Any] = {}
    for field, tp in fields:
        field_key = join(key, field.name)
        if value.get(field.name) is None:  # null means "use the default"
            if _required(field):
                ctx.report(field_key, "is required")
            continue
        try:
            kwargs[field.name] = convert(value[field.name], tp, field_key, ctx)
        except Invalid as exc:
            ctx.report(field_key, str(exc))
        except Skip:
            pass
    if any(_required(f) and f.name not in kwargs for f, _ in fields):
        raise Skip  # already reported
    built = cls(**kwargs)
    if (check := CROSS_CHECKS.get(cls)) and not ctx.failed_under(key):
        for sub, message in check(built):
            ctx.report(join(key, sub), message)
    return built


def _required(field: dataclasses.Field[Any]) -> bool:
    return field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING


def join(key: str, name: object) -> str:
    return f"{key}.{name}" if key else str(name)


def _unknown_key(name: str, section: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(name, valid, n=1)
    if close:
        return f"unknown key; did you mean '{join(section, close[0])}'?"
    where = f"'{section}'" if section else "the top level"
    return f"unknown key; the keys of {where} are: {', '.join(valid)}"


def optional(tp: Any) -> tuple[Any, bool]:
    """``X | None`` -> (X, True); anything else -> (it, False)."""
    if isinstance(tp, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0], len(args) < len(typing.get_args(tp))
    return tp, False


def describe(value: Any) -> str:
    """What a YAML value is, for "expected X, got Y" (``string 'abc'``, ``a list``)."""
    if value is None:
        return "null"
    if isinstance(value, list | dict):
        return "a list" if isinstance(value, list) else "a mapping"
    kind = {bool: "boolean", int: "integer", float: "number", str: "string"}.get(type(value), type(value).__name__)
    text = repr(value) if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else str(value)
    return f"{kind} {text[:60]}"
