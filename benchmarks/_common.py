"""Shared helpers for the benchmark scripts: paths, timing, tables, served channels.

Not a test helper and not part of condaops: each ``bench_*.py`` script imports this
module from its own folder. Loopback HTTP serving reuses ``tests.support.channels``
(the same server the integration tests use), so the repository root is put on
``sys.path`` here.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from condaops.config import Settings

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[1]
REALDATA = REPO.parent / "shared" / "realdata"
FLASK_CHANNEL = REALDATA / "channel" / "defaults-2021-py27-flask"
FLASK_SPECS = ("python=2.7", "flask")
DEFAULTS_MAIN = "https://repo.anaconda.com/pkgs/main"
DEFAULTS_R = "https://repo.anaconda.com/pkgs/r"

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# Taken out of the environment at once: condaops refuses CONDAOPS_* variables it does not
# know, and every condaops process a benchmark starts inherits the environment.
KEEP = os.environ.pop("CONDAOPS_BENCH_KEEP", None)


def require_realdata() -> None:
    """Exit with a clear message when ``../shared/realdata`` is not beside the clone."""
    if not FLASK_CHANNEL.is_dir():
        sys.exit(f"benchmark needs the real packages at {FLASK_CHANNEL} (../shared/realdata next to the repository)")


@contextlib.contextmanager
def workdir(prefix: str) -> Iterator[Path]:
    """A temporary folder on the same filesystem as the system temp dir, removed after."""
    path = Path(tempfile.mkdtemp(prefix=f"condaops-{prefix}-"))
    try:
        yield path
    finally:
        if KEEP:
            print(f"kept {path}", file=sys.stderr)
        else:
            import shutil

            shutil.rmtree(path, ignore_errors=True)


class Stopwatch:
    """``with sw:`` adds the elapsed wall time to ``sw.seconds``."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._start = 0.0

    def __enter__(self) -> Stopwatch:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds += time.perf_counter() - self._start


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    """(seconds, result) of calling ``fn``."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def fmt_s(seconds: float) -> str:
    """Seconds with a unit that keeps three significant digits readable."""
    if seconds != seconds:  # NaN
        return "-"
    if seconds < 0.9995:
        return f"{seconds * 1000:.0f} ms" if seconds >= 0.01 else f"{seconds * 1000:.1f} ms"
    return f"{seconds:.2f} s"


def fmt_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB"):
        if abs(size) < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def table(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain-text table, left column left-aligned, the others right-aligned."""
    cells = [list(map(str, header))] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]

    def line(r: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([title, line(cells[0]), rule, *(line(r) for r in cells[1:])])


def machine() -> dict[str, object]:
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def print_header(name: str) -> None:
    m = machine()
    print(
        f"# {name} — {m['date']}, {m['cpus']} CPUs, Python {m['python']}, load average (1 min) {m['load_avg_1m']}",
        flush=True,
    )


def print_summary(name: str, figures: dict[str, object]) -> None:
    """The last line of every benchmark: one JSON object for machines."""
    print(json.dumps({"benchmark": name, **machine(), **figures}, sort_keys=True))


# --- the flask channel served like a public one --------------------------------------


@contextlib.contextmanager
def serve_defaults(tmp: Path) -> Iterator[dict[str, list[str]]]:
    """Serve the real flask channel as ``pkgs/main`` (and an empty ``pkgs/r``) on loopback.

    Yields ``channels.mirrors`` mapping the canonical ``defaults`` URLs to the servers.
    """
    from tests.support.channels import serve_directory

    r_channel = tmp / "empty-r"
    for subdir in ("linux-64", "noarch"):
        (r_channel / subdir).mkdir(parents=True, exist_ok=True)
        (r_channel / subdir / "repodata.json").write_text(
            json.dumps({"info": {"subdir": subdir}, "packages": {}, "packages.conda": {}, "repodata_version": 1})
        )
    with serve_directory(FLASK_CHANNEL) as main, serve_directory(r_channel) as r:
        yield {DEFAULTS_MAIN: [str(main)], DEFAULTS_R: [str(r)]}


def write_config(
    folder: Path,
    *,
    mirrors: dict[str, list[str]] | None = None,
    sources: str = "envs",
    store: str = "store",
    extra: str = "",
) -> Path:
    """``condaops.yaml`` for a directory source, the defaults channels and linux-64."""
    lines = [f"store: {store}", "sources:", f"  - directory: {sources}", "channels:", "  default: [defaults]"]
    if mirrors:
        lines.append("  mirrors:")
        lines += [f'    "{k}": [{", ".join(json.dumps(u) for u in v)}]' for k, v in mirrors.items()]
    lines += ["platforms: [linux-64]", extra]
    path = folder / "condaops.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def load(config: Path) -> Settings:
    """Settings from ``config`` alone (no ``CONDAOPS_*`` variables of the caller)."""
    from condaops.config import load_settings

    return load_settings(config, environ={}, cwd=config.parent)


def unique_size(root: Path) -> tuple[int, int]:
    """(bytes, files) under ``root``, counting each (device, inode) once; links not followed."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + dirnames:
            st = os.lstat(os.path.join(dirpath, name))
            key = (st.st_dev, st.st_ino)
            if key in seen:
                continue
            seen.add(key)
            total += st.st_size
    return total, len(seen)
