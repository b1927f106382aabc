"""Parse environment.yaml files into ``Spec`` the way conda and conda-lock read them.

Keys: ``name`` (informational), ``channels`` (order kept, ``nodefaults`` dropped),
``dependencies`` (conda match specs, one ``pip:`` list, mamba ``sel(x): spec`` items),
``variables`` and conda-lock ``platforms``; ``prefix`` and ``category`` are ignored with a
warning. Selectors are conda-lock ``# [linux64]`` comments, read from the raw line since
YAML drops comments. The YAML is composed to nodes, never constructed, so duplicate keys
are caught and every problem has its 1-based line.

Rejections raise ``SpecError`` with one of these reasons:

* ``SpecTooLarge`` — over ``MAX_SPEC_BYTES``;  ``SpecNotUtf8`` — bytes that are not UTF-8;
* ``SpecTemplated`` — Jinja ``{{ }}`` / ``{% %}`` placeholders (render before committing);
* ``SpecYamlInvalid`` — YAML syntax errors, several documents, duplicate keys;
* ``SpecUnknownKey`` — a top-level key outside the ones above;
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

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import yaml
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from rattler import Channel, MatchSpec
from rattler.exceptions import InvalidChannelError, InvalidMatchSpecError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from condaops.reconciler.errors import SourceError, SpecError
from condaops.reconciler.spec import KNOWN_PLATFORMS, Dependency, Spec, normalize_selector

MAX_SPEC_BYTES = 1 << 20
ALLOWED_KEYS = ("name", "channels", "dependencies", "variables", "platforms")
IGNORED_KEYS = {
    "prefix": "condaops decides where environments are installed",
    "category": "conda-lock categories do not apply: every dependency is installed",
}
_INDEX_HINT = "configure pip.index_url / pip.extra_index_urls in condaops.yaml instead"

_STR, _NULL = "tag:yaml.org,2002:str", "tag:yaml.org,2002:null"
_LINE_BREAK = re.compile(r"\r\n|[\r\n\x85\u2028\u2029]")  # the line breaks PyYAML counts
_TEMPLATE = re.compile(r"\{\{|\{%")
_COMMENT = re.compile(r"\s*#\s*(.*)$")
_SELECTOR = re.compile(r"\[([^\[\]]*)\]\s*$")
_SEL_KEY = re.compile(r"sel\(([^()]*)\)")
_CREDENTIALS = re.compile(r"\$\{?\w|/t/[^/]+/")  # ${VAR}, $VAR, anaconda.org /t/<token>/
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BUILD = re.compile(r"[A-Za-z0-9_.+*]+")
_OPERATOR_SPACE = re.compile(r"(===|==|>=|<=|!=|~=|[<>=])\s+")
_LIST_SPACE = re.compile(r"\s*([,|])\s*")
_CONDA_NAME = re.compile(r"[^\s<>=!~]+")
_HASH = re.compile(r"--hash[=\s](sha256|sha384|sha512):([0-9a-fA-F]+)")
_HASH_LENGTH = {"sha256": 64, "sha384": 96, "sha512": 128}
_URL_SCHEMES = frozenset({"https", "http", "git+https", "git+http", "git+ssh", "git+git"})
_LOCAL = re.compile(r"[./~\\]|file:|[A-Za-z]:\\")  # how local paths start
_INDEX_OPTIONS = {"-i", "--index-url", "--extra-index-url", "-f", "--find-links", "--no-index"}


@dataclass(frozen=True, slots=True)
class ParsedSpec:
    """A parsed environment file: the spec and one-line warnings about it."""

    spec: Spec
    warnings: tuple[str, ...]


class _Unsupported(ValueError):
    """A pip line that is well-formed but that condaops refuses to build."""


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
    ctx = _Context(file, _LINE_BREAK.split(text))
    _reject_templates(ctx)
    root = _compose(text, file)
    _reject_duplicate_keys(ctx, root)
    spec = _parse_root(ctx, root)
    return ParsedSpec(spec, tuple(ctx.warnings))


# Pure and called for every dependency of every file; most lines repeat across files.
@functools.lru_cache(maxsize=16384)
def normalize_match_spec(text: str) -> str:
    """Canonical text for a conda match spec; raises ``ValueError`` if it is invalid.

    Whitespace is normalized to one space after the name and none inside a version
    constraint (``python >= 3.8, < 3.9`` → ``python >=3.8,<3.9``, ``pandas=2.0`` →
    ``pandas =2.0``); the package name is lower-cased; operators, builds, brackets and
    channel prefixes stay as written. If rattler would read the result differently from
    the input, the input (whitespace collapsed) is returned instead.
    """
    raw = " ".join(text.split())
    parsed = _parse_match_spec(raw)
    canonical = _canonical_match_spec(raw)
    try:
        same = str(MatchSpec(canonical)) == str(parsed)
    except InvalidMatchSpecError:
        same = False
    return canonical if same else raw


# --- bytes, templates, YAML ---------------------------------------------------------


def _too_large(file: str, size: int) -> SpecError:
    return SpecError(
        f"the file is {size} bytes, over the {MAX_SPEC_BYTES} byte limit for "
        "environment files; commit only the environment file itself",
        file=file,
        reason="SpecTooLarge",
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
            reason="SpecNotUtf8",
        ) from exc


def _reject_templates(ctx: _Context) -> None:
    if not any(_TEMPLATE.search(line) for line in ctx.lines):
        return  # the usual case: no placeholder anywhere, not even in a comment
    for number, line in enumerate(ctx.lines, start=1):
        code = "" if line.lstrip().startswith("#") else re.split(r"\s#", line, maxsplit=1)[0]
        if _TEMPLATE.search(code):
            raise SpecError(
                "contains a Jinja template placeholder ('{{ }}' or '{% %}'); render the template and commit the result",
                file=ctx.file,
                line=number,
                reason="SpecTemplated",
            )


def _compose(text: str, file: str) -> Node | None:
    fast = _compose_fast(text)
    if fast is not _SLOW:
        return fast  # type: ignore[return-value]
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        # A scanner error's context mark is where the bad token starts; the problem
        # mark may be far below it (an unclosed quote is noticed at the end of file).
        scanning = exc.context_mark and "scanning" in (exc.context or "")
        mark = exc.context_mark if scanning else exc.problem_mark or exc.context_mark
        problem = "; ".join(p for p in (exc.context, exc.problem) if p)
        raise SpecError(
            f"invalid YAML: {problem}; fix the syntax (indentation, ':' after keys, quotes)",
            file=file,
            line=mark.line + 1 if mark else None,
            reason="SpecYamlInvalid",
        ) from exc
    except RecursionError as exc:  # PyYAML composes nested collections recursively
        raise SpecError(
            "invalid YAML: collections are nested too deeply; an environment file needs only a few levels",
            file=file,
            reason="SpecYamlInvalid",
        ) from exc
    except yaml.reader.ReaderError as exc:  # control characters
        raise SpecError(
            f"invalid YAML: character #x{exc.character:04x} is not allowed; remove it",
            file=file,
            line=text.count("\n", 0, exc.position) + 1,
            reason="SpecYamlInvalid",
        ) from exc
    except yaml.YAMLError as exc:
        raise SpecError(f"invalid YAML: {exc}", file=file, reason="SpecYamlInvalid") from exc


# libyaml's composer (PyYAML's CSafeLoader, when built with it) is ~10x faster than the
# pure-Python one, which is most of the cost of parsing a file. It is used only where
# both read a document alike (checked on real environment files and fuzzed variants of
# them by benchmarks/check_yaml_fast_path.py): ASCII text without tabs, carriage
# returns, document markers, flow mappings, explicit keys, tags, anchors, aliases or
# block scalars, and shallow nesting. Otherwise, and whenever libyaml reports a
# problem, PyYAML composes the text again, so accepted files, rejections, messages and
# line numbers are its own.
_FAST_LOADER = getattr(yaml, "CSafeLoader", None)
_SLOW = object()  # "compose with PyYAML"
# Where the two differ: tabs, carriage returns, '?' and '{' anywhere; document markers;
# a tag, anchor, alias, block scalar, directive or reserved character where a node
# starts (but not '!=' or '>=' inside a match spec).
_FAST_UNSAFE = re.compile(r"[?{\t\r]|^(?:---|\.\.\.)|(?:^|[-:,\[]\s|[\[,])\s*[!&*|>%@`]", re.MULTILINE)
# libyaml's composer recurses in C without a limit (a deep file would crash the
# process): every nesting level needs one of these characters, so their count bounds
# the depth before composing.
_NESTING_CHARS = "-:?[{"
_FAST_MAX_NESTING_CHARS = 2000
# Deeper trees go to PyYAML, whose recursion limit decides what is too deep.
_FAST_MAX_DEPTH = 64


def _compose_fast(text: str) -> Node | None | object:
    """The document composed by libyaml, or ``_SLOW`` when PyYAML must compose it."""
    if _FAST_LOADER is None or not text.isascii() or _FAST_UNSAFE.search(text):
        return _SLOW
    if sum(text.count(c) for c in _NESTING_CHARS) > _FAST_MAX_NESTING_CHARS:
        return _SLOW
    try:
        root = yaml.compose(text, Loader=_FAST_LOADER)
    except (yaml.YAMLError, ValueError):
        return _SLOW  # PyYAML reports the problem, with its own message and line
    return root if _composed_alike(root) else _SLOW


def _composed_alike(root: Node | None) -> bool:
    """Whether PyYAML would give this tree the same nodes and the marks we read.

    The two differ in where a block collection ends (libyaml: at the next token), which
    matters only for a block sequence that is itself a list item (``- - x``), whose end
    is where a selector comment would be looked for; and in the marks of a one-pair
    mapping inside a flow sequence (``[a: b]``).
    """
    stack: list[tuple[Node | None, int]] = [(root, 1)]
    seen: set[int] = set()
    while stack:
        node, depth = stack.pop()
        if node is None or isinstance(node, ScalarNode) or id(node) in seen:
            continue
        seen.add(id(node))
        if depth > _FAST_MAX_DEPTH or isinstance(node, MappingNode) and node.flow_style:
            return False
        if isinstance(node, SequenceNode):
            for item in node.value:
                if isinstance(item, SequenceNode) and not item.flow_style:
                    return False
                stack.append((item, depth + 1))
        else:
            stack.extend((n, depth + 1) for pair in node.value for n in pair)
    return True


# --- the walk over composed nodes ---------------------------------------------------


class _Context:
    """File name, raw lines (for selectors) and warnings collected while parsing."""

    def __init__(self, file: str, lines: list[str]) -> None:
        self.file = file
        self.lines = lines
        self.warnings: list[str] = []

    def error(self, node: Node | None, message: str, reason: str = "SpecInvalid", key: str | None = None) -> SpecError:
        line = node.start_mark.line + 1 if node is not None else None
        return SpecError(message, file=self.file, line=line, key=key, reason=reason)

    def warn(self, node: Node, message: str) -> None:
        self.warnings.append(f"line {node.start_mark.line + 1}: {message}")

    def selector(self, node: Node) -> str | None:
        """The conda-lock ``# [sel]`` comment after ``node`` on its last line, if any."""
        end = node.end_mark
        rest = self.lines[end.line][end.column :] if end.line < len(self.lines) else ""
        comment = _COMMENT.match(rest)
        if not comment or not comment.group(1).startswith("["):
            return None  # no comment, or an ordinary one
        found = _SELECTOR.match(comment.group(1))
        if not found:
            raise self.error(
                node,
                "a selector comment must stand alone at the end of the line, e.g. '- gcc  # [linux64]'",
                "SelectorInvalid",
            )
        return self.check_selector(node, found.group(1))

    def check_selector(self, node: Node, expression: str) -> str:
        selector = normalize_selector(expression)
        if selector is None:
            raise self.error(
                node,
                f"unsupported selector '{expression.strip()}': use one "
                "platform name such as linux64, osxarm64, win or unix, "
                "optionally as 'not <name>'",
                "SelectorInvalid",
            )
        return selector


