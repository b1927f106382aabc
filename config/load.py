"""Load the Settings tree from a YAML file and ``CONDAOPS_*`` environment variables.

The file is ``path`` if given, else ``$CONDAOPS_CONFIG``, else ``<cwd>/condaops.yaml`` if it
exists, else there is none and only defaults and the environment apply. Variables win over
the file. Values are converted and checked against the dataclasses in ``settings.py`` plus
``KEY_RULES`` (``keys.py``); every problem is collected and reported in one ``ConfigError``.

Nothing is read at import time: call ``load_settings``.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import platform
import sys
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from condaops.config.convert import Context, Problem, convert_section, describe, optional, settings_fields
from condaops.config.keys import KEY_RULES
from condaops.config.settings import Settings, SourceSettings
from condaops.reconciler.errors import ConfigError

ENV_PREFIX = "CONDAOPS_"
CONFIG_VARIABLE = "CONDAOPS_CONFIG"
DEFAULT_FILE_NAME = "condaops.yaml"


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
    problems: list[Problem] = []
    overrides, origins = _environment_overrides(environ, problems)
    base = config_file.parent if config_file else cwd
    ctx = Context(base, origins, problems, KEY_RULES)
    settings = convert_section(Settings, _apply_overrides(data, overrides), "", ctx)
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
            f"the top level must be a mapping of keys such as 'store:', got {describe(data)}",
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
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            for sub, sub_tp in settings_fields(tp):
                name = f"{ENV_PREFIX}{field.name.upper()}__{sub.name.upper()}"
                names[name] = (f"{field.name}.{sub.name}", sub_tp)
        else:
            names[f"{ENV_PREFIX}{field.name.upper()}"] = (field.name, tp)
    return names


def _environment_overrides(
    environ: Mapping[str, str], problems: list[Problem]
) -> tuple[list[tuple[str, Any]], dict[str, str]]:
    known = environment_variables()
    overrides: list[tuple[str, Any]] = []
    origins: dict[str, str] = {}
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or name == CONFIG_VARIABLE:
            continue
        if name not in known:
            problems.append(Problem(None, _unknown_variable(name, known), name))
            continue
        if not environ[name].strip():  # empty = not set, as `VAR=${VAR:-}` in compose files gives
            continue
        key, tp = known[name]
        try:
            overrides.append((key, _parse_variable(environ[name], tp)))
        except yaml.YAMLError as exc:
            problems.append(Problem(key, f"invalid YAML: {_yaml_problem(exc)}", name))
            continue
        origins[key] = name
    return overrides, origins


def _parse_variable(text: str, tp: Any) -> Any:
    """Strings are taken verbatim (YAML would eat '#' comments and '[::1]'), string lists
    may be comma-separated, everything else is YAML."""
    inner, _ = optional(tp)
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


def _raise_problems(problems: list[Problem], config_file: Path | None) -> None:
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


def with_mirror_dir(source: SourceSettings, store: Path) -> SourceSettings:
    """Git sources mirror into ``<store>/.cache/git`` unless ``mirror_dir`` says otherwise."""
    if source.git is None or source.mirror_dir is not None:
        return source
    return dataclasses.replace(source, mirror_dir=store / ".cache" / "git")
