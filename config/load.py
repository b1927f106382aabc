"""Load the Settings tree from a YAML file and ``CONDAOPS_*`` environment variables.

The file is ``path`` if given, else ``$CONDAOPS_CONFIG``, else ``<cwd>/condaops.yaml`` if it
exists, else there is none and only defaults and the environment apply. Variables win over
the file. Values are converted and checked against the dataclasses in ``settings.py`` plus
``KEY_RULES`` below; every problem is collected and reported in one ``ConfigError``.

Nothing is read at import time: call ``load_settings``.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import math
import os
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from condaops.config.settings import (
    BUILTIN_TARGET,
    BuildSettings,
    PushTargetSettings,
    Settings,
    SourceSettings,
    StorageSettings,
)
from condaops.reconciler.errors import ConfigError
from condaops.reconciler.model import name_problem

ENV_PREFIX = "CONDAOPS_"
CONFIG_VARIABLE = "CONDAOPS_CONFIG"
DEFAULT_FILE_NAME = "condaops.yaml"
NOT_KEYS = frozenset({"config_file"})  # Settings fields derived at load, never configured
KNOWN_PLATFORMS = (
    "linux-64", "linux-aarch64", "linux-ppc64le", "linux-s390x", "linux-32", "linux-armv6l",
    "linux-armv7l", "osx-64", "osx-arm64", "win-64", "win-32", "win-arm64",
)  # fmt: skip


class _Invalid(Exception):
    """This value is wrong; the message says why (the caller adds the key)."""


class _Skip(Exception):
    """This value cannot be built; its problems are already recorded."""


@dataclass(frozen=True)
class _Problem:
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
class _Context:
    base: Path  # relative paths resolve against this folder
    origins: Mapping[str, str]  # dotted key -> variable that set it
    problems: list[_Problem]

    def report(self, key: str, message: str) -> None:
        head = key.split("[", 1)[0].split(".")
        variable = self.origins.get(".".join(head[:2])) or self.origins.get(head[0])
        self.problems.append(_Problem(key, message, variable))

    def failed_under(self, prefix: str) -> bool:
        return any(p.key and (p.key + ".").startswith(prefix + ".") for p in self.problems)

    def path(self, text: str) -> Path:
        return Path(os.path.normpath(self.base / Path(text).expanduser()))


Converter = Callable[[Any, Any, str, _Context], Any]


@dataclass(frozen=True)
class KeyRule:
    """What a key accepts beyond its Python type. ``text`` is shown in the reference."""

    text: str = ""
    type: str | None = None  # name shown instead of the Python type's
    convert: Converter | None = None  # replaces the type-driven conversion
    check: Callable[[Any], str | None] | None = None  # a problem with the converted value


# --- public entry point -------------------------------------------------------------------


def load_settings(
    path: Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Settings:
    """Find, read, merge and validate the configuration; raise ``ConfigError`` if invalid."""
    environ = os.environ if environ is None else environ
    cwd = Path(os.path.abspath(Path.cwd() if cwd is None else cwd))
    config_file = find_config_file(path, environ=environ, cwd=cwd)
    data = read_config_file(config_file) if config_file else {}
    problems: list[_Problem] = []
    overrides, origins = _environment_overrides(environ, problems)
    base = config_file.parent if config_file else cwd
    ctx = _Context(base, origins, problems)
    settings = _section(Settings, _apply_overrides(data, overrides), "", ctx)
    _raise_problems(problems, config_file)
    store = ctx.path(str(settings.store))
    return dataclasses.replace(
        settings,
        store=store,
        sources=tuple(_with_mirror_dir(s, store) for s in settings.sources),
        platforms=settings.platforms or (_host_platform(),),
        config_file=config_file,
    )


def find_config_file(path: Path | None, *, environ: Mapping[str, str], cwd: Path) -> Path | None:
    """The absolute path of the file to read, or None when there is none."""
    if path is not None:
        candidate, origin = Path(path), "given"
    elif environ.get(CONFIG_VARIABLE):
        candidate, origin = Path(environ[CONFIG_VARIABLE]), f"named by {CONFIG_VARIABLE}"
    else:
        default = cwd / DEFAULT_FILE_NAME
        return default if default.is_file() else None
    # abspath, not resolve(): a symlinked file (e.g. a mounted ConfigMap) keeps its folder.
    candidate = Path(os.path.normpath(cwd / candidate.expanduser()))
    if not candidate.is_file():
        problem = "is a folder, not a file" if candidate.is_dir() else "does not exist"
        raise ConfigError(f"the configuration file {origin} {problem}; fix the path", file=str(candidate))
    return candidate


def read_config_file(file: Path) -> dict[Any, Any]:
    """The file's top-level mapping; ``ConfigError`` for unreadable or invalid YAML."""
    try:
        data = yaml.load(file.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader
    except OSError as exc:
        raise ConfigError(f"cannot be read ({exc.strerror}); check its permissions", file=str(file)) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError("is not UTF-8 text; save it as UTF-8", file=str(file)) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {_yaml_problem(exc)}", file=str(file)) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"the top level must be a mapping of keys such as 'store:', got {_describe(data)}",
            file=str(file),
        )
    return data