def _describe(node: Node) -> str:
    if not isinstance(node, ScalarNode):
        return "a mapping" if isinstance(node, MappingNode) else "a list"
    kind = node.tag.rsplit(":", 1)[-1]
    names = {"str": "a string", "null": "empty", "bool": "true/false", "int": "a number", "float": "a number"}
    return names.get(kind, f"a YAML {kind}")


def _is_null(node: Node | None) -> bool:
    return node is None or (isinstance(node, ScalarNode) and node.tag == _NULL)


def _string(ctx: _Context, node: Node, what: str) -> str:
    if isinstance(node, ScalarNode) and node.tag == _STR and node.value.strip():
        return node.value.strip()
    hint = "; quote it" if isinstance(node, ScalarNode) and node.value else ""
    raise ctx.error(node, f"{what} must be a non-empty string, not {_describe(node)}{hint}")


def _items(ctx: _Context, node: Node | None, key: str, example: str) -> list[Node]:
    if _is_null(node):
        return []
    if not isinstance(node, SequenceNode):
        raise ctx.error(
            node,
            f"'{key}' must be a list, not {_describe(node)}; write it as "
            f"'{key}: [{example}]' or one '- {example}' per line",
            key=key,
        )
    return list(node.value)


def _pairs(ctx: _Context, node: MappingNode) -> list[tuple[str, Node, Node]]:
    return [(_string(ctx, k, "a key"), k, v) for k, v in node.value]


