"""Check: specfile's libyaml fast path composes documents exactly as PyYAML does.

``reconciler/specyaml.py`` composes environment files with libyaml when that gives the
same result as PyYAML's pure-Python composer (10x faster; see ``specyaml._compose_fast``). This
script compares the two on the real environment files in ``../shared/realdata/envs``,
the YAML snippets found in the test suite, generated specs like ``bench_plan``'s, and
random mutations of all of them (inserted indicators, quotes, tabs, control and
non-ASCII characters; repeated, dropped, re-indented and joined lines). For every text
the fast path accepts, PyYAML must succeed too, with the same nodes (kind, tag, value,
start mark; end mark for scalars and flow collections — the marks specfile reads), and
``parse_spec_bytes`` must give the same spec, warnings or error (reason, message, line)
with the fast path switched off. Prints counts; exits 1 on any mismatch.

Run: ``.venv/bin/python benchmarks/check_yaml_fast_path.py [--mutations 30000]``.
"""

from __future__ import annotations

import argparse
import ast
import collections
import random
import sys

import _common as c
import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from condaops.reconciler import specfile, specyaml
from condaops.reconciler.errors import SpecError

ALPHABET = list("-:[]{},#&*!|>'\"%@` \t\n\r?x0.=<~\\") + ["\u2028", "\x85", "é", "\x00", "\x7f", "\ufeff"]


def signature(root: Node | None) -> list[object]:
    """Every node in document order: what specfile may read of it."""
    out: list[object] = []
    stack: list[Node | None] = [root]
    seen: set[int] = set()
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            out.append(None if node is None else "alias")
            continue
        seen.add(id(node))
        block = isinstance(node, (MappingNode, SequenceNode)) and not node.flow_style
        end = None if block else (node.end_mark.line, node.end_mark.column)
        value = node.value if isinstance(node, ScalarNode) else len(node.value)
        out.append((type(node).__name__, node.tag, value, node.start_mark.line, node.start_mark.column, end))
        if isinstance(node, SequenceNode):
            stack.extend(reversed(node.value))
        elif isinstance(node, MappingNode):
            for key, val in reversed(node.value):
                stack.extend((val, key))
    return out


def corpus(rng: random.Random) -> list[str]:
    texts = [p.read_bytes().decode("utf-8", "replace") for p in sorted((c.REALDATA / "envs").iterdir()) if p.is_file()]
    for path in sorted((c.REPO / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes)):
                value = node.value.decode("utf-8", "replace") if isinstance(node.value, bytes) else node.value
                if ":" in value or "-" in value:
                    texts.append(value)
    from bench_plan import spec_text

    texts += [spec_text(rng, f"env-{i}") for i in range(300)]
    return texts


def mutate(rng: random.Random, text: str) -> str:
    """1–4 character edits, or (one time in three) line edits: repeat, drop, re-indent, join."""
    if rng.random() < 1 / 3:
        return mutate_lines(rng, text)
    chars = list(text)
    for _ in range(rng.randint(1, 4)):
        op, i = rng.random(), rng.randrange(len(chars) + 1)
        if op < 0.4 or not chars:
            chars.insert(i, rng.choice(ALPHABET))
        elif op < 0.7:
            del chars[min(i, len(chars) - 1)]
        else:
            chars[min(i, len(chars) - 1)] = rng.choice(ALPHABET)
    return "".join(chars)


def mutate_lines(rng: random.Random, text: str) -> str:
    lines = text.split("\n")
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(lines))
        op = rng.random()
        if op < 0.25:
            lines.insert(i, lines[rng.randrange(len(lines))])
        elif op < 0.5 and len(lines) > 1:
            del lines[i]
        elif op < 0.75:
            shift = rng.choice((-2, -1, 1, 2))
            lines[i] = " " * shift + lines[i] if shift > 0 else lines[i][-shift:]
        elif i + 1 < len(lines):
            lines[i : i + 2] = [lines[i] + rng.choice(("", " ", "  # ")) + lines[i + 1].lstrip()]
    return "\n".join(lines)


def parse_outcome(text: str) -> object:
    """What ``parse_spec_bytes`` makes of ``text``: the spec and warnings, or the error."""
    try:
        parsed = specfile.parse_spec_bytes(text.encode("utf-8", "surrogatepass"), file="env.yaml")
    except SpecError as err:
        return ("error", err.reason, str(err))
    return ("ok", parsed.spec, parsed.spec.name, parsed.warnings)


def parse_alike(text: str) -> bool:
    """Whether ``parse_spec_bytes`` gives the same with and without the fast path."""
    fast = parse_outcome(text)
    loader, specyaml._FAST_LOADER = specyaml._FAST_LOADER, None  # this process only
    try:
        slow = parse_outcome(text)
    finally:
        specyaml._FAST_LOADER = loader
    return fast == slow


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mutations", type=int, default=30_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if specyaml._FAST_LOADER is None:
        print("PyYAML has no libyaml here: the fast path is off, nothing to compare")
        return 0
    rng = random.Random(args.seed)
    base = corpus(rng)
    texts = base + [mutate(rng, rng.choice(base)) for _ in range(args.mutations)]
    counts: collections.Counter[str] = collections.Counter()
    failures: list[tuple[str, str]] = []
    for text in texts:
        fast = specyaml._compose_fast(text)
        if fast is specyaml._SLOW:
            counts["PyYAML path"] += 1
            continue
        try:
            slow = yaml.compose(text, Loader=yaml.SafeLoader)
        except (yaml.YAMLError, RecursionError) as exc:
            failures.append((f"fast path accepted what PyYAML rejects ({type(exc).__name__})", text))
            continue
        if signature(fast) != signature(slow):  # type: ignore[arg-type]  # fast is a Node here
            failures.append(("nodes differ", text))
            continue
        if not parse_alike(text):
            failures.append(("parse_spec_bytes differs", text))
            continue
        counts["fast path, identical"] += 1
    print(
        f"{len(texts)} texts ({len(base)} collected, {args.mutations} mutated): "
        + ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
        + f", {len(failures)} mismatches"
    )
    for why, text in failures[:10]:
        print(f"--- {why}:\n{text[:400]!r}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
