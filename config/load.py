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
import os
import platform
import re
import sys
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from condaops.config.checks import (
    CROSS_CHECKS,
    KNOWN_PLATFORMS,
    LAYER_BUDGET_MAX,
    PUBLIC,
    PUSH_TOKEN_MIN_LENGTH,
    WEB_TOKEN_MIN_LENGTH,
    author_problem,
    backend_problem,
    between,
    branch_prefix_problem,
    display_name_problem,
    duration_within,
    endpoint_problem,
    expiry_problem,
    file_problem,
    http_url_problem,
    image_base_problem,
    image_prefix_problem,
    is_remote,
    is_url,
    layer_budget_problem,
    layer_compression_problem,
    listen_problem,
    module_format_problem,
    not_blank,
    not_empty,
    pack_format_problem,
    parse_duration,
    parse_size,
    platform_problem,
    push_token_problem,
    registry_url,
    registry_url_problem,
    repository_prefix_problem,
    schedule_problem,
    size_within,
    squashfs_compression_problem,
    status_api_problem,
    update_group_problem,
    variable_name_problem,
    web_token_problem,
    with_mirror_dir,
)
from condaops.config.settings import (
    BUILTIN_TARGET,
    PushTargetSettings,
    Settings,
    SourceSettings,
)
from condaops.reconciler.errors import ConfigError
from condaops.reconciler.names import name_problem

ENV_PREFIX = "CONDAOPS_"
CONFIG_VARIABLE = "CONDAOPS_CONFIG"
DEFAULT_FILE_NAME = "condaops.yaml"
NOT_KEYS = frozenset({"config_file"})  # Settings fields derived at load, never configured


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
        sources=tuple(with_mirror_dir(s, store) for s in settings.sources),
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
    if (check := CROSS_CHECKS.get(cls)) and not ctx.failed_under(key):
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
    """This machine's conda platform (``linux-64``, ``osx-arm64``...), from the standard library."""
    system = {"linux": "linux", "darwin": "osx", "win32": "win"}.get(sys.platform, sys.platform)
    machine = platform.machine().lower()
    arch = {"x86_64": "64", "amd64": "64", "i386": "32", "i686": "32", "arm64": "arm64"}.get(machine, machine)
    if system == "linux" and arch == "arm64":
        arch = "aarch64"  # conda's name for 64-bit ARM Linux
    return f"{system}-{arch}"


# --- rules for particular keys ------------------------------------------------------------


def _duration(value: Any, tp: Any, key: str, ctx: _Context) -> float:
    seconds = parse_duration(value)
    if seconds is None:
        raise _Invalid(f"{_expected(tp, key, value)}; use seconds or text such as 30s, 5m, 1h30m")
    return seconds


def _size(value: Any, tp: Any, key: str, ctx: _Context) -> int:
    size = parse_size(value)
    if size is None:
        raise _Invalid(f"{_expected(tp, key, value)}; use bytes or text such as 512MiB, 1GiB, 20G")
    return size


_DATABASE_KINDS = ("sqlite", "postgresql")  # the state DB's tested backends
_URL_RE = re.compile(r"^(?P<driver>[A-Za-z][A-Za-z0-9_]*(\+[A-Za-z0-9_]+)?)://(?P<rest>.*)$", re.DOTALL)
_HOST_RE = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[^:/\[\]@]*)(:\d*)?$")


