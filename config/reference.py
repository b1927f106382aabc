"""Render the configuration reference (``docs/configuration.md``) from the Settings tree.

Every key, its type, default and environment variable come from the dataclasses in
``settings.py`` (descriptions from ``metadata["doc"]``) and the rules in ``keys.py``, so the
page cannot drift from the code. Regenerate it with::

    .venv/bin/python -m condaops.config.reference > docs/configuration.md

A unit test fails while the committed file differs from ``render_reference()``.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from typing import Any

from condaops.config.checks import format_duration, format_size
from condaops.config.convert import settings_fields, type_name
from condaops.config.keys import KEY_RULES
from condaops.config.load import CONFIG_VARIABLE, DEFAULT_FILE_NAME, environment_variables
from condaops.config.settings import Settings

# Defaults that depend on where and how condaops runs, described instead of shown.
_DEFAULT_TEXT = {
    "store": f"`.condaops` next to `{DEFAULT_FILE_NAME}`",
    "platforms": "the host's platform",
    "sources[].name": "the folder or repository name",
}

_INTRO = f"""\
# Configuration reference

<!-- Generated from condaops/config/settings.py by
     `.venv/bin/python -m condaops.config.reference > docs/configuration.md`; do not edit. -->

condaops reads one YAML file, then applies `CONDAOPS_*` environment variables on top.
Every key is optional; a key left out, or set to `null`, takes its default.

## Where settings come from

1. The file: the path given on the command line, else `${CONFIG_VARIABLE}`, else
   `{DEFAULT_FILE_NAME}` in the working folder if it exists, else none (defaults only).
   A file that is named but missing is an error. Duplicate keys are refused.
2. Environment variables, which win over the file:
   - `CONDAOPS_<KEY>` sets a top-level key (`CONDAOPS_STORE`, `CONDAOPS_PRUNE=true`);
   - `CONDAOPS_<SECTION>__<KEY>` (two underscores) sets a key of a section
     (`CONDAOPS_BUILD__CONCURRENCY=4`, `CONDAOPS_WEB__LISTEN=0.0.0.0:9000`);
   - `sources` is set only as a whole, as a YAML or JSON list in `CONDAOPS_SOURCES`.

   String and path values are taken verbatim. Lists of strings are comma-separated
   (`CONDAOPS_CHANNELS__DEFAULT=conda-forge,bioconda`) or a YAML list (`[a, b]`). Every other
   value is read as YAML (`true`, `4`, `5m`, `{{...}}`). An empty variable is ignored. A
   `CONDAOPS_*` variable that names no key is an error.

## Values

- **Paths** (`store`, `sources[].directory`, a local `sources[].git`, a relative SQLite
  `database`) are resolved against the folder of the configuration file, or the working
  folder when there is none; `~` is expanded.
- **Durations** are seconds (`90`, `1.5`) or text such as `30s`, `5m`, `1h30m`, `7d`.
- **Sizes** are bytes (`1048576`) or text such as `512MiB`, `1GiB`, `20G`: `Ki`, `Mi`, `Gi`,
  `Ti` (with or without `B`) are powers of 1024, `K`, `M`, `G`, `T` (or `KB`...) of 1000.
- **Numbers** have bounds (listed per key); a value outside them is refused, naming the key.
- Every problem found is reported at once, each naming its key (and variable, if it came
  from one); condaops then exits with status 2.
"""


def render_reference() -> str:
    """The Markdown reference of every configuration key."""
    parts = [_INTRO]
    top = [(f, tp) for f, tp in settings_fields(Settings) if not dataclasses.is_dataclass(tp)]
    parts.append(_section("Top-level keys", "", "", top))
    for field, tp in settings_fields(Settings):
        section = _section_class(tp)
        if section is None:
            continue
        name = field.name if dataclasses.is_dataclass(tp) else f"{field.name}[]"
        rule = KEY_RULES.get(name)
        parts += _sections(name, section, rule.text if rule else "")
    return "\n".join(parts)


def _sections(name: str, section: type, rule_text: str) -> list[str]:
    """A section's table, then one for each section nested in it (``web.auth``)."""
    about = " ".join(filter(None, [inspect.getdoc(section), rule_text]))
    parts = [_section(f"`{name}`", about, name, settings_fields(section))]
    for field, tp in settings_fields(section):
        inner = typing.get_args(tp)[0] if isinstance(tp, types.UnionType) else tp  # ``X | None``
        if dataclasses.is_dataclass(inner):
            key = f"{name}.{field.name}"
            rule = KEY_RULES.get(key)
            parts += _sections(key, typing.cast(type, inner), rule.text if rule else "")
    return parts


def _section(title: str, about: str, prefix: str, fields: list[tuple[dataclasses.Field[Any], Any]]) -> str:
    lines = [f"## {title}", ""]
    if about:
        lines += [about, ""]
    lines += ["| Key | Type | Default | Variable | Description |", "| --- | --- | --- | --- | --- |"]
    variables = {key: name for name, (key, _) in environment_variables().items()}
    for field, tp in fields:
        key = f"{prefix}.{field.name}" if prefix else field.name
        variable = variables.get(key)
        row = (
            f"`{key}`",
            type_name(tp, key, KEY_RULES),
            _default(field, tp, key),
            f"`{variable}`" if variable else f"in `{variables[prefix.split('[]')[0]]}`",
            _description(field, key),
        )
        lines.append("| " + " | ".join(_escape(cell) for cell in row) + " |")
    return "\n".join(lines) + "\n"


def _section_class(tp: Any) -> type | None:
    """The dataclass of a section (``build``) or of a list of sections (``sources``)."""
    if dataclasses.is_dataclass(tp):
        return typing.cast(type, tp)
    args = typing.get_args(tp)
    if typing.get_origin(tp) is tuple and dataclasses.is_dataclass(args[0]):
        return typing.cast(type, args[0])
    return None


def _description(field: dataclasses.Field[Any], key: str) -> str:
    rule = KEY_RULES.get(key)
    return " ".join(filter(None, [str(field.metadata["doc"]), rule.text if rule else ""]))


def _escape(cell: str) -> str:
    """Keep table cells intact and ``<store>`` visible (not read as an HTML tag)."""
    parts = cell.replace("|", "\\|").split("`")  # odd parts are code spans: no escapes there
    return "`".join(part if i % 2 else part.replace("<", "\\<") for i, part in enumerate(parts))


def _default(field: dataclasses.Field[Any], tp: Any, key: str) -> str:
    if key in _DEFAULT_TEXT:
        return _DEFAULT_TEXT[key]
    if field.default is not dataclasses.MISSING:
        value = field.default
    elif field.default_factory is not dataclasses.MISSING:
        value = field.default_factory()
    else:
        return "required"
    if value is None or value == "":
        return "unset"
    if dataclasses.is_dataclass(value):
        return f"see `{key}` below"
    if type_name(tp, key, KEY_RULES) == "duration":
        return f"`{format_duration(value)}`"
    if type_name(tp, key, KEY_RULES) == "size":
        return f"`{format_size(value)}`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, tuple):
        return f"`[{', '.join(map(str, value))}]`"
    return f"`{value}`"


if __name__ == "__main__":
    print(render_reference(), end="")