def _reject_duplicate_keys(ctx: _Context, root: Node | None) -> None:
    """PyYAML keeps the last of duplicate keys silently; refuse them instead."""
    stack, visited = [root], set()
    while stack:
        node = stack.pop()
        if node is None or isinstance(node, ScalarNode) or id(node) in visited:
            continue
        visited.add(id(node))  # aliases may make the node graph cyclic
        if isinstance(node, SequenceNode):
            stack.extend(node.value)
            continue
        first: dict[tuple[str, str], int] = {}
        for key, value in node.value:
            stack.extend((key, value))
            ident = (key.tag, key.value) if isinstance(key, ScalarNode) else None
            if ident in first:
                raise ctx.error(
                    key,
                    f"duplicate key '{key.value}' (first on line {first[ident]}); keep only one",
                    "SpecYamlInvalid",
                    key.value,
                )
            if ident is not None:
                first[ident] = key.start_mark.line + 1


def _parse_root(ctx: _Context, root: Node | None) -> Spec:
    if _is_null(root):
        raise ctx.error(None, "the file is empty; an environment file needs at least 'dependencies:'")
    if not isinstance(root, MappingNode):
        raise ctx.error(
            root, f"the top level must be a mapping with keys {', '.join(ALLOWED_KEYS)}, not {_describe(root)}"
        )
    fields: dict[str, Node] = {}
    for key, key_node, value in _pairs(ctx, root):
        if key in ALLOWED_KEYS:
            fields[key] = value
        elif key in IGNORED_KEYS:
            ctx.warn(key_node, f"'{key}:' is ignored: {IGNORED_KEYS[key]}")
        else:
            hint = _INDEX_HINT if key == "pip-repositories" else "remove or rename it"
            raise ctx.error(
                key_node,
                f"unknown key '{key}' (allowed: {', '.join(ALLOWED_KEYS)}; ignored: {', '.join(IGNORED_KEYS)}); {hint}",
                "SpecUnknownKey",
                key,
            )
    channels = _parse_channels(ctx, fields.get("channels"))  # in file order, mostly
    conda, pip = _parse_dependencies(ctx, fields.get("dependencies"))
    if not conda and not pip:
        ctx.warn(fields.get("dependencies") or root, "no dependencies: the environment will be empty")
    name = fields.get("name")
    if not _is_null(name) and not isinstance(name, ScalarNode):
        raise ctx.error(name, f"'name' must be a string, not {_describe(name)}", key="name")
    return Spec(
        channels=channels,
        dependencies=conda,
        pip=pip,
        variables=_parse_variables(ctx, fields.get("variables")),
        platforms=_parse_platforms(ctx, fields.get("platforms")),
        name=None if _is_null(name) else name.value.strip() or None,  # type: ignore[union-attr]
    )