def _database(value: Any, tp: Any, key: str, ctx: _Context) -> str:
    """A SQLAlchemy URL of a kind the state DB supports; a relative SQLite path resolves
    like ``store``. Read with the standard library: the URL may hold a password (with any
    character but none of it is ever repeated in a message)."""
    text = _by_type(value, tp, key, ctx)
    if not text:
        return text
    match = _URL_RE.match(text)
    # user:password@ may hold '/', '?' and '#': the host part starts after the last '@'
    after_user = match["rest"][match["rest"].rfind("@") + 1 :] if match else ""
    location, question, query = after_user.partition("?")
    host, slash, database = location.partition("/")
    if match is None or not _HOST_RE.match(host):
        raise _Invalid(
            "is not a SQLAlchemy URL such as sqlite:////srv/condaops.db or postgresql+psycopg://user@host/condaops"
        )
    driver = match["driver"]
    if driver.split("+")[0] not in _DATABASE_KINDS:
        raise _Invalid(f"unknown database kind '{driver}'; use sqlite or postgresql+psycopg")
    relative = not os.path.isabs(database) and database not in ("", ":memory:") and not database.startswith("file:")
    if driver.startswith("sqlite") and relative:
        return f"{driver}:///{ctx.path(database)}{question}{query}"
    return text


def _mirrors(value: Any, tp: Any, key: str, ctx: _Context) -> dict[str, tuple[str, ...]]:
    if not isinstance(value, dict):
        raise _Invalid(_expected(tp, key, value))
    mirrors: dict[str, tuple[str, ...]] = {}
    for channel, targets in value.items():
        entry = f'{key}["{channel}"]'
        canonical = str(channel).rstrip("/")
        targets = [targets] if isinstance(targets, str) else targets
        if not isinstance(channel, str) or not is_url(canonical, None):
            ctx.report(entry, "must be a channel URL, such as https://conda.anaconda.org/conda-forge")
        elif canonical in mirrors:
            ctx.report(entry, f"'{canonical}' is listed twice (trailing slashes are ignored)")
        elif problem := _mirror_targets_problem(targets):
            ctx.report(entry, problem)
        else:
            mirrors[canonical] = tuple(t.rstrip("/") for t in targets)
    return mirrors


def _mirror_targets_problem(targets: Any) -> str | None:
    if not isinstance(targets, list) or not targets or not all(isinstance(t, str) for t in targets):
        return f"expected a mirror URL or a non-empty list of them, got {_describe(targets)}"
    for target in targets:
        if not is_url(target, ("http", "https")):
            return f"mirror '{target}' must be an http:// or https:// URL (serve local folders over HTTP)"
    return None


def _sources(value: Any, tp: Any, key: str, ctx: _Context) -> tuple[SourceSettings, ...]:
    converted = _items(value, tp, key, ctx)
    first_use: dict[str, int] = {}
    for index, source in converted.items():
        if source.name in first_use:
            first = f"{key}[{first_use[source.name]}]"
            ctx.report(
                f"{key}[{index}].name",
                f"'{source.name}' is already the name of {first}; give each source its own 'name'",
            )
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
    if kind == "git" and is_remote(location):
        return re.split(r"[/:]", location.rstrip("/"))[-1].removesuffix(".git")
    name = ctx.path(location).name
    return name.removesuffix(".git") if kind == "git" else name


def _git_location(value: Any, tp: Any, key: str, ctx: _Context) -> str:
    text = _by_type(value, tp, key, ctx)
    return text if is_remote(text) else str(ctx.path(text))


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
        elif problem := next(filter(None, map(web_token_problem, who)), None):
            ctx.report(entry, problem)
        else:
            visibility[namespace] = tuple(dict.fromkeys(who))
    return visibility


def _describe_secret(value: Any) -> str:
    """Like ``_describe``, without repeating a string that may be a token."""
    return "a string" if isinstance(value, str) else _describe(value)


def _push_target(value: Any, tp: Any, key: str, ctx: _Context) -> PushTargetSettings:
    """``builtin`` or a mapping; an external target is named after its URL's host by default."""
    if value == BUILTIN_TARGET:
        return PushTargetSettings()
    if not isinstance(value, dict):
        raise _Invalid(f"expected '{BUILTIN_TARGET}' or a mapping with 'url', got {_describe(value)}")
    data = dict(value)
    if data.get("name") is None and isinstance(data.get("url"), str) and data["url"]:
        data["name"] = (urlsplit(registry_url(data["url"])).netloc or data["url"]).replace(":", "-")
    return _section(PushTargetSettings, data, key, ctx)


