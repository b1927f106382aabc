"""Benchmark: a second environment that shares every package of the first.

One store, the real flask channel served on 127.0.0.1 (as in ``bench_build``):

1. ``team/flask.yaml`` (``python=2.7``, ``flask``) is built with ``Runtime.run_once()``
   from empty caches;
2. ``team/flask-click.yaml`` adds ``click`` — already a dependency of flask, so the
   solve gives the same 18 packages, but the spec hash (and so the prefix) differs —
   and the same runtime builds it, as a running service would.

Disk use is the sum of ``st_size`` over the unique (device, inode) pairs of the whole
store (hardlinked files count once; folders and symlinks count too), measured before
and after each build. The second prefix's files are also split into those hardlinked
from the package cache and those written anew (rattler copies files it must rewrite
for the prefix, and copies when hardlinks are impossible).

Run: ``.venv/bin/python benchmarks/bench_shared.py``.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import _common as c

if TYPE_CHECKING:
    from condaops.reconciler.runtime import Runtime

FIRST = ("flask", ("python=2.7", "flask"))
SECOND = ("flask-click", ("python=2.7", "flask", "click"))


def write_env(envs: Path, name: str, specs: tuple[str, ...]) -> None:
    path = envs / "team" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("dependencies:\n" + "".join(f"  - {s}\n" for s in specs))


@dataclass(frozen=True)
class Built:
    total: float  # seconds of Runtime.run_once()
    steps: dict[str, float]  # builds.timings
    prefix: Path


def build(rt: Runtime, name: str) -> Built:
    """Run one pass with its builds; return its wall time, steps and the prefix of ``team/<name>``."""
    import anyio

    from condaops.reconciler.state.queries import get_build, list_environments

    t_run, summary = c.timed(lambda: anyio.run(rt.run_once))
    env = next(e for e in list_environments(rt.engine) if e.ref.name == name)
    if not summary.ok or env.current is None:
        sys.exit(f"building team/{name} failed: {summary}")
    info = get_build(rt.engine, env.current.build_id)
    assert info is not None and info.prefix is not None
    return Built(t_run, info.timings, rt.reconciler.layout.absolute(info.prefix))


def prefix_files(prefix: Path) -> dict[str, int]:
    """Regular files of a prefix: how many (and bytes) share their inode with another path."""
    out = {"files": 0, "bytes": 0, "linked_files": 0, "linked_bytes": 0}
    for dirpath, _dirs, files in os.walk(prefix):
        for name in files:
            st = os.lstat(os.path.join(dirpath, name))
            if not os.path.isfile(os.path.join(dirpath, name)) or os.path.islink(os.path.join(dirpath, name)):
                continue
            out["files"] += 1
            out["bytes"] += st.st_size
            if st.st_nlink > 1:
                out["linked_files"] += 1
                out["linked_bytes"] += st.st_size
    return out


def main() -> int:
    c.require_realdata()
    c.print_header("bench_shared")
    from condaops.reconciler.runtime import Runtime

    with c.workdir("bench-shared") as tmp, c.serve_defaults(tmp) as mirrors:
        settings = c.load(c.write_config(tmp, mirrors=mirrors))
        rt = Runtime(settings)
        try:
            store = settings.store
            size0, _ = c.unique_size(store)
            write_env(tmp / "envs", *FIRST)
            first = build(rt, FIRST[0])
            size1, inodes1 = c.unique_size(store)
            write_env(tmp / "envs", *SECOND)
            second = build(rt, SECOND[0])
            size2, inodes2 = c.unique_size(store)
            own1, _ = c.unique_size(first.prefix)
            cache, _ = c.unique_size(store / ".cache" / "pkgs")
            files2 = prefix_files(second.prefix)
        finally:
            rt.engine.dispose()

    first_size, extra = size1 - size0, size2 - size1
    steps = sorted(set(first.steps) | set(second.steps))
    print()
    print(
        c.table(
            "Build time (Runtime.run_once, same process and store)",
            ("", "first (cold caches)", "second (shares all packages)"),
            [
                ("total", c.fmt_s(first.total), c.fmt_s(second.total)),
                *((f"  step {s}", c.fmt_s(first.steps.get(s, 0.0)), c.fmt_s(second.steps.get(s, 0.0))) for s in steps),
            ],
        )
    )
    print()
    print(
        c.table(
            "Disk (sum of st_size over unique inodes of the whole store)",
            ("what", "size"),
            [
                ("store growth, first build", c.fmt_bytes(first_size)),
                ("  of which the package cache", c.fmt_bytes(cache)),
                ("  first prefix alone (its inodes, shared or not)", c.fmt_bytes(own1)),
                ("store growth, second build", c.fmt_bytes(extra)),
                ("second / first", f"{extra / first_size:.1%}"),
                ("inodes in the store after first / second", f"{inodes1} / {inodes2}"),
            ],
        )
    )
    print()
    print(
        f"second prefix: {files2['files']} files, {files2['linked_files']} hardlinked "
        f"({c.fmt_bytes(files2['linked_bytes'])}), {files2['files'] - files2['linked_files']} written anew "
        f"({c.fmt_bytes(files2['bytes'] - files2['linked_bytes'])})"
    )
    c.print_summary(
        "bench_shared",
        {
            "first_s": round(first.total, 3),
            "second_s": round(second.total, 3),
            "first_bytes": first_size,
            "second_extra_bytes": extra,
            "extra_ratio": round(extra / first_size, 4),
            "package_cache_bytes": cache,
            "second_prefix_files": files2,
            "second_steps_s": second.steps,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