def _parse_channels(ctx: _Context, node: Node | None) -> tuple[str, ...]:
    channels: list[str] = []
    for item in _items(ctx, node, "channels", "conda-forge"):
        channel = _string(ctx, item, "a channel").rstrip("/")
        _check_channel(ctx, item, channel)
        if channel == "nodefaults":
            continue  # only means "no implicit defaults", which condaops never adds
        if channel in channels:
            ctx.warn(item, f"channel '{channel}' is listed twice; the first one counts")
            continue
        channels.append(channel)
    return tuple(channels)


def _check_channel(ctx: _Context, node: Node, channel: str) -> None:
    if _carries_credentials(channel):
        raise ctx.error(
            node,
            f"channel '{channel}' carries credentials or a ${{VAR}} "
            "placeholder; credentials belong in condaops configuration, name the "
            "plain channel here",
            "ChannelInvalid",
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
            "ChannelInvalid",
            "channels",
        ) from exc
    if _LOCAL.match(channel):
        ctx.warn(node, f"channel '{channel}' is a local path on the build host")


def _parse_variables(ctx: _Context, node: Node | None) -> tuple[tuple[str, str], ...]:
    if _is_null(node):
        return ()
    if not isinstance(node, MappingNode):
        raise ctx.error(node, f"'variables' must be a mapping of NAME: value, not {_describe(node)}", key="variables")
    out = []
    for key, key_node, value in _pairs(ctx, node):
        if not _ENV_NAME.fullmatch(key):
            raise ctx.error(
                key_node, f"'{key}' is not a valid environment variable name (letters, digits and '_')", key="variables"
            )
        if _is_null(value) or not isinstance(value, ScalarNode):
            raise ctx.error(
                value,
                f"variable '{key}' must have a single value, not {_describe(value)}; use \"\" for an empty string",
                key="variables",
            )
        out.append((key, value.value))  # the text as written: 'true' stays 'true'
    return tuple(sorted(out))


