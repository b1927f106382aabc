"""Benchmark: publishing a real environment against the ``conda-pack`` CLI, image sizes, and
what a one-package change costs a client that pulled the image before.

The real flask environment (``../shared/realdata``: Python 2.7.18 + flask 1.1.2, 18
packages) is built once through the CLI (``reconcile --once --wait``, publishing off).

(a) **Publishing vs conda-pack** (issue 14, target 2). In alternating order, ``--rounds``
times each, on the same prefix:

* ``conda-pack`` — the CLI, as a user runs it (a process):
  ``.venv/bin/conda-pack -p <prefix> -o <tmp>/flask.tar.zst`` (tar.zst: the format
  condaops writes by default; conda-pack's own defaults otherwise) — the anchor of the
  ratio — and ``-o flask.tar.gz`` (what ``conda-pack -p <prefix>`` writes by default);
  for reference also ``conda_pack.pack()`` in this process (no interpreter start or
  imports, as the publish job has none either);
* ``condaops`` — ``PublishJob(settings, recorder)(build_id)``, the job the scheduler runs
  in a worker after a build (in this process, as a worker's imports are loaded once), with
  default publish settings: the conda-pack tarball, the image on the built-in base, pushed
  to the built-in registry with the lockfiles and the tarball attached. Before each round
  the build's published files and the registry's storage are removed, so each round
  publishes from nothing but the built-in base (assembled once per host, as in service).

Every round checks that each step it claims ran (tarball written, image built and pushed,
both artifacts attached, the manifest in the registry); if one did not, the benchmark
stops with an error. Printed: median/min/max of each, the ratio of the medians, and the
job's steps from its log (pack, image, push).

(b) **Re-pull after a one-package change.** ``flask`` + ``wheel`` (one package more) is
built and published after ``flask``: bytes of the layers a client holding the first image
lacks, plus config and manifest, against the second image's size. Also, from the flask
image's real layer sizes: the share a client re-pulls if any single package changed.

(c) **Image sizes**: the built-in base layer, the environment's layers, the whole image.

Run: ``.venv/bin/python benchmarks/bench_image.py [--rounds 5]``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import _common as c

FLASK = "dependencies:\n  - python=2.7\n  - flask\n"
FLASK_WHEEL = FLASK + "  - wheel\n"
CONDA_PACK = Path(sys.executable).with_name("conda-pack")
MANIFEST_AND_CONFIG = 2 * 4096  # a generous bound for the config and manifest a client fetches


def build(folder: Path, env: str) -> dict[str, Any]:
    """Build ``team/flask`` from ``env`` through the CLI (publishing off); its status item."""
    from condaops.reconciler import cli

    (folder / "envs" / "team").mkdir(parents=True, exist_ok=True)
    (folder / "envs" / "team" / "flask.yaml").write_text(env)
    with open(os.devnull, "w") as null:
        saved, sys.stdout = sys.stdout, null
        try:
            code = cli.main(["--config", str(folder / "condaops.yaml"), "reconcile", "--once", "--wait"])
            cli.main(["--config", str(folder / "condaops.yaml"), "status", "--json"])
        finally:
            sys.stdout = saved
    if code != 0:
        sys.exit(f"bench_image: the build in {folder} failed")
    settings = c.load(folder / "condaops.yaml")
    from condaops.reconciler.model import EnvRef
    from condaops.reconciler.state.db import make_engine
    from condaops.reconciler.state.queries import get_environment

    engine = make_engine(settings.database_url)
    env_info = get_environment(engine, EnvRef("team", "flask"))
    engine.dispose()
    assert env_info is not None and env_info.current is not None
    return {"build_id": env_info.current.build_id, "prefix": settings.store / env_info.current.prefix}


class Publisher:
    """Runs the publish job of one build, from nothing each time, and checks what it did."""

    def __init__(self, folder: Path) -> None:
        from condaops.reconciler.state.db import make_engine
        from condaops.reconciler.state.recorder import Recorder
        from condaops.registry.backends import storage_root

        settings = c.load(folder / "condaops.yaml")
        self.settings = replace(settings, publish=replace(settings.publish, enabled=True))
        self.engine = make_engine(self.settings.database_url)
        self.recorder = Recorder(self.engine, lambda: datetime.now(UTC))
        self.registry_root = storage_root(self.settings)

    def publish(self, build_id: int, *, fresh: bool = True) -> dict[str, Any]:
        from condaops.reconciler.publish.job import PublishJob
        from condaops.reconciler.store import StoreLayout

        artifacts = StoreLayout.of(self.settings).artifacts_dir(_ref(), build_id)
        if fresh:
            for name in ("image.json", "flask.tar.zst", "build.log"):
                (artifacts / name).unlink(missing_ok=True)
            shutil.rmtree(self.registry_root, ignore_errors=True)
        seconds, _ = c.timed(lambda: PublishJob(self.settings, self.recorder)(build_id))
        return {"seconds": seconds, **self.check(build_id, artifacts)}

    def check(self, build_id: int, artifacts: Path) -> dict[str, Any]:
        """Fail loudly unless every step ran: tarball, image, push, both attachments."""
        from condaops.reconciler.publish.push import LOCKFILES_ARTIFACT, PACK_ARTIFACT
        from condaops.reconciler.publish.sbom import SBOM_ARTIFACT
        from condaops.reconciler.state.queries import get_build
        from condaops.registry.api import open_registry

        build = get_build(self.engine, build_id)
        problems = []
        if build is None or build.publish_error:
            problems.append(f"publish error: {build.publish_error if build else 'no build'}")
        record = json.loads((artifacts / "image.json").read_text()) if (artifacts / "image.json").is_file() else {}
        if not (artifacts / "flask.tar.zst").is_file():
            problems.append("no conda-pack tarball")
        attached = set().union(*(t.get("by_type", {}) for t in (record.get("targets") or {}).values()))
        missing = [a for a in (LOCKFILES_ARTIFACT, PACK_ARTIFACT, SBOM_ARTIFACT) if a not in attached]
        if not record.get("pushed") or missing:
            problems.append(f"image not pushed with its attachments (missing: {', '.join(missing) or 'the image'})")
        if not record.get("runnable"):
            problems.append(f"image not runnable: {record.get('not_runnable')}")
        registry = open_registry(self.settings)
        try:
            found = registry.resolve(record.get("repository", "team/flask"), f"build-{build_id}")
        finally:
            registry.close()
        if found is None or found.digest != record.get("manifest_digest"):
            problems.append("the registry does not hold the image")
        if problems:
            sys.exit("bench_image: a step was skipped: " + "; ".join(problems))
        log = (artifacts / "build.log").read_text()
        steps = {k: float(v) for k, v in re.findall(r"(packed|image_built|pushed) .*seconds=([\d.]+)", log)}
        return {"record": record, "steps": steps}

    def close(self) -> None:
        self.engine.dispose()


def _ref() -> Any:
    from condaops.reconciler.model import EnvRef

    return EnvRef("team", "flask")


def conda_pack(prefix: Path, out: Path) -> float:
    if not CONDA_PACK.is_file():
        sys.exit(f"bench_image: the conda-pack CLI is not at {CONDA_PACK} (pip install -e '.[test]')")
    seconds, done = c.timed(
        lambda: subprocess.run(
            [str(CONDA_PACK), "-p", str(prefix), "-o", str(out), "--force", "-q"], capture_output=True, check=False
        )
    )
    if done.returncode != 0 or not out.is_file():
        sys.exit(f"bench_image: conda-pack failed: {done.stderr.decode()[-500:]}")
    out.unlink()
    return seconds


def conda_pack_library(prefix: Path, out: Path) -> float:
    import conda_pack

    seconds, _ = c.timed(lambda: conda_pack.pack(prefix=str(prefix), output=str(out), force=True))
    out.unlink()
    return seconds


def publish_vs_pack(folder: Path, built: dict[str, Any], rounds: int) -> dict[str, Any]:
    publisher = Publisher(folder)
    try:
        publisher.publish(built["build_id"])  # untimed: the built-in base is assembled once per host
        pack_times, gz_times, lib_times, job_times, steps = [], [], [], [], []
        for i in range(rounds):
            order = ("pack", "gz", "lib", "job") if i % 2 == 0 else ("job", "lib", "gz", "pack")
            for side in order:
                subprocess.run(["sync"], check=False)
                if side == "pack":
                    pack_times.append(conda_pack(built["prefix"], folder / "cli.tar.zst"))
                elif side == "gz":
                    gz_times.append(conda_pack(built["prefix"], folder / "cli.tar.gz"))
                elif side == "lib":
                    lib_times.append(conda_pack_library(built["prefix"], folder / "lib.tar.zst"))
                else:
                    done = publisher.publish(built["build_id"])
                    job_times.append(done["seconds"])
                    steps.append(done["steps"])
        record = done["record"]
    finally:
        publisher.close()
    return {
        "conda_pack_s": pack_times,
        "conda_pack_gz_s": gz_times,
        "conda_pack_library_s": lib_times,
        "publish_s": job_times,
        "ratio": statistics.median(job_times) / statistics.median(pack_times),
        "ratio_library": statistics.median(job_times) / statistics.median(lib_times),
        "steps": {k: statistics.median(s[k] for s in steps) for k in ("packed", "image_built", "pushed")},
        "record": record,
    }


def repull(folder: Path, first: dict[str, Any]) -> dict[str, Any]:
    """Add ``wheel`` to the environment; what a client holding the first image fetches."""
    second_build = build(folder, FLASK_WHEEL)
    publisher = Publisher(folder)
    try:
        second = publisher.publish(second_build["build_id"], fresh=False)["record"]
    finally:
        publisher.close()
    held = {layer["digest"] for layer in first["layers"]}
    new = [layer for layer in second["layers"] if layer["digest"] not in held]
    total = sum(layer["size"] for layer in second["layers"])
    fetched = sum(layer["size"] for layer in new) + MANIFEST_AND_CONFIG
    per_package = sorted(
        (layer["size"] + MANIFEST_AND_CONFIG) / total for layer in first["layers"] if layer["packages"]
    )
    return {
        "new_layers": [layer["packages"] or ["(unowned files)"] for layer in new],
        "fetched_bytes": fetched,
        "image_bytes": total,
        "fetched_pct": 100 * fetched / total,
        "single_package_pct_median": 100 * statistics.median(per_package),
        "single_package_pct_max": 100 * per_package[-1],
        "single_package_le_15pct": sum(f <= 0.15 for f in per_package),
        "packages": len(per_package),
    }


def sizes(record: dict[str, Any]) -> dict[str, int]:
    base = [layer for layer in record["layers"] if not layer["packages"]][0]
    return {
        "base_layer_bytes": base["size"],
        "env_layers_bytes": sum(layer["size"] for layer in record["layers"]) - base["size"],
        "image_bytes": sum(layer["size"] for layer in record["layers"]),
        "layers": len(record["layers"]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    c.require_realdata()
    c.print_header("bench_image")
    with c.workdir("image") as tmp, c.serve_defaults(tmp) as mirrors:
        folder = tmp / "flask"
        folder.mkdir()
        c.write_config(folder, mirrors=mirrors, extra="publish:\n  enabled: false\n")
        built = build(folder, FLASK)
        timing = publish_vs_pack(folder, built, args.rounds)
        pulled = repull(folder, timing["record"])
        size = sizes(timing["record"])
    print(
        c.table(
            f"(a) publishing the flask environment vs the conda-pack CLI, {args.rounds} rounds each",
            ["", "median", "min", "max"],
            [
                ("conda-pack CLI (tar.zst)", *(c.fmt_s(f(timing["conda_pack_s"])) for f in (c.median, min, max))),
                (
                    "conda-pack CLI (tar.gz, its default)",
                    *(c.fmt_s(f(timing["conda_pack_gz_s"])) for f in (c.median, min, max)),
                ),
                (
                    "conda_pack.pack() in-process (tar.zst)",
                    *(c.fmt_s(f(timing["conda_pack_library_s"])) for f in (c.median, min, max)),
                ),
                ("condaops publish job", *(c.fmt_s(f(timing["publish_s"])) for f in (c.median, min, max))),
                ("— of which tarball", c.fmt_s(timing["steps"]["packed"]), "", ""),
                ("— of which image", c.fmt_s(timing["steps"]["image_built"]), "", ""),
                ("— of which push + attach", c.fmt_s(timing["steps"]["pushed"]), "", ""),
                ("ratio condaops / conda-pack CLI", f"{timing['ratio']:.2f} (target <= 1.0)", "", ""),
                ("ratio condaops / conda_pack.pack()", f"{timing['ratio_library']:.2f}", "", ""),
            ],
        )
    )
    print(
        c.table(
            "(b) re-pull after adding one package (wheel) to the flask environment",
            ["figure", "value"],
            [
                ("new layers", ", ".join("+".join(p) for p in pulled["new_layers"])),
                ("bytes to fetch (with config, manifest)", c.fmt_bytes(pulled["fetched_bytes"])),
                ("image size", c.fmt_bytes(pulled["image_bytes"])),
                ("fetched / image", f"{pulled['fetched_pct']:.2f} % (target <= 15 %)"),
                (
                    "any one package changed: median / max",
                    f"{pulled['single_package_pct_median']:.1f} % / {pulled['single_package_pct_max']:.1f} %",
                ),
                (
                    "packages whose change re-pulls <= 15 %",
                    f"{pulled['single_package_le_15pct']} of {pulled['packages']}",
                ),
            ],
        )
    )
    print(
        c.table(
            "(c) image sizes (compressed, as pushed)",
            ["figure", "value"],
            [
                ("built-in base layer", c.fmt_bytes(size["base_layer_bytes"])),
                ("environment layers", c.fmt_bytes(size["env_layers_bytes"])),
                ("whole image", f"{c.fmt_bytes(size['image_bytes'])} in {size['layers']} layers"),
            ],
        )
    )
    summary = {k: v for k, v in timing.items() if k != "record"} | pulled | size
    c.print_summary("bench_image", summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
