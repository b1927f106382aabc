"""An environment file's YAML as nodes: composing it (quickly where it is safe) and reading them.

``compose(text, file)`` gives the document's node tree (never constructed objects, so
duplicate keys and line numbers stay visible to ``specfile``) or raises ``SpecError``
(``SpecYamlInvalid``) with the line PyYAML reports. ``FileContext`` and the helpers below read
the nodes for ``specfile``: strings, lists, key pairs, duplicate keys, selector comments.
"""

from __future__ import annotations

import enum
import re
from typing import Final, Literal

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from condaops.reconciler.errors import SpecError
from condaops.reconciler.reasons import Reason
from condaops.reconciler.spec import normalize_selector

_STR, _NULL = "tag:yaml.org,2002:str", "tag:yaml.org,2002:null"
_COMMENT = re.compile(r"\s*#\s*(.*)$")
_SELECTOR = re.compile(r"\[([^\[\]]*)\]\s*$")


def compose(text: str, file: str) -> Node | None:
    fast = _compose_fast(text)
    if fast is not _SLOW:
        return fast
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
            reason=Reason.SPEC_YAML_INVALID,
        ) from exc
    except RecursionError as exc:  # PyYAML composes nested collections recursively
        raise SpecError(
            "invalid YAML: collections are nested too deeply; an environment file needs only a few levels",
            file=file,
            reason=Reason.SPEC_YAML_INVALID,
        ) from exc
    except yaml.reader.ReaderError as exc:  # control characters
        raise SpecError(
            f"invalid YAML: character #x{exc.character:04x} is not allowed; remove it",
            file=file,
            line=text.count("\n", 0, exc.position) + 1,
            reason=Reason.SPEC_YAML_INVALID,
        ) from exc
    except yaml.YAMLError as exc:
        raise SpecError(f"invalid YAML: {exc}", file=file, reason=Reason.SPEC_YAML_INVALID) from exc


# libyaml's composer (PyYAML's CSafeLoader, when built with it) is ~10x faster than the
# pure-Python one, which is most of the cost of parsing a file. It is used only where
# both read a document alike (checked on real environment files and fuzzed variants of
# them by benchmarks/check_yaml_fast_path.py): ASCII text without tabs, carriage
# returns, document markers, flow mappings, explicit keys, tags, anchors, aliases or
# block scalars, and shallow nesting. Otherwise, and whenever libyaml reports a
# problem, PyYAML composes the text again, so accepted files, rejections, messages and
# line numbers are its own.
_FAST_LOADER = getattr(yaml, "CSafeLoader", None)


class _Slow(enum.Enum):
    SLOW = "compose with PyYAML"


_SLOW: Final = _Slow.SLOW
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


def _compose_fast(text: str) -> Node | None | Literal[_Slow.SLOW]:
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
                if isinstance(item, ScalarNode):
                    continue  # most nodes: nothing to check, not stacked
                if isinstance(item, SequenceNode) and not item.flow_style:
                    return False
                stack.append((item, depth + 1))
        else:
            for key, value in node.value:
                if not isinstance(key, ScalarNode):
                    stack.append((key, depth + 1))
                if not isinstance(value, ScalarNode):
                    stack.append((value, depth + 1))
    return True


class FileContext:
    """File name, raw lines (for selectors) and warnings collected while parsing."""

    def __init__(self, file: str, lines: list[str]) -> None:
        self.file = file
        self.lines = lines
        self.warnings: list[str] = []

    def error(
        self, node: Node | None, message: str, reason: str = Reason.SPEC_INVALID, key: str | None = None
    ) -> SpecError:
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
                Reason.SELECTOR_INVALID,
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
                Reason.SELECTOR_INVALID,
            )
        return selector


def describe(node: Node | None) -> str:
    if node is None:
        return "empty"
    if not isinstance(node, ScalarNode):
        return "a mapping" if isinstance(node, MappingNode) else "a list"
    kind = node.tag.rsplit(":", 1)[-1]
    names = {"str": "a string", "null": "empty", "bool": "true/false", "int": "a number", "float": "a number"}
    return names.get(kind, f"a YAML {kind}")


def is_null(node: Node | None) -> bool:
    return node is None or (isinstance(node, ScalarNode) and node.tag == _NULL)


def string(ctx: FileContext, node: Node, what: str) -> str:
    if isinstance(node, ScalarNode) and node.tag == _STR and node.value.strip():
        return node.value.strip()
    hint = "; quote it" if isinstance(node, ScalarNode) and node.value else ""
    raise ctx.error(node, f"{what} must be a non-empty string, not {describe(node)}{hint}")


def items(ctx: FileContext, node: Node | None, key: str, example: str) -> list[Node]:
    if is_null(node):
        return []
    if not isinstance(node, SequenceNode):
        raise ctx.error(
            node,
            f"'{key}' must be a list, not {describe(node)}; write it as "
            f"'{key}: [{example}]' or one '- {example}' per line",
            key=key,
        )
    return list(node.value)


def pairs(ctx: FileContext, node: MappingNode) -> list[tuple[str, Node, Node]]:
    return [(string(ctx, k, "a key"), k, v) for k, v in node.value]


def reject_duplicate_keys(ctx: FileContext, root: Node | None) -> None:
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
                    Reason.SPEC_YAML_INVALID,
                    key.value,
                )
            if ident is not None:
                first[ident] = key.start_mark.line + 1