def _parse_platforms(ctx: _Context, node: Node | None) -> tuple[str, ...]:
    platforms: set[str] = set()
    for item in _items(ctx, node, "platforms", "linux-64"):
        platform = _string(ctx, item, "a platform")
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


def _parse_dependencies(ctx: _Context, node: Node | None) -> tuple[tuple[Dependency, ...], tuple[Dependency, ...]]:
    conda: list[_Entry] = []
    pip: list[_Entry] | None = None
    pip_key: Node | None = None
    for item in _items(ctx, node, "dependencies", "python=3.12"):
        if not isinstance(item, MappingNode):
            conda.append(_conda_entry(ctx, item, ctx.selector(item)))
            continue
        pairs = _pairs(ctx, item)
        key, key_node, value = pairs[0] if len(pairs) == 1 else ("", item, item)
        selector = _SEL_KEY.fullmatch(key)
        if key == "pip" and pip is None:
            pip, pip_key = _pip_entries(ctx, value), key_node
        elif key == "pip":
            raise ctx.error(key_node, "a second 'pip:' section; merge the two")
        elif selector:
            expression = ctx.check_selector(key_node, selector.group(1))
            conda.append(_conda_entry(ctx, value, expression))
        else:
            what = f"key '{key}'" if key else f"{len(pairs)} keys"
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


def _conda_entry(ctx: _Context, node: Node, selector: str | None) -> _Entry:
    text = _string(ctx, node, "a dependency")
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
            "MatchSpecInvalid",
            "dependencies",
        ) from exc
    name = _CONDA_NAME.match(normalized.split("[", 1)[0].rpartition("::")[2])
    return (name.group(0) if name else normalized), Dependency(normalized, selector), node


def _pip_entries(ctx: _Context, node: Node) -> list[_Entry]:
    entries = []
    for item in _items(ctx, node, "pip", "requests>=2"):
        text = _string(ctx, item, "a pip requirement")
        selector = ctx.selector(item)
        try:
            name, normalized = _normalize_pip(text)
        except _Unsupported as exc:
            raise ctx.error(item, f"'{text}': {exc}", "PipRequirementUnsupported", "pip") from exc
        except ValueError as exc:
            raise ctx.error(
                item,
                f"'{text}' is not a valid pip requirement: {exc}; write it like 'requests>=2.31' or 'name @ https://…'",
                "PipRequirementInvalid",
                "pip",
            ) from exc
        entries.append((name, Dependency(normalized, selector), item))
    return entries


def _dedupe(ctx: _Context, entries: list[_Entry]) -> tuple[Dependency, ...]:
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


# --- match specs and pip requirements -----------------------------------------------


def _parse_match_spec(raw: str) -> MatchSpec:
    if not raw:
        raise ValueError("it is empty")
    body = raw.split("[", 1)[0].rpartition("::")[2]
    if "/" in body or body.endswith((".conda", ".tar.bz2")):
        raise ValueError("package URLs and paths are not supported; name the package")
    try:
        parsed = MatchSpec(raw)
    except InvalidMatchSpecError as exc:
        raise ValueError(str(exc).splitlines()[0]) from exc
    # rattler's lenient parser turns stray words into a build string ("foo 1 2 3").
    if parsed.build is not None and not _BUILD.fullmatch(parsed.build):
        raise ValueError(f"'{parsed.build}' is not a build string (letters, digits, '_', '.', '+' and '*' globs)")
    return parsed


