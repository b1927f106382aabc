"""Parse environment.yaml files into ``Spec`` the way conda and conda-lock read them.

Keys: ``name`` (informational), ``channels`` (order kept, ``nodefaults`` dropped),
``dependencies`` (conda match specs, one ``pip:`` list, mamba ``sel(x): spec`` items),
``variables``, conda-lock ``platforms`` and ``condaops`` (settings of condaops' own that
are not part of the environment's identity: ``display_name``, the name its Jupyter kernels
and modules show); ``prefix`` and ``category`` are ignored with a warning. Selectors are
conda-lock ``# [linux64]`` comments, read from the raw line since YAML drops comments.
The YAML is composed to nodes, never constructed, so duplicate keys are caught and every
problem has its 1-based line.

Rejections raise ``SpecError`` with one of these reasons:

* ``SpecTooLarge`` — over ``MAX_SPEC_BYTES``;  ``SpecNotUtf8`` — bytes that are not UTF-8;
* ``SpecTemplated`` — Jinja ``{{ }}`` / ``{% %}`` placeholders (render before committing);
* ``SpecYamlInvalid`` — YAML syntax errors, several documents, duplicate keys;
* ``SpecUnknownKey`` — a top-level key outside the ones above, or under ``condaops:``;
* ``SpecInvalid`` — empty file, wrong types, unknown platforms, bad variables;
* ``ChannelInvalid`` — channels carrying credentials or ``${VAR}`` placeholders;
* ``MatchSpecInvalid`` — a conda dependency rattler cannot parse (or a mangled build);
* ``SelectorInvalid`` — a selector other than ``name`` / ``not name`` (spec.KNOWN_SELECTORS);
* ``PipRequirementInvalid`` — a ``pip:`` line that is not a PEP 508 requirement;
* ``PipRequirementUnsupported`` — editable installs, local paths, ``-r``, pip options.

``load_spec_file`` wraps IO failures in ``SourceError`` (transient: the source may be
changing under us).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from rattler import Channel
from rattler.exceptions import InvalidChannelError
from yaml.nodes import MappingNode, Node, ScalarNode

from condaops.reconciler.errors import SourceError, SpecError
from condaops.reconciler.names import KNOWN_PLATFORMS
from condaops.reconciler.reasons import Reason
from condaops.reconciler.requirements import (
    CONDA_NAME,
    INDEX_HINT,
    LOCAL,
    Unsupported,
    carries_credentials,
    normalize_match_spec,
    normalize_pip,
)
from condaops.reconciler.spec import MAX_SPEC_BYTES, Dependency, ParsedSpec, Spec
from condaops.reconciler.specyaml import (
    FileContext,
    compose,
    describe,
    is_null,
    items,
    pairs,
    reject_duplicate_keys,
    string,
)

ALLOWED_KEYS = ("name", "channels", "dependencies", "variables", "platforms", "condaops")
CONDAOPS_KEYS = ("display_name",)  # under condaops:
MAX_DISPLAY_NAME = 100  # characters: a launcher tile or a menu entry, not a description
IGNORED_KEYS = {
    "prefix": "condaops decides where environments are installed",
    "category": "conda-lock categories do not apply: every dependency is installed",
}

_LINE_BREAK = re.compile(r"\r\n|[\r\n\x85\u2028\u2029]")  # the line breaks PyYAML counts
_TEMPLATE = re.compile(r"\{\{|\{%")
_SEL_KEY = re.compile(r"sel\(([^()]*)\)")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_STR_TAG = "tag:yaml.org,2002:str"
__all__ = ["MAX_SPEC_BYTES", "ParsedSpec", "load_spec_file", "parse_spec_bytes"]


# --- public entry points ------------------------------------------------------------


def load_spec_file(path: Path, *, file: str | None = None) -> ParsedSpec:
    """Read and parse ``path``; ``file`` is the name shown to users (default: the path)."""
    display = file or str(path)
    try:
        with path.open("rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size > MAX_SPEC_BYTES:
                raise _too_large(display, size)
            data = fh.read(MAX_SPEC_BYTES + 1)
    except OSError as exc:
        raise SourceError(
            f"{display}: cannot read the file ({exc.strerror or exc}); it is read again at the next refresh"
        ) from exc
    return parse_spec_bytes(data, file=display)


def parse_spec_bytes(data: bytes, *, file: str) -> ParsedSpec:
    """Parse the bytes of an environment file named ``file``; raises ``SpecError``."""
    if len(data) > MAX_SPEC_BYTES:
        raise _too_large(file, len(data))
    text = _decode(data, file)
    ctx = FileContext(file, _LINE_BREAK.split(text))
    _reject_templates(ctx, text)
    root = compose(text, file)
    reject_duplicate_keys(ctx, root)
    spec = _parse_root(ctx, root)
    return ParsedSpec(spec, tuple(ctx.warnings))


# --- bytes, templates, YAML ---------------------------------------------------------


def _too_large(file: str, size: int) -> SpecError:
    return SpecError(
        f"the file is {size} bytes, over the {MAX_SPEC_BYTES} byte limit for "
        "environment files; commit only the environment file itself",
        file=file,
        reason=Reason.SPEC_TOO_LARGE,
    )


def _decode(data: bytes, file: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise SpecError(
            f"not valid UTF-8 at byte offset {exc.start}; save the file as UTF-8",
            file=file,
            line=line,
            reason=Reason.SPEC_NOT_UTF8,
        ) from exc


def _reject_templates(ctx: FileContext, text: str) -> None:
    if not _TEMPLATE.search(text):  # a placeholder's two characters never span a line break
        return  # the usual case: no placeholder anywhere, not even in a comment
    for number, line in enumerate(ctx.lines, start=1):
        code = "" if line.lstrip().startswith("#") else re.split(r"\s#", line, maxsplit=1)[0]
        if _TEMPLATE.search(code):
            raise SpecError(
                "contains a Jinja template placeholder ('{{ }}' or '{% %}'); render the template and commit the result",
                file=ctx.file,
                line=number,
                reason=Reason.SPEC_TEMPLATED,
            )


def _parse_root(ctx: FileContext, root: Node | None) -> Spec:
    if is_null(root):
        raise ctx.error(None, "the file is empty; an environment file needs at least 'dependencies:'")
    if not isinstance(root, MappingNode):
        raise ctx.error(
            root, f"the top level must be a mapping with keys {', '.join(ALLOWED_KEYS)}, not {describe(root)}"
        )
    fields: dict[str, Node] = {}
    for key, key_node, value in pairs(ctx, root):
        if key in ALLOWED_KEYS:
            fields[key] = value
        elif key in IGNORED_KEYS:
            ctx.warn(key_node, f"'{key}:' is ignored: {IGNORED_KEYS[key]}")
        else:
            hint = INDEX_HINT if key == "pip-repositories" else "remove or rename it"
            raise ctx.error(
                key_node,
                f"unknown key '{key}' (allowed: {', '.join(ALLOWED_KEYS)}; ignored: {', '.join(IGNORED_KEYS)}); {hint}",
                Reason.SPEC_UNKNOWN_KEY,
                key,
            )
    channels = _parse_channels(ctx, fields.get("channels"))  # in file order, mostly
    conda, pip = _parse_dependencies(ctx, fields.get("dependencies"))
    if not conda and not pip:
        ctx.warn(fields.get("dependencies") or root, "no dependencies: the environment will be empty")
    name = fields.get("name")
    if not is_null(name) and not isinstance(name, ScalarNode):
        raise ctx.error(name, f"'name' must be a string, not {describe(name)}", key="name")
    return Spec(
        channels=channels,
        dependencies=conda,
        pip=pip,
        variables=_parse_variables(ctx, fields.get("variables")),
        platforms=_parse_platforms(ctx, fields.get("platforms")),
        name=None if is_null(name) or not isinstance(name, ScalarNode) else name.value.strip() or None,
        display_name=_parse_condaops(ctx, fields.get("condaops")),
    )


def _parse_condaops(ctx: FileContext, node: Node | None) -> str | None:
    """The ``condaops:`` mapping; returns its ``display_name`` (None when not set)."""
    if is_null(node):
        return None
    if not isinstance(node, MappingNode):
        raise ctx.error(
            node,
            f"'condaops' must be a mapping of condaops settings (keys: {', '.join(CONDAOPS_KEYS)}), "
            f"not {describe(node)}; write it as 'condaops:' then '  display_name: My tools' on the next line",
            key="condaops",
        )
    display_name = None
    for key, key_node, value in pairs(ctx, node):
        if key not in CONDAOPS_KEYS:
            raise ctx.error(
                key_node,
                f"unknown key 'condaops.{key}' (allowed: {', '.join(CONDAOPS_KEYS)}); remove or rename it",
                Reason.SPEC_UNKNOWN_KEY,
                f"condaops.{key}",
            )
        display_name = _display_name(ctx, value)
    return display_name


def _display_name(ctx: FileContext, node: Node) -> str:
    key = "condaops.display_name"
    text = node.value.strip() if isinstance(node, ScalarNode) and node.tag == _STR_TAG else None
    if not text:
        hint = "; quote it" if isinstance(node, ScalarNode) and node.value else ""
        raise ctx.error(node, f"'{key}' must be a non-empty string, not {describe(node)}{hint}", key=key)
    if any(not c.isprintable() for c in text):
        raise ctx.error(node, f"'{key}' must be one line of printable text (no line breaks or tabs)", key=key)
    if len(text) > MAX_DISPLAY_NAME:
        raise ctx.error(
            node, f"'{key}' is {len(text)} characters long; keep it to {MAX_DISPLAY_NAME} or fewer", key=key
        )
    return text


def _parse_channels(ctx: FileContext, node: Node | None) -> tuple[str, ...]:
    channels: list[str] = []
    for item in items(ctx, node, "channels", "conda-forge"):
        channel = string(ctx, item, "a channel").rstrip("/")
        _check_channel(ctx, item, channel)
        if channel == "nodefaults":
            continue  # only means "no implicit defaults", which condaops never adds
        if channel in channels:
            ctx.warn(item, f"channel '{channel}' is listed twice; the first one counts")
            continue
        channels.append(channel)
    return tuple(channels)


def _check_channel(ctx: FileContext, node: Node, channel: str) -> None:
    if carries_credentials(channel):
        raise ctx.error(
            node,
            f"channel '{channel}' carries credentials or a ${{VAR}} "
            "placeholder; credentials belong in condaops configuration, name the "
            "plain channel here",
            Reason.CHANNEL_INVALID,
            "channels",
        )
    try:
        if any(c.isspace() for c in channel):
            raise ValueError("it contains whitespace")
        Channel(channel)
    except (ValueError, InvalidChannelError) as exc:
        reason = str(exc).splitlines()[0]
        raise ctx.error(
            node,
            f"channel '{channel}' is not a channel name or URL ({reason}); "
            "write it like 'conda-forge' or 'https://host/channel'",
            Reason.CHANNEL_INVALID,
            "channels",
        ) from exc
    if LOCAL.match(channel):
        ctx.warn(node, f"channel '{channel}' is a local path on the build host")


def _parse_variables(ctx: FileContext, node: Node | None) -> tuple[tuple[str, str], ...]:
    if is_null(node):
        return ()
    if not isinstance(node, MappingNode):
        raise ctx.error(node, f"'variables' must be a mapping of NAME: value, not {describe(node)}", key="variables")
    out = []
    for key, key_node, value in pairs(ctx, node):
        if not _ENV_NAME.fullmatch(key):
            raise ctx.error(
                key_node, f"'{key}' is not a valid environment variable name (letters, digits and '_')", key="variables"
            )
        if is_null(value) or not isinstance(value, ScalarNode):
            raise ctx.error(
                value,
                f"variable '{key}' must have a single value, not {describe(value)}; use \"\" for an empty string",
                key="variables",
            )
        out.append((key, value.value))  # the text as written: 'true' stays 'true'
    return tuple(sorted(out))


def _parse_platforms(ctx: FileContext, node: Node | None) -> tuple[str, ...]:
    platforms: set[str] = set()
    for item in items(ctx, node, "platforms", "linux-64"):
        platform = string(ctx, item, "a platform")
        if platform not in KNOWN_PLATFORMS:
            raise ctx.error(
                item, f"unknown platform '{platform}'; use one of {', '.join(KNOWN_PLATFORMS)}", key="platforms"
            )
        if platform in platforms:
            ctx.warn(item, f"platform '{platform}' is listed twice")
        platforms.add(platform)
    return tuple(sorted(platforms))


# --- dependencies -------------------------------------------------------------------

_Entry = tuple[str, Dependency, Node]  # (package name, dependency, node for messages)


def _parse_dependencies(ctx: FileContext, node: Node | None) -> tuple[tuple[Dependency, ...], tuple[Dependency, ...]]:
    conda: list[_Entry] = []
    pip: list[_Entry] | None = None
    pip_key: Node | None = None
    for item in items(ctx, node, "dependencies", "python=3.12"):
        if not isinstance(item, MappingNode):
            conda.append(_conda_entry(ctx, item, ctx.selector(item)))
            continue
        found = pairs(ctx, item)
        key, key_node, value = found[0] if len(found) == 1 else ("", item, item)
        selector = _SEL_KEY.fullmatch(key)
        if key == "pip" and pip is None:
            pip, pip_key = _pip_entries(ctx, value), key_node
        elif key == "pip":
            raise ctx.error(key_node, "a second 'pip:' section; merge the two")
        elif selector:
            expression = ctx.check_selector(key_node, selector.group(1))
            conda.append(_conda_entry(ctx, value, expression))
        else:
            what = f"key '{key}'" if key else f"{len(found)} keys"
            raise ctx.error(
                item,
                "a dependency must be a match spec, a 'pip:' list or "
                f"'sel(<platform>): spec', not a mapping with {what}",
            )
    if pip_key is not None and "pip" not in {name for name, _, _ in conda}:
        ctx.warn(
            pip_key,
            "a 'pip:' section but no 'pip' in the conda dependencies; add 'pip' so the environment has its own pip",
        )
    return _dedupe(ctx, conda), _dedupe(ctx, pip or [])


def _conda_entry(ctx: FileContext, node: Node, selector: str | None) -> _Entry:
    text = string(ctx, node, "a dependency")
    prefix = text.split("[", 1)[0].rpartition("::")[0]
    if prefix:
        _check_channel(ctx, node, prefix)
    try:
        normalized = normalize_match_spec(text)
    except ValueError as exc:
        raise ctx.error(
            node,
            f"'{text}' is not a valid conda match spec: {exc}; write it "
            "like 'numpy >=1.26,<2', 'python=3.12' or 'conda-forge::pkg'",
            Reason.MATCH_SPEC_INVALID,
            "dependencies",
        ) from exc
    name = CONDA_NAME.match(normalized.split("[", 1)[0].rpartition("::")[2])
    return (name.group(0) if name else normalized), Dependency(normalized, selector), node


def _pip_entries(ctx: FileContext, node: Node) -> list[_Entry]:
    entries = []
    for item in items(ctx, node, "pip", "requests>=2"):
        text = string(ctx, item, "a pip requirement")
        selector = ctx.selector(item)
        try:
            name, normalized = normalize_pip(text)
        except Unsupported as exc:
            raise ctx.error(item, f"'{text}': {exc}", Reason.PIP_REQUIREMENT_UNSUPPORTED, "pip") from exc
        except ValueError as exc:
            raise ctx.error(
                item,
                f"'{text}' is not a valid pip requirement: {exc}; write it like 'requests>=2.31' or 'name @ https://…'",
                Reason.PIP_REQUIREMENT_INVALID,
                "pip",
            ) from exc
        entries.append((name, Dependency(normalized, selector), item))
    return entries


def _dedupe(ctx: FileContext, entries: list[_Entry]) -> tuple[Dependency, ...]:
    """Sorted dependencies without exact repeats or selector copies of a line for all."""
    everywhere = {dep.text for _, dep, _ in entries if dep.selector is None}
    kept: set[Dependency] = set()
    by_name: dict[tuple[str, str | None], str] = {}
    for name, dep, node in entries:
        if dep in kept:
            ctx.warn(node, f"'{dep.text}' is listed twice; the repeat is ignored")
        elif dep.selector is not None and dep.text in everywhere:
            # Also keeps sorting safe: Dependency cannot order None against a selector.
            ctx.warn(node, f"'{dep.text}' is already listed for every platform; the [{dep.selector}] line is ignored")
        else:
            other = by_name.setdefault((name, dep.selector), dep.text)
            if other != dep.text:
                ctx.warn(node, f"'{name}' is listed more than once ('{other}', '{dep.text}'); all constraints apply")
            kept.add(dep)
    return tuple(sorted(kept))