def _push_targets(value: Any, tp: Any, key: str, ctx: _Context) -> tuple[PushTargetSettings, ...]:
    converted = _items(value, tp, key, ctx)
    first_use: dict[str, int] = {}
    for index, target in converted.items():
        if ctx.failed_under(f"{key}[{index}]"):
            continue
        if target.name in first_use:
            first = f"{key}[{first_use[target.name]}]"
            ctx.report(
                f"{key}[{index}].name",
                f"'{target.name}' is already the name of {first}; give each target its own 'name'",
            )
        first_use.setdefault(target.name, index)
    if sum(t.builtin for t in converted.values()) > 1:
        ctx.report(key, f"lists the built-in registry more than once; keep one '{BUILTIN_TARGET}'")
    if len(converted) < len(value):
        raise _Skip
    return tuple(converted.values())


_DURATION = "duration"
_SIZE = "size"
_DAY = 86400
KEY_RULES: dict[str, KeyRule] = {
    "database": KeyRule("A known SQLAlchemy dialect; relative SQLite paths resolve like `store`.", convert=_database),
    "sources": KeyRule("Names must be unique.", convert=_sources),
    "sources[]": KeyRule("Exactly one of `directory` and `git`.", type="source", convert=_source),
    "sources[].name": KeyRule("A valid name (letters, digits, `.`, `_`, `-`).", check=name_problem),
    "sources[].git": KeyRule("Relative local paths resolve like `store`.", convert=_git_location),
    "sources[].default_namespace": KeyRule("A valid namespace name.", check=name_problem),
    "sources[].interval": KeyRule(
        "From 0.1s to 7 days.", type=_DURATION, convert=_duration, check=duration_within(0.1, 7 * _DAY)
    ),
    "sources[].change_grace": KeyRule(
        "0 to 365 days.", type=_DURATION, convert=_duration, check=duration_within(0, 365 * _DAY)
    ),
    "sources[].change_refspecs": KeyRule("Ref globs such as `refs/pull/*/head`. Only with `git`."),
    "sources[].username": KeyRule("Only with an http(s) `git` URL."),
    "sources[].password_env": KeyRule(
        "Only with an http(s) `git` URL; not with `password_file`. The value is never logged.",
        check=variable_name_problem,
    ),
    "sources[].password_file": KeyRule("Only with an http(s) `git` URL. Trailing newlines are ignored."),
    "sources[].ssh_key_file": KeyRule("Only with an ssh `git` URL."),
    "sources[].ssh_known_hosts": KeyRule("Only with an ssh `git` URL; host keys are checked strictly."),
    "sources[].mirror_dir": KeyRule("Only with `git`; relative paths resolve like `store`."),
    "sources[].status_api": KeyRule(
        "Only with `git`; needs `status_repo` and one of `status_token_env` and `status_token_file`.",
        check=status_api_problem,
    ),
    "sources[].web_url": KeyRule("An http(s) URL. Only with `git`.", check=http_url_problem),
    "sources[].status_url": KeyRule("An http(s) URL; required for `gitlab` and `gitea`.", check=http_url_problem),
    "sources[].status_repo": KeyRule("Required with `status_api`."),
    "sources[].status_token_env": KeyRule(
        "Not with `status_token_file`. The value is never logged.", check=variable_name_problem
    ),
    "sources[].status_token_file": KeyRule("Trailing newlines are ignored. The value is never logged."),
    "sources[].status_context": KeyRule("Not empty.", check=not_blank),
    "sources[].status_target_url": KeyRule("An http(s) URL.", check=http_url_problem),
    "sources[].webhook_secret_env": KeyRule(
        "Only with `git`; not with `webhook_secret_file`. The value is never logged.", check=variable_name_problem
    ),
    "sources[].webhook_secret_file": KeyRule(
        "Only with `git`. Trailing newlines are ignored. The value is never logged."
    ),
    "sources[].updates.schedule": KeyRule("An interval or a five-field cron expression (UTC).", check=schedule_problem),
    "sources[].updates.environments": KeyRule("At least one glob.", check=not_empty),
    "sources[].updates.cooldown": KeyRule(
        "0 to 365 days: `7d`, `12h`.", type=_DURATION, convert=_duration, check=duration_within(0, 365 * _DAY)
    ),
    "sources[].updates.group": KeyRule("`environment` or `namespace`.", check=update_group_problem),
    "sources[].updates.branch_prefix": KeyRule("A valid start of a Git branch name.", check=branch_prefix_problem),
    "sources[].updates.author": KeyRule("`Name <email>`.", check=author_problem),
    "sources[].updates.pull_requests": KeyRule("True needs a Git source with `status_api` (the forge)."),
    "channels.default": KeyRule("At least one channel.", check=not_empty),
    "channels.mirrors": KeyRule(
        "A single mirror may be a string. Mirrors must be http(s) URLs; trailing slashes are removed.",
        type="mapping of channel URL to list of mirror URLs",
        convert=_mirrors,
    ),
    "platforms": KeyRule("At least one; each one of " + ", ".join(KNOWN_PLATFORMS) + ".", check=not_empty),
    "platforms[]": KeyRule(type="platform", check=platform_problem),
    "build.concurrency": KeyRule("From 1 to 1024.", check=between(1, 1024)),
    "build.retries": KeyRule("From 0 to 100.", check=between(0, 100)),
    "build.backoff": KeyRule(
        "From 0.1s to 1 day.", type=_DURATION, convert=_duration, check=duration_within(0.1, _DAY)
    ),
    "build.backoff_max": KeyRule(
        "At least `build.backoff`, at most 30 days.",
        type=_DURATION,
        convert=_duration,
        check=duration_within(0.1, 30 * _DAY),
    ),
    "build.timeout": KeyRule(
        "From 1s to 7 days.", type=_DURATION, convert=_duration, check=duration_within(1, 7 * _DAY)
    ),
    "build.lease": KeyRule("From 3s to 1 hour.", type=_DURATION, convert=_duration, check=duration_within(3, 3600)),
    "reconcile.full_check": KeyRule(
        "From 0 (every pass is a full check) to 1 day: `5m`, `300`.",
        type=_DURATION,
        convert=_duration,
        check=duration_within(0, _DAY),
    ),
    "web.listen": KeyRule("Port 1-65535; IPv6 hosts in brackets, e.g. `[::1]:8080`.", check=listen_problem),
    "web.page_cache": KeyRule("From 0 to 1000000.", check=between(0, 1_000_000)),
    "registry.push_tokens[]": KeyRule(type="token", check=push_token_problem),
    "registry.push_tokens": KeyRule(f"Each at least {PUSH_TOKEN_MIN_LENGTH} characters, no spaces."),
    "registry.push_token_file": KeyRule("Must exist; each token as in `registry.push_tokens`.", check=file_problem),
    "registry.push": KeyRule(
        "Each item is `builtin` (the built-in registry) or a mapping for an external registry: `url` "
        "(`host[:port]` or `https://host`), `name` (default: the host), `repository` (prefix: images go to "
        "`<repository>/<ns>/<name>`), `username` with `password_env` or `password_file` (a password or access "
        "token, never logged; without `username` it is sent as a bearer token) and `insecure` (plain HTTP). "
        "Names must be unique; an empty list pushes nowhere. Registries without the referrers API get the "
        "artifacts listed under the OCI referrers tag `sha256-<hex of the image digest>`.",
        type="list of push targets",
        convert=_push_targets,
    ),
    "registry.push[]": KeyRule(type="push target", convert=_push_target),
    "registry.push[].name": KeyRule(check=name_problem),
    "registry.push[].url": KeyRule(check=registry_url_problem),
    "registry.push[].repository": KeyRule(check=repository_prefix_problem),
    "registry.push[].password_env": KeyRule(check=variable_name_problem),
    "publish.pack_format": KeyRule(check=pack_format_problem),
    "publish.image_prefix": KeyRule("An absolute path such as `/opt/env`.", check=image_prefix_problem),
    "publish.image_base": KeyRule(
        "A full reference including the registry host, or `scratch`.", check=image_base_problem
    ),
    "publish.layer_compression": KeyRule(check=layer_compression_problem),
    "publish.layer_budget": KeyRule(f"Between 2 and {LAYER_BUDGET_MAX}.", check=layer_budget_problem),
    "publish.squashfs_compression": KeyRule(check=squashfs_compression_problem),
    "kernels.display_name": KeyRule("May use `{name}` and `{namespace}`.", check=display_name_problem),
    "modules.format": KeyRule(check=module_format_problem),
    "policy.site_file": KeyRule("Must exist; the format of `condaops-policy.yaml`.", check=file_problem),
    "publish.signing.key_file": KeyRule(
        "Must exist. Make one with `openssl ecparam -name prime256v1 -genkey -noout | openssl pkcs8 -topk8 "
        "-v2 aes-256-cbc -out cosign.key` (see docs/supply-chain.md).",
        check=file_problem,
    ),
    "publish.signing.password_env": KeyRule("Not with `password_file`.", check=variable_name_problem),
    "publish.signing.password_file": KeyRule("Must exist.", check=file_problem),
    "publish.signing.public_key_file": KeyRule(
        "Must exist; make it with `openssl ec -in cosign.key -pubout -out cosign.pub`.", check=file_problem
    ),
    "publish.signing.previous_keys[]": KeyRule(type="file", check=file_problem),
    "dynamic.max_packages": KeyRule("From 1 to 100.", check=between(1, 100)),
    "dynamic.concurrency": KeyRule("From 1 to 64.", check=between(1, 64)),
    "dynamic.queue": KeyRule("From 0 to 10000.", check=between(0, 10_000)),
    "dynamic.rate": KeyRule("From 1 to 100000 per minute.", check=between(1, 100_000)),
    "dynamic.keep": KeyRule("From 0 to 1000000.", check=between(0, 1_000_000)),
    "registry.max_blob_size": KeyRule(
        "From 1MiB to 1TiB.", type=_SIZE, convert=_size, check=size_within(1024**2, 1024**4)
    ),
    "registry.max_uploads": KeyRule("From 1 to 100000.", check=between(1, 100_000)),
    "registry.upload_max_age": KeyRule(
        "From 1 minute to 30 days.", type=_DURATION, convert=_duration, check=duration_within(60, 30 * _DAY)
    ),
    "registry.gc_interval": KeyRule(
        "0 (off) or from 1 minute to 7 days.",
        type=_DURATION,
        convert=_duration,
        check=duration_within(60, 7 * _DAY, zero=True),
    ),
    "min_free_space": KeyRule("From 0 to 1PiB.", type=_SIZE, convert=_size, check=size_within(0, 1024**5)),
    "storage.backend": KeyRule(check=backend_problem),
    "storage.s3_bucket": KeyRule("Required when `backend` is `s3`."),
    "storage.s3_endpoint": KeyRule("An http(s) URL.", check=endpoint_problem),
    "storage.s3_url_expiry": KeyRule("At most 7 days.", type=_DURATION, convert=_duration, check=expiry_problem),
    "web.auth.tokens[]": KeyRule(type="token", check=web_token_problem),
    "web.auth.tokens": KeyRule(f"Each at least {WEB_TOKEN_MIN_LENGTH} characters, no spaces."),
    "web.auth.namespaces": KeyRule(
        "Namespaces not listed are readable by everyone when `tokens` is empty, else by `tokens` only.",
        type=f"mapping of namespace to `{PUBLIC}` or list of tokens",
        convert=_visibility,
    ),
}