def _canonical_match_spec(raw: str) -> str:
    cut = raw.split("[", 1)[0].rfind("::")
    prefix, body = (raw[: cut + 2], raw[cut + 2 :]) if cut >= 0 else ("", raw)
    core, bracket, rest = body.partition("[")
    core = _OPERATOR_SPACE.sub(r"\1", _LIST_SPACE.sub(r"\1", core.strip()))
    name = _CONDA_NAME.match(core)
    if name is None:
        return raw
    text = " ".join([name.group(0).lower(), *core[name.end() :].split()])
    return f"{prefix.strip()}{text}{bracket}{rest}"


@functools.lru_cache(maxsize=4096)  # pure; pip lines repeat across files
def _normalize_pip(text: str) -> tuple[str, str]:
    """(canonical name, canonical line) for one pip line; raises ValueError/_Unsupported."""
    _reject_pip_options(text)
    if _LOCAL.match(text):
        raise _Unsupported(_LOCAL_MESSAGE)
    if re.match(r"[a-z]+\+[a-z]+://", text):
        return _bare_vcs(text)
    if re.match(r"https?://", text):
        raise ValueError("a bare URL has no package name; write 'name @ URL'")
    requirement, *options = re.split(r"\s+(?=--)", text)
    hashes = sorted(_check_hash(option) for option in options)
    try:
        req = Requirement(requirement)
    except InvalidRequirement as exc:
        raise ValueError(str(exc).splitlines()[0]) from exc
    if req.url:
        _check_pip_url(req.url)
    req.name = canonicalize_name(req.name)
    req.extras = {canonicalize_name(extra) for extra in req.extras}
    return req.name, " ".join([str(req), *hashes])


_LOCAL_MESSAGE = (
    "local paths are not supported: a build sees only the environment file; "
    "publish the package or reference it as 'name @ git+https://…'"
)


def _reject_pip_options(text: str) -> None:
    if not text.startswith("-"):
        return
    flag = text.split()[0].split("=", 1)[0]
    if flag == "--editable" or flag.startswith("-e"):
        raise _Unsupported(
            "editable installs (-e) are not supported: environments are "
            "immutable; use 'name @ git+https://…' or publish the package"
        )
    if flag in ("-r", "--requirement", "-c", "--constraint"):
        raise _Unsupported(
            "requirement files (-r/-c) are not supported; list the requirements in the pip: section itself"
        )
    if {word.split("=", 1)[0] for word in text.split()} & _INDEX_OPTIONS:
        raise _Unsupported(f"pip index options are not supported here; {_INDEX_HINT}")
    raise _Unsupported(f"pip option '{flag}' is not supported in environment files; remove it")


def _bare_vcs(text: str) -> tuple[str, str]:
    scheme = text.split("://", 1)[0]
    if not scheme.startswith("git+"):
        raise _Unsupported(f"'{scheme}' references are not supported; use git+https")
    if any(c.isspace() for c in text):
        raise ValueError("a VCS URL cannot contain spaces")
    _check_pip_url(text)
    egg = re.search(r"[#&]egg=([A-Za-z0-9._-]+)", text)
    return (canonicalize_name(egg.group(1)) if egg else text), text


def _check_pip_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme in ("file", "git+file") or not parts.scheme:
        raise _Unsupported(_LOCAL_MESSAGE)
    if parts.scheme not in _URL_SCHEMES:
        raise ValueError(f"URL scheme '{parts.scheme}' is not supported (use https or git+https)")
    if _carries_credentials(url):
        raise _Unsupported(
            "the URL carries credentials or a ${VAR} placeholder; credentials belong in condaops configuration"
        )


def _carries_credentials(url: str) -> bool:
    try:
        password = urlsplit(url).password
    except ValueError:  # e.g. an unbalanced '[': not a URL, so no password in it
        password = None
    return bool(_CREDENTIALS.search(url) or password)


def _check_hash(option: str) -> str:
    found = _HASH.fullmatch(option.strip())
    if not found:
        word = option.split()[0].split("=", 1)[0]
        if word == "--hash":
            raise ValueError(f"'{option}' is not '--hash=sha256:<hex digest>'")
        raise _Unsupported(f"pip option '{word}' is not supported in environment files")
    algorithm, digest = found.groups()
    if len(digest) != _HASH_LENGTH[algorithm]:
        raise ValueError(
            f"the {algorithm} digest has {len(digest)} hex digits, not {_HASH_LENGTH[algorithm]}; copy the full hash"
        )
    return f"--hash={algorithm}:{digest.lower()}"
