"""Benchmark: what publishing costs and what per-package layers save.

(b) **Layer reuse.** A synthetic 20-package environment (payloads of 0.2–6 MB of
incompressible bytes, served over HTTP on 127.0.0.1 like every test channel) is built
and published through the CLI; then one package (``pkg07``) changes version and the
environment is rebuilt. A client that pulled the first image fetches, for the second,
only the layers it lacks plus the config and manifest: those bytes are compared with
the full image size (target ≤ 15 %).

(c) **Image vs conda-pack time.** From the build logs of the same builds (the
``packed``/``image_built`` lines of the ``publish`` step): writing the conda-pack
tarball against building the image (second rattler install into the staging folder +
writing gzip layers), for the synthetic environment and for the real flask environment
(``../shared/realdata``, 18 packages, Python 2.7), with ``tar.zst`` and ``tar.gz``.

Run: ``.venv/bin/python benchmarks/bench_image.py``.
"""

from __future__ import annotations

import json
import os
import random
import re
import sys
from pathlib import Path

import _common as c

N_PACKAGES, CHANGED = 20, "pkg07"


def make_channel(root: Path) -> None:
    from tests.support.channels import PackageSpec, make_channel

    rng = random.Random(20)
    pkgs = []
    for i in range(N_PACKAGES):
        size = rng.randint(200_000, 6_000_000)
        versions = ("1.0", "1.1") if f"pkg{i:02d}" == CHANGED else ("1.0",)
        for version in versions:
            payload = random.Random(f"{i}-{version}").randbytes(size)
            pkgs.append(
                PackageSpec(
                    f"pkg{i:02d}", version, files={f"lib/pkg{i:02d}.bin": payload}, executables=(f"tool{i:02d}",)
                )
            )
    make_channel(root, pkgs)


def reconcile(folder: Path, env: str) -> dict:
    from condaops.reconciler import cli

    (folder / "envs" / "team").mkdir(parents=True, exist_ok=True)
    (folder / "envs" / "team" / "env.yaml").write_text(env)
    with open(os.devnull, "w") as null:
        saved, sys.stdout = sys.stdout, null
        try:
            code = cli.main(["--config", str(folder / "condaops.yaml"), "reconcile", "--once", "--wait"])
        finally:
            sys.stdout = saved
    if code != 0:
        sys.exit(f"build failed in {folder}")
    sys.stdout.flush()
    builds = sorted((folder / "store" / "artifacts" / "team" / "env").iterdir(), key=lambda p: int(p.name))
    latest = builds[-1]
    log = (latest / "build.log").read_text()
    times = {k: float(v) for k, v in re.findall(r"(packed|image_built|pushed) .*seconds=([\d.]+)", log)}
    image = json.loads((latest / "image.json").read_text())
    pack = next(p for p in latest.iterdir() if p.name.startswith("env.tar"))
    return {"image": image, "times": times, "pack_bytes": pack.stat().st_size}


def config(folder: Path, mirrors: dict[str, list[str]], channels: str, fmt: str) -> None:
    extra = f"publish:\n  enabled: true\n  pack_format: {fmt}\n"
    c.write_config(folder, mirrors=mirrors, extra=extra)
    text = (folder / "condaops.yaml").read_text().replace("default: [defaults]", f"default: [{channels}]")
    (folder / "condaops.yaml").write_text(text)


def layer_reuse(tmp: Path) -> dict[str, object]:
    from tests.support.channels import serve_directory

    channel = tmp / "chan"
    make_channel(channel)
    with serve_directory(channel) as url:
        folder = tmp / "synthetic"
        folder.mkdir()
        config(folder, {"https://conda.anaconda.org/benchchan": [str(url)]}, "benchchan", "tar.zst")
        deps = "".join(f"  - pkg{i:02d}{'=1.0' if f'pkg{i:02d}' == CHANGED else ''}\n" for i in range(N_PACKAGES))
        first = reconcile(folder, "dependencies:\n" + deps)
        second = reconcile(folder, "dependencies:\n" + deps.replace(f"{CHANGED}=1.0", f"{CHANGED}=1.1"))
    old = {layer["digest"] for layer in first["image"]["layers"]}
    full = sum(layer["size"] for layer in second["image"]["layers"])
    new = [layer for layer in second["image"]["layers"] if layer["digest"] not in old]
    fetched = sum(layer["size"] for layer in new) + 2 * 4096  # + config and manifest (each well under 4 KiB)
    return {
        "layers": len(second["image"]["layers"]),
        "new_layers": len(new),
        "image_bytes": full,
        "fetched_bytes": fetched,
        "fetched_pct": round(100 * fetched / full, 2),
        "synthetic_pack_s": second["times"].get("packed"),
        "synthetic_image_s": second["times"].get("image_built"),
        "synthetic_pack_bytes": second["pack_bytes"],
    }


def flask_times(tmp: Path, fmt: str) -> dict[str, object]:
    with c.serve_defaults(tmp) as mirrors:
        folder = tmp / f"flask-{fmt}"
        folder.mkdir()
        config(folder, mirrors, "defaults", fmt)
        built = reconcile(folder, "dependencies:\n" + "".join(f"  - {s}\n" for s in c.FLASK_SPECS))
    key = fmt.replace(".", "_")
    return {
        f"flask_pack_{key}_s": built["times"].get("packed"),
        f"flask_pack_{key}_bytes": built["pack_bytes"],
        "flask_image_s": built["times"].get("image_built"),
        "flask_push_s": built["times"].get("pushed"),
        "flask_image_bytes": sum(layer["size"] for layer in built["image"]["layers"]),
    }


def main() -> int:
    c.require_realdata()
    c.print_header("bench_image")
    figures: dict[str, object] = {}
    with c.workdir("image") as tmp:
        figures |= layer_reuse(tmp)
        for fmt in ("tar.zst", "tar.gz"):
            figures |= flask_times(tmp, fmt)
    print(
        c.table(
            "(b) one package changes in a 20-package environment",
            ["figure", "value"],
            [
                ("layers", figures["layers"]),
                ("new layers", figures["new_layers"]),
                ("image size", c.fmt_bytes(int(figures["image_bytes"]))),  # type: ignore[call-overload]
                ("bytes to fetch", c.fmt_bytes(int(figures["fetched_bytes"]))),  # type: ignore[call-overload]
                ("fetched / full", f"{figures['fetched_pct']} % (target <= 15 %)"),
            ],
        )
    )
    print(
        c.table(
            "(c) image vs conda-pack, seconds",
            ["environment", "conda-pack", "image"],
            [
                ("synthetic 20 pkgs (tar.zst)", figures["synthetic_pack_s"], figures["synthetic_image_s"]),
                ("flask, tar.zst", figures["flask_pack_tar_zst_s"], figures["flask_image_s"]),
                ("flask, tar.gz", figures["flask_pack_tar_gz_s"], figures["flask_image_s"]),
            ],
        )
    )
    c.print_summary("bench_image", figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