# --- YAML ---------------------------------------------------------------------------------


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (PyYAML silently keeps the last one)."""


def _construct_unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: dict[Any, int] = {}
    # Before merge keys (<<) are flattened: a key may override a merged one.
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node)
        if key in seen:
            problem = f"duplicate key '{key}' (first on line {seen[key] + 1}); keep one"
            raise yaml.constructor.ConstructorError(None, None, problem, key_node.start_mark)
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return f"line {mark.line + 1}, column {mark.column + 1}: {exc.problem}"
    return str(exc)


# --- environment variables ----------------------------------------------------------------


def environment_variables() -> dict[str, tuple[str, Any]]:
    """Every variable that sets a key: name -> (dotted key, annotated type)."""
    names: dict[str, tuple[str, Any]] = {}
    for field, tp in settings_fields(Settings):
        if dataclasses.is_dataclass(tp):
            for sub, sub_tp in settings_fields(tp):
                name = f"{ENV_PREFIX}{field.name.upper()}__{sub.name.upper()}"
                names[name] = (f"{field.name}.{sub.name}", sub_tp)
        else:
            names[f"{ENV_PREFIX}{field.name.upper()}"] = (field.name, tp)
    return names


def _environment_overrides(
    environ: Mapping[str, str], problems: list[_Problem]
) -> tuple[list[tuple[str, Any]], dict[str, str]]:
    known = environment_variables()
    overrides: list[tuple[str, Any]] = []
    origins: dict[str, str] = {}
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or name == CONFIG_VARIABLE:
            continue
        if name not in known:
            problems.append(_Problem(None, _unknown_variable(name, known), name))
            continue
        if not environ[name].strip():  # empty = not set, as `VAR=${VAR:-}` in compose files gives
            continue
        key, tp = known[name]
        try:
            overrides.append((key, _parse_variable(environ[name], tp)))
        except yaml.YAMLError as exc:
            problems.append(_Problem(key, f"invalid YAML: {_yaml_problem(exc)}", name))
            continue
        origins[key] = name
    return overrides, origins


def _parse_variable(text: str, tp: Any) -> Any:
    """Strings are taken verbatim (YAML would eat '#' comments and '[::1]'), string lists
    may be comma-separated, everything else is YAML."""
    inner, _ = _optional(tp)
    if inner in (str, Path):
        return text
    string_list = typing.get_origin(inner) is tuple and typing.get_args(inner)[0] is str
    if string_list and not text.lstrip().startswith("["):
        return [item.strip() for item in text.split(",") if item.strip()]
    return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader


def _unknown_variable(name: str, known: Mapping[str, object]) -> str:
    section = name.removeprefix(ENV_PREFIX).lower()
    if section in {f.name for f, tp in settings_fields(Settings) if dataclasses.is_dataclass(tp)}:
        return f"{name} names a section; set its keys one by one, like {name}__<KEY>"
    suffixes = [k.removeprefix(ENV_PREFIX) for k in known]
    close = difflib.get_close_matches(name.removeprefix(ENV_PREFIX).upper(), suffixes, n=1)
    hint = f"; did you mean {ENV_PREFIX}{close[0]}?" if close else "; unset it or see docs/configuration.md"
    return f"unknown environment variable {name}{hint}"


def _apply_overrides(data: dict[Any, Any], overrides: list[tuple[str, Any]]) -> dict[Any, Any]:
    merged = dict(data)
    for key, value in overrides:
        section, _, name = key.rpartition(".")
        if not section:
            merged[key] = value
        elif merged.get(section) is None:
            merged[section] = {name: value}
        elif isinstance(merged[section], dict):
            merged[section] = {**merged[section], name: value}
        # else the file's section is not a mapping: that type problem is reported instead
    return merged


# --- type-driven conversion ---------------------------------------------------------------


def settings_fields(cls: type) -> list[tuple[dataclasses.Field[Any], Any]]:
    """The configurable fields of a settings dataclass with their resolved types."""
    hints = typing.get_type_hints(cls)
    return [(f, hints[f.name]) for f in dataclasses.fields(cls) if f.name not in NOT_KEYS]


def type_name(tp: Any, pattern: str) -> str:
    """How the reference and the messages name what ``pattern`` (``sources[].name``) takes."""
    inner, nullable = _optional(tp)
    rule = KEY_RULES.get(pattern)
    if rule and rule.type:
        name = rule.type
    elif dataclasses.is_dataclass(inner):
        name = "mapping"
    elif typing.get_origin(inner) is tuple:
        name = f"list of {type_name(typing.get_args(inner)[0], pattern + '[]')}s"
    else:
        name = {bool: "boolean", int: "integer", float: "number", str: "string", Path: "path"}[inner]
    return f"{name} or null" if nullable else name


def pattern_of(key: str) -> str:
    """``sources[2].name`` -> ``sources[].name``: the form ``KEY_RULES`` is keyed by."""
    return re.sub(r"\[\d+\]", "[]", key)


def _convert(value: Any, tp: Any, key: str, ctx: _Context) -> Any:
    rule = KEY_RULES.get(pattern_of(key), KeyRule())
    converted = (rule.convert or _by_type)(value, tp, key, ctx)
    if rule.check and converted is not None and (problem := rule.check(converted)):
        raise _Invalid(problem)
    return converted


def _by_type(value: Any, tp: Any, key: str, ctx: _Context) -> Any:
    inner, nullable = _optional(tp)
    if value is None and nullable:
        return None
    if dataclasses.is_dataclass(inner):
        return _section(inner, value, key, ctx)
    if typing.get_origin(inner) is tuple:
        items = _items(value, tp, key, ctx)
        if len(items) < len(value):
            raise _Skip  # a list with bad items is not used; each bad item is reported
        return tuple(items.values())
    expected = {bool: (bool,), int: (int,), float: (int, float), str: (str,), Path: (str,)}[inner]
    if not isinstance(value, expected) or (inner is not bool and isinstance(value, bool)):
        raise _Invalid(_expected(tp, key, value))
    if inner is Path:
        if not value:
            raise _Invalid("expected a path, got an empty string")
        return ctx.path(value)
    return float(value) if inner is float else value


def _items(value: Any, tp: Any, key: str, ctx: _Context) -> dict[int, Any]:
    """Convert each item of a list; bad items are reported and left out."""
    if not isinstance(value, list):
        raise _Invalid(_expected(tp, key, value))
    item_tp = typing.get_args(_optional(tp)[0])[0]
    converted: dict[int, Any] = {}
    for index, item in enumerate(value):
        item_key = f"{key}[{index}]"
        try:
            converted[index] = _convert(item, item_tp, item_key, ctx)
        except _Invalid as exc:
            ctx.report(item_key, str(exc))
        except _Skip:
            pass
    return converted


def _section(cls: type, value: Any, key: str, ctx: _Context) -> Any:
    """Build one settings dataclass; unknown, bad and missing keys are reported."""
    if not isinstance(value, dict):
        section = cls.__name__.removesuffix("Settings").lower()
        raise _Invalid(f"expected a mapping of {section} keys, got {_describe(value)}")
    fields = settings_fields(cls)
    names = [f.name for f, _ in fields]
    for unknown in (k for k in value if k not in names):
        ctx.report(_join(key, unknown), _unknown_key(str(unknown), key, names))
    kwargs: dict[str, Any] = {}
    for field, tp in fields:
        field_key = _join(key, field.name)
        if value.get(field.name) is None:  # null means "use the default"
            if _required(field):
                ctx.report(field_key, "is required")
            continue
        try:
            kwargs[field.name] = _convert(value[field.name], tp, field_key, ctx)
        except _Invalid as exc:
            ctx.report(field_key, str(exc))
        except _Skip:
            pass
    if any(_required(f) and f.name not in kwargs for f, _ in fields):
        raise _Skip  # already reported
    built = cls(**kwargs)
    if (check := _CROSS_CHECKS.get(cls)) and not ctx.failed_under(key):
        for sub, message in check(built):
            ctx.report(_join(key, sub), message)
    return built


def _required(field: dataclasses.Field[Any]) -> bool:
    return field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING


def _join(key: str, name: object) -> str:
    return f"{key}.{name}" if key else str(name)


def _unknown_key(name: str, section: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(name, valid, n=1)
    if close:
        return f"unknown key; did you mean '{_join(section, close[0])}'?"
    where = f"'{section}'" if section else "the top level"
    return f"unknown key; the keys of {where} are: {', '.join(valid)}"


def _optional(tp: Any) -> tuple[Any, bool]:
    """``X | None`` -> (X, True); anything else -> (it, False)."""
    if isinstance(tp, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0], len(args) < len(typing.get_args(tp))
    return tp, False


def _expected(tp: Any, key: str, value: Any) -> str:
    name = type_name(tp, pattern_of(key))
    return f"expected {'an' if name[0] in 'aeiou' else 'a'} {name}, got {_describe(value)}"


def _describe(value: Any) -> str:
    """What a YAML value is, for "expected X, got Y" (``string 'abc'``, ``a list``)."""
    if value is None:
        return "null"
    if isinstance(value, list | dict):
        return "a list" if isinstance(value, list) else "a mapping"
    kind = {bool: "boolean", int: "integer", float: "number", str: "string"}.get(type(value), type(value).__name__)
    text = repr(value) if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else str(value)
    return f"{kind} {text[:60]}"


def _raise_problems(problems: list[_Problem], config_file: Path | None) -> None:
    """One ConfigError for everything found; the file is named if a problem is in it."""
    if not problems:
        return
    in_file = config_file is not None and any(p.variable is None for p in problems)
    file = str(config_file) if in_file else None
    if len(problems) == 1:
        raise ConfigError(problems[0].detail(), key=problems[0].key, file=file)
    lines = "\n".join(f"  {p.text()}" for p in problems)
    raise ConfigError(f"{len(problems)} problems in the configuration; fix each:\n{lines}", file=file)


def _host_platform() -> str:
    # Lazily: ~0.1 s to import, needed only when no platforms are set. py-rattler 0.28 calls
    # platforms "subdirs" (`Platform` is its deprecated alias).
    from rattler import Subdir

    return str(Subdir.current())


# --- rules for particular keys ------------------------------------------------------------

_DURATION_RE = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?")


def parse_duration(value: object) -> float | None:
    """Seconds from a number or text such as ``30s``, ``5m``, ``1h30m``; None if neither."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value) if math.isfinite(value) else None
    if not isinstance(value, str):
        return None
    text = value.strip()
    if re.fullmatch(r"-?\d+(?:\.\d+)?", text):
        return float(text)
    match = _DURATION_RE.fullmatch(text)
    if not text or match is None:
        return None
    hours, minutes, seconds = (float(g or 0) for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def format_duration(seconds: float) -> str:
    """The shortest text ``parse_duration`` reads back as ``seconds``."""
    if seconds != int(seconds):
        return f"{seconds:g}s"
    hours, rest = divmod(int(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    text = "".join(f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (secs, "s")) if n)
    return text or "0s"


def _duration(value: Any, tp: Any, key: str, ctx: _Context) -> float:
    seconds = parse_duration(value)
    if seconds is None:
        raise _Invalid(f"{_expected(tp, key, value)}; use seconds or text such as 30s, 5m, 1h30m")
    return seconds


def _at_least(minimum: int) -> Callable[[float], str | None]:
    return lambda n: None if n >= minimum else f"must be at least {minimum}, got {n:g}"


def _positive(n: float) -> str | None:
    return None if n > 0 else f"must be greater than 0, got {n:g}"


def _not_empty(items: tuple[object, ...]) -> str | None:
    return None if items else "must list at least one entry (leave the key out for the default)"


def _platform_problem(name: str) -> str | None:
    if name in KNOWN_PLATFORMS:
        return None
    if name == "noarch":
        return "'noarch' cannot be locked for; list real platforms such as linux-64"
    close = difflib.get_close_matches(name, KNOWN_PLATFORMS, n=1)
    return f"unknown platform '{name}'" + (f"; did you mean '{close[0]}'?" if close else "")


def _listen_problem(text: str) -> str | None:
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        return f"'{text}' is not host:port, such as 127.0.0.1:8080 or [::1]:8080"
    if not re.fullmatch(r"\d{1,5}", port, re.ASCII) or not 1 <= int(port) <= 65535:
        return f"port '{port}' must be a number from 1 to 65535"
    if host.startswith("[") and host.endswith("]"):
        return None if _is_ip(host[1:-1], ipaddress.IPv6Address) else f"'{host}' is not an IPv6 address"
    if ":" in host:
        return f"put the IPv6 address in brackets, like [{host}]:{port}"
    if re.fullmatch(r"[\d.]+", host):
        return None if _is_ip(host, ipaddress.IPv4Address) else f"'{host}' is not an IPv4 address"
    if not re.fullmatch(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?", host):
        return f"'{host}' is not a host name or IP address"
    return None


def _is_ip(text: str, kind: type[ipaddress.IPv4Address | ipaddress.IPv6Address]) -> bool:
    try:
        kind(text)
    except ValueError:
        return False
    return True


def _database(value: Any, tp: Any, key: str, ctx: _Context) -> str:
    from sqlalchemy.engine import make_url  # lazily: sqlalchemy takes ~0.25 s to import
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    text = _by_type(value, tp, key, ctx)
    if not text:
        return text
    # The URL may hold a password: messages never repeat it.
    try:
        url = make_url(text)
        url.get_dialect()
    except NoSuchModuleError:  # a subclass of ArgumentError: first
        raise _Invalid(f"unknown database kind '{url.drivername}'; use sqlite or postgresql+psycopg") from None
    except (ArgumentError, ValueError):
        raise _Invalid("is not a SQLAlchemy URL such as sqlite:////srv/condaops.db "
                       "or postgresql+psycopg://user@host/condaops") from None  # fmt: skip
    database = url.database or ""
    relative = not os.path.isabs(database) and database not in ("", ":memory:") and not database.startswith("file:")
    if url.get_backend_name() == "sqlite" and relative:
        return url.set(database=str(ctx.path(database))).render_as_string(hide_password=False)
    return text


def _mirrors(value: Any, tp: Any, key: str, ctx: _Context) -> dict[str, tuple[str, ...]]:
    if not isinstance(value, dict):
        raise _Invalid(_expected(tp, key, value))
    mirrors: dict[str, tuple[str, ...]] = {}
    for channel, targets in value.items():
        entry = f'{key}["{channel}"]'
        canonical = str(channel).rstrip("/")
        targets = [targets] if isinstance(targets, str) else targets
        if not isinstance(channel, str) or not _is_url(canonical, None):
            ctx.report(entry, "must be a channel URL, such as https://conda.anaconda.org/conda-forge")
        elif canonical in mirrors:
            ctx.report(entry, f"'{canonical}' is listed twice (trailing slashes are ignored)")
        elif problem := _mirror_targets_problem(targets):
            ctx.report(entry, problem)
        else:
            mirrors[canonical] = tuple(t.rstrip("/") for t in targets)
    return mirrors


def _is_url(text: str, schemes: tuple[str, ...] | None) -> bool:
    parts = urlsplit(text)
    return bool(parts.netloc) and (parts.scheme in schemes if schemes else bool(parts.scheme))


def _mirror_targets_problem(targets: Any) -> str | None:
    if not isinstance(targets, list) or not targets or not all(isinstance(t, str) for t in targets):
        return f"expected a mirror URL or a non-empty list of them, got {_describe(targets)}"
    for target in targets:
        if not _is_url(target, ("http", "https")):
            return f"mirror '{target}' must be an http:// or https:// URL (serve local folders over HTTP)"
    return None


def _sources(value: Any, tp: Any, key: str, ctx: _Context) -> tuple[SourceSettings, ...]:
    converted = _items(value, tp, key, ctx)
    first_use: dict[str, int] = {}
    for index, source in converted.items():
        if source.name in first_use:
            first = f"{key}[{first_use[source.name]}]"
            ctx.report(f"{key}[{index}].name", f"'{source.name}' is already the name of {first}; "
                       "give each source its own 'name'")  # fmt: skip
        first_use.setdefault(source.name, index)
    return tuple(converted.values())


def _source(value: Any, tp: Any, key: str, ctx: _Context) -> SourceSettings:
    if not isinstance(value, dict):
        raise _Invalid(f"expected a mapping with 'directory' or 'git', got {_describe(value)}")
    kinds = [k for k in ("directory", "git") if value.get(k) is not None]
    if len(kinds) != 1:
        raise _Invalid("set exactly one of 'directory' and 'git'" + ("; both are set" if kinds else ""))
    data, kind = dict(value), kinds[0]
    if data.get("name") is None and isinstance(data[kind], str) and data[kind]:
        data["name"] = _derived_name(kind, data[kind], ctx)
        if problem := name_problem(data["name"]):
            ctx.report(f"{key}.name", f"{problem} (derived from '{kind}'); set 'name'")
            raise _Skip
    return _section(SourceSettings, data, key, ctx)


def _derived_name(kind: str, location: str, ctx: _Context) -> str:
    """The folder's name, or the repository's without ``.git``."""
    if kind == "git" and _is_remote(location):
        return re.split(r"[/:]", location.rstrip("/"))[-1].removesuffix(".git")
    name = ctx.path(location).name
    return name.removesuffix(".git") if kind == "git" else name


def _is_remote(location: str) -> bool:
    """A URL or scp-like ``user@host:path``, not a local path."""
    return "://" in location or re.match(r"^[^/]+:", location) is not None


def _git_location(value: Any, tp: Any, key: str, ctx: _Context) -> str:
    text = _by_type(value, tp, key, ctx)
    return text if _is_remote(text) else str(ctx.path(text))


WEB_TOKEN_MIN_LENGTH = 16
PUBLIC = "public"


def _web_token_problem(token: str) -> str | None:
    """Tokens are secrets: messages never repeat them."""
    if len(token) < WEB_TOKEN_MIN_LENGTH or any(c.isspace() or not c.isprintable() for c in token):
        return (f"tokens must be at least {WEB_TOKEN_MIN_LENGTH} printable characters without spaces; "
                "make one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'")  # fmt: skip
    return None


def _visibility(value: Any, tp: Any, key: str, ctx: _Context) -> dict[str, tuple[str, ...] | None]:
    """``{namespace: public | [token, ...]}``; ``public`` is stored as None."""
    if not isinstance(value, dict):
        raise _Invalid(_expected(tp, key, value))
    visibility: dict[str, tuple[str, ...] | None] = {}
    for namespace, who in value.items():
        entry = f"{key}.{namespace}"
        if not isinstance(namespace, str) or (problem := name_problem(namespace)):
            ctx.report(entry, problem if isinstance(namespace, str) else "must be a namespace name")
        elif who == PUBLIC:
            visibility[namespace] = None
        elif not isinstance(who, list) or not who or not all(isinstance(t, str) for t in who):
            ctx.report(entry, f"expected '{PUBLIC}' or a non-empty list of tokens, got {_describe_secret(who)}")
        elif problem := next(filter(None, map(_web_token_problem, who)), None):
            ctx.report(entry, problem)
        else:
            visibility[namespace] = tuple(dict.fromkeys(who))
    return visibility


def _describe_secret(value: Any) -> str:
    """Like ``_describe``, without repeating a string that may be a token."""
    return "a string" if isinstance(value, str) else _describe(value)


_HTTP_ONLY = ("username", "password_env", "password_file")
_SSH_ONLY = ("ssh_key_file", "ssh_known_hosts")


def _git_transport(source: SourceSettings) -> str | None:
    """``http``, ``ssh``, ``other`` (git://, file://, a local path) or None (not Git)."""
    if source.git is None:
        return None
    location = source.git.lower()
    if location.startswith(("http://", "https://")):
        return "http"
    if location.startswith(("ssh://", "git+ssh://")) or ("://" not in location and _is_remote(location)):
        return "ssh"
    return "other"


def _source_keys(source: SourceSettings) -> list[tuple[str, str]]:
    """Transport keys only where they apply: a secret that is silently unused helps nobody."""
    transport = _git_transport(source)
    problems = [(key, "applies only to Git sources with an http:// or https:// URL")
                for key in _HTTP_ONLY if getattr(source, key) is not None and transport != "http"]  # fmt: skip
    problems += [(key, "applies only to Git sources with an ssh:// or user@host:path URL")
                 for key in _SSH_ONLY if getattr(source, key) is not None and transport != "ssh"]  # fmt: skip
    if source.mirror_dir is not None and transport is None:
        problems.append(("mirror_dir", "applies only to Git sources"))
    if source.password_env is not None and source.password_file is not None:
        problems.append(("password_file", "set only one of 'password_env' and 'password_file'"))
    return problems + _status_keys(source) + _webhook_keys(source) + _change_keys(source)


def _change_keys(source: SourceSettings) -> list[tuple[str, str]]:
    """Change requests are refs of a Git remote."""
    if source.change_requests and source.git is None:
        return [("change_requests", "applies only to Git sources (pull requests are Git refs)")]
    from condaops.reconciler.sources.gitrules import ref_glob_problem

    return [("change_refspecs", problem) for problem in map(ref_glob_problem, source.change_refspecs) if problem]


_WEBHOOK_KEYS = ("webhook_secret_env", "webhook_secret_file")


def _webhook_keys(source: SourceSettings) -> list[tuple[str, str]]:
    """A webhook refreshes a Git source; one secret per source."""
    if source.git is None:
        return [(key, "applies only to Git sources") for key in _WEBHOOK_KEYS if getattr(source, key) is not None]
    if source.webhook_secret_env is not None and source.webhook_secret_file is not None:
        return [("webhook_secret_file", "set only one of 'webhook_secret_env' and 'webhook_secret_file'")]
    return []


STATUS_APIS = ("github", "gitlab", "gitea")
_STATUS_ONLY = ("status_url", "status_repo", "status_token_env", "status_token_file", "status_target_url")
_REPO_PART = r"[A-Za-z0-9_.-]+"


def _status_keys(source: SourceSettings) -> list[tuple[str, str]]:
    """Commit statuses need a Git source, a server, a repository and exactly one token."""
    if source.status_api is None:
        return [(key, "applies only with 'status_api'") for key in _STATUS_ONLY if getattr(source, key) is not None]
    if source.git is None:
        return [("status_api", "applies only to Git sources (statuses are posted for commits)")]
    problems = []
    if source.status_url is None and source.status_api != "github":
        problems.append(("status_url", f"is required when status_api is '{source.status_api}'; "
                                       "set the server's URL, such as https://git.example.org"))  # fmt: skip
    if source.status_repo is None:
        problems.append(("status_repo", "is required when 'status_api' is set; set the repository, such as owner/name"))
    elif problem := _status_repo_problem(source.status_api, source.status_repo):
        problems.append(("status_repo", problem))
    if source.status_token_env is not None and source.status_token_file is not None:
        problems.append(("status_token_file", "set only one of 'status_token_env' and 'status_token_file'"))
    elif source.status_token_env is None and source.status_token_file is None:
        problems.append(("status_api", "needs a token; set 'status_token_env' or 'status_token_file'"))
    return problems


def _status_repo_problem(api: str, repo: str) -> str | None:
    if re.fullmatch(f"{_REPO_PART}/{_REPO_PART}", repo):
        return None
    if api != "gitlab":
        return f"'{repo}' is not owner/name, such as conda/environments"
    if re.fullmatch(rf"\d+|{_REPO_PART}(?:/{_REPO_PART})+", repo):
        return None
    return f"'{repo}' is not a project id such as 42 or a path such as group/subgroup/project"


def _status_api_problem(name: str) -> str | None:
    if name in STATUS_APIS:
        return None
    return f"unknown status API '{name}'; use one of {', '.join(STATUS_APIS)}"


def _http_url_problem(url: str) -> str | None:
    if _is_url(url, ("http", "https")):
        return None
    return f"'{url}' must be an http:// or https:// URL"


def _not_blank(text: str) -> str | None:
    return None if text.strip() else "must not be empty"


def _variable_name_problem(name: str) -> str | None:
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        return None
    return f"'{name}' is not an environment variable name (letters, digits and '_', not starting with a digit)"


def _with_mirror_dir(source: SourceSettings, store: Path) -> SourceSettings:
    """Git sources mirror into ``<store>/.cache/git`` unless ``mirror_dir`` says otherwise."""
    if source.git is None or source.mirror_dir is not None:
        return source
    return dataclasses.replace(source, mirror_dir=store / ".cache" / "git")


def _backoff_order(build: BuildSettings) -> list[tuple[str, str]]:
    if build.backoff_max >= build.backoff:
        return []
    return [("backoff_max", f"must be at least build.backoff ({format_duration(build.backoff)}), "
                            f"got {format_duration(build.backoff_max)}")]  # fmt: skip


STORAGE_BACKENDS = ("filesystem", "s3")
PRESIGN_MAX_SECONDS = 7 * 24 * 3600  # S3 signature version 4 refuses longer-lived URLs


def _storage_backend(storage: StorageSettings) -> list[tuple[str, str]]:
    if storage.backend == "s3" and not storage.s3_bucket:
        return [("s3_bucket", "is required when storage.backend is 's3'")]
    if storage.backend == "filesystem" and storage.s3_bucket:
        return [("backend", "is 'filesystem' but storage.s3_bucket is set; set backend: s3 or remove s3_bucket")]
    return []


def _backend_problem(name: str) -> str | None:
    if name in STORAGE_BACKENDS:
        return None
    return f"unknown storage backend '{name}'; use one of {', '.join(STORAGE_BACKENDS)}"


PUSH_TOKEN_MIN_LENGTH = 16


def _push_token_problem(token: str) -> str | None:
    """Tokens are secrets: messages never repeat them."""
    if len(token) < PUSH_TOKEN_MIN_LENGTH or any(c.isspace() or not c.isprintable() for c in token):
        return (f"push tokens must be at least {PUSH_TOKEN_MIN_LENGTH} printable characters without spaces; "
                "make one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'")  # fmt: skip
    return None


def _file_problem(path: Path) -> str | None:
    return None if path.is_file() else f"'{path}' is not a file; create it or fix the path"


def _endpoint_problem(url: str) -> str | None:
    if not url or _is_url(url, ("http", "https")):
        return None
    return f"'{url}' must be an http:// or https:// URL, such as http://minio.example:9000"


def _expiry_problem(seconds: float) -> str | None:
    if 0 < seconds <= PRESIGN_MAX_SECONDS:
        return None
    return f"must be greater than 0 and at most 7 days (S3's limit), got {format_duration(seconds)}"


PACK_FORMATS = ("tar.zst", "tar.gz")
LAYER_BUDGET_MAX = 127  # older Docker and overlayfs setups refuse more layers
_IMAGE_PREFIX_RE = re.compile(r"(/[A-Za-z0-9._-]+)+")


def _pack_format_problem(fmt: str) -> str | None:
    return None if fmt in PACK_FORMATS else f"unknown format '{fmt}'; use one of {', '.join(PACK_FORMATS)}"


def _image_prefix_problem(path: str) -> str | None:
    if _IMAGE_PREFIX_RE.fullmatch(path) and ".." not in path.split("/"):
        return None
    return (f"'{path}' must be an absolute path of letters, digits, '.', '_', '-' "
            "without a trailing slash, e.g. /opt/env")  # fmt: skip


_IMAGE_REF_RE = re.compile(
    r"(?P<host>[A-Za-z0-9.-]+(?::\d+)?|\[[0-9A-Fa-f:]+\](?::\d+)?)/"
    r"(?P<repo>[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9._-]{0,127}))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?"
)


def _image_base_problem(base: str) -> str | None:
    """A full reference: the registry host is required (no implicit Docker Hub)."""
    if _IMAGE_REF_RE.fullmatch(base) and ("." in base.split("/")[0] or ":" in base.split("/")[0]
                                           or base.split("/")[0] == "localhost"):  # fmt: skip
        return None
    return (f"'{base}' is not a full image reference such as registry.example.org/base/debian:12, "
            "docker.io/library/debian:12 or 127.0.0.1:5000/base@sha256:<64 hex>")


def _push_target(value: Any, tp: Any, key: str, ctx: _Context) -> PushTargetSettings:
    """``builtin`` or a mapping; an external target is named after its URL's host by default."""
    if value == BUILTIN_TARGET:
        return PushTargetSettings()
    if not isinstance(value, dict):
        raise _Invalid(f"expected '{BUILTIN_TARGET}' or a mapping with 'url', got {_describe(value)}")
    data = dict(value)
    if data.get("name") is None and isinstance(data.get("url"), str) and data["url"]:
        data["name"] = (urlsplit(_registry_url(data["url"])).netloc or data["url"]).replace(":", "-")
    return _section(PushTargetSettings, data, key, ctx)


def _push_targets(value: Any, tp: Any, key: str, ctx: _Context) -> tuple[PushTargetSettings, ...]:
    converted = _items(value, tp, key, ctx)
    first_use: dict[str, int] = {}
    for index, target in converted.items():
        if ctx.failed_under(f"{key}[{index}]"):
            continue
        if target.name in first_use:
            first = f"{key}[{first_use[target.name]}]"
            ctx.report(f"{key}[{index}].name", f"'{target.name}' is already the name of {first}; "
                       "give each target its own 'name'")  # fmt: skip
        first_use.setdefault(target.name, index)
    if sum(t.builtin for t in converted.values()) > 1:
        ctx.report(key, f"lists the built-in registry more than once; keep one '{BUILTIN_TARGET}'")
    if len(converted) < len(value):
        raise _Skip
    return tuple(converted.values())


def _registry_url(text: str) -> str:
    return text if "://" in text else f"https://{text}"


def _registry_url_problem(url: str) -> str | None:
    parts = urlsplit(_registry_url(url))
    if parts.scheme in ("http", "https") and parts.netloc and parts.path in ("", "/") and not parts.query:
        return None
    return (f"'{url}' must be a registry host such as registry.example.org, 127.0.0.1:5000 or "
            "https://registry.example.org (put repository paths in 'repository')")


def _repository_prefix_problem(prefix: str) -> str | None:
    if not prefix or re.fullmatch(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*",
                                  prefix):  # fmt: skip
        return None
    return f"'{prefix}' is not a repository path: lowercase letters, digits and '.', '_', '-' between '/'"


_TARGET_ONLY = ("username", "password_env", "password_file", "insecure")


def _push_target_keys(target: PushTargetSettings) -> list[tuple[str, str]]:
    """Credentials and transport apply to external registries only; one secret each."""
    if target.builtin:
        keys = [k for k in _TARGET_ONLY if getattr(target, k) not in (None, False)]
        keys += ["repository"] if target.repository else []
        return [(k, "applies only to external registries (set 'url')") for k in keys]
    problems = []
    if target.name == BUILTIN_TARGET:
        problems.append(("name", f"'{BUILTIN_TARGET}' names the built-in registry; pick another name"))
    if target.password_env is not None and target.password_file is not None:
        problems.append(("password_file", "set only one of 'password_env' and 'password_file'"))
    if target.username is not None and target.password_env is None and target.password_file is None:
        problems.append(("username", "needs a password; set 'password_env' or 'password_file'"))
    return problems


def _layer_budget_problem(budget: float) -> str | None:
    if 2 <= budget <= LAYER_BUDGET_MAX:
        return None
    return f"must be between 2 and {LAYER_BUDGET_MAX}, got {budget}"


_CROSS_CHECKS: dict[type, Callable[[Any], list[tuple[str, str]]]] = {
    BuildSettings: _backoff_order,
    SourceSettings: _source_keys,
    StorageSettings: _storage_backend,
    PushTargetSettings: _push_target_keys,
}

_DURATION = "duration"
KEY_RULES: dict[str, KeyRule] = {
    "database": KeyRule("A known SQLAlchemy dialect; relative SQLite paths resolve like `store`.", convert=_database),
    "sources": KeyRule("Names must be unique.", convert=_sources),
    "sources[]": KeyRule("Exactly one of `directory` and `git`.", type="source", convert=_source),
    "sources[].name": KeyRule("A valid name (letters, digits, `.`, `_`, `-`).", check=name_problem),
    "sources[].git": KeyRule("Relative local paths resolve like `store`.", convert=_git_location),
    "sources[].default_namespace": KeyRule("A valid namespace name.", check=name_problem),
    "sources[].interval": KeyRule("Greater than 0.", type=_DURATION, convert=_duration, check=_positive),
    "sources[].change_grace": KeyRule("0 or more.", type=_DURATION, convert=_duration),
    "sources[].change_refspecs": KeyRule("Ref globs such as `refs/pull/*/head`. Only with `git`."),
    "sources[].username": KeyRule("Only with an http(s) `git` URL."),
    "sources[].password_env": KeyRule(
        "Only with an http(s) `git` URL; not with `password_file`. The value is never logged.",
        check=_variable_name_problem,
    ),
    "sources[].password_file": KeyRule("Only with an http(s) `git` URL. Trailing newlines are ignored."),
    "sources[].ssh_key_file": KeyRule("Only with an ssh `git` URL."),
    "sources[].ssh_known_hosts": KeyRule("Only with an ssh `git` URL; host keys are checked strictly."),
    "sources[].mirror_dir": KeyRule("Only with `git`; relative paths resolve like `store`."),
    "sources[].status_api": KeyRule(
        "Only with `git`; needs `status_repo` and one of `status_token_env` and `status_token_file`.",
        check=_status_api_problem,
    ),
    "sources[].status_url": KeyRule("An http(s) URL; required for `gitlab` and `gitea`.", check=_http_url_problem),
    "sources[].status_repo": KeyRule("Required with `status_api`."),
    "sources[].status_token_env": KeyRule(
        "Not with `status_token_file`. The value is never logged.", check=_variable_name_problem
    ),
    "sources[].status_token_file": KeyRule("Trailing newlines are ignored. The value is never logged."),
    "sources[].status_context": KeyRule("Not empty.", check=_not_blank),
    "sources[].status_target_url": KeyRule("An http(s) URL.", check=_http_url_problem),
    "sources[].webhook_secret_env": KeyRule(
        "Only with `git`; not with `webhook_secret_file`. The value is never logged.", check=_variable_name_problem
    ),
    "sources[].webhook_secret_file": KeyRule(
        "Only with `git`. Trailing newlines are ignored. The value is never logged."
    ),
    "channels.default": KeyRule("At least one channel.", check=_not_empty),
    "channels.mirrors": KeyRule(
        "A single mirror may be a string. Mirrors must be http(s) URLs; trailing slashes are removed.",
        type="mapping of channel URL to list of mirror URLs",
        convert=_mirrors,
    ),
    "platforms": KeyRule("At least one; each one of " + ", ".join(KNOWN_PLATFORMS) + ".", check=_not_empty),
    "platforms[]": KeyRule(type="platform", check=_platform_problem),
    "build.concurrency": KeyRule("At least 1.", check=_at_least(1)),
    "build.retries": KeyRule("At least 0.", check=_at_least(0)),
    "build.backoff": KeyRule("Greater than 0.", type=_DURATION, convert=_duration, check=_positive),
    "build.backoff_max": KeyRule("At least `build.backoff`.", type=_DURATION, convert=_duration),
    "build.timeout": KeyRule("Greater than 0.", type=_DURATION, convert=_duration, check=_positive),
    "build.lease": KeyRule("At least 3 seconds.", type=_DURATION, convert=_duration, check=_at_least(3)),
    "web.listen": KeyRule("Port 1-65535; IPv6 hosts in brackets, e.g. `[::1]:8080`.", check=_listen_problem),
    "registry.push_tokens[]": KeyRule(type="token", check=_push_token_problem),
    "registry.push_tokens": KeyRule(f"Each at least {PUSH_TOKEN_MIN_LENGTH} characters, no spaces."),
    "registry.push_token_file": KeyRule("Must exist; each token as in `registry.push_tokens`.", check=_file_problem),
    "registry.push": KeyRule(
        "Each item is `builtin` (the built-in registry) or a mapping for an external registry: `url` "
        "(`host[:port]` or `https://host`), `name` (default: the host), `repository` (prefix: images go to "
        "`<repository>/<ns>/<name>`), `username` with `password_env` or `password_file` (a password or access "
        "token, never logged; without `username` it is sent as a bearer token) and `insecure` (plain HTTP). "
        "Names must be unique; an empty list pushes nowhere. Registries without the referrers API get the "
        "artifacts listed under the OCI referrers tag `sha256-<hex of the image digest>`.",
        type="list of push targets", convert=_push_targets,
    ),
    "registry.push[]": KeyRule(type="push target", convert=_push_target),
    "registry.push[].name": KeyRule(check=name_problem),
    "registry.push[].url": KeyRule(check=_registry_url_problem),
    "registry.push[].repository": KeyRule(check=_repository_prefix_problem),
    "registry.push[].password_env": KeyRule(check=_variable_name_problem),
    "publish.pack_format": KeyRule(check=_pack_format_problem),
    "publish.image_prefix": KeyRule("An absolute path such as `/opt/env`.", check=_image_prefix_problem),
    "publish.image_base": KeyRule("A full reference including the registry host.", check=_image_base_problem),
    "publish.layer_budget": KeyRule(f"Between 2 and {LAYER_BUDGET_MAX}.", check=_layer_budget_problem),
    "dynamic.max_packages": KeyRule("At least 1.", check=_at_least(1)),
    "dynamic.concurrency": KeyRule("At least 1.", check=_at_least(1)),
    "storage.backend": KeyRule(check=_backend_problem),
    "storage.s3_bucket": KeyRule("Required when `backend` is `s3`."),
    "storage.s3_endpoint": KeyRule("An http(s) URL.", check=_endpoint_problem),
    "storage.s3_url_expiry": KeyRule("At most 7 days.", type=_DURATION, convert=_duration, check=_expiry_problem),
    "web.auth.tokens[]": KeyRule(type="token", check=_web_token_problem),
    "web.auth.tokens": KeyRule(f"Each at least {WEB_TOKEN_MIN_LENGTH} characters, no spaces."),
    "web.auth.namespaces": KeyRule(
        "Namespaces not listed are readable by everyone when `tokens` is empty, else by `tokens` only.",
        type=f"mapping of namespace to `{PUBLIC}` or list of tokens",
        convert=_visibility,
    ),
}
