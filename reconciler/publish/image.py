"""An OCI image of a built environment: the prefix at a fixed path, one layer per package.

Relocation. The built prefix has its own path written into files (text placeholders,
binary placeholders, shebangs). Rewriting those by hand needs conda's padding rules for
binaries, so instead the same records are installed a second time with rattler into a
staging folder whose ``alternative_target_prefix`` is the in-image path: rattler rewrites
text and binary placeholders (null-padded, as conda does) for that path, and files that
need no rewrite are hardlinks from the package cache (cheap). The default in-image path,
``/opt/env``, is short on purpose: a binary placeholder can only be replaced by a path no
longer than itself (old packages use the 33-character ``/opt/anaconda1anaconda2anaconda3``).
Files no package owns (``pip:`` installs) are copied from the built prefix, with the
build prefix replaced in text files; binary files naming it are copied unchanged.

Determinism. Layers are ``archive.write_archive`` tars; the config holds no time, no host
and no build id, so the config digest (the image ID) and every layer digest are functions
of the lock (and the store path, through rattler's ``conda-meta`` records).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rattler import MatchSpec, install
from rattler import exceptions as rx

from condaops.reconciler.build.install import finish_prefix
from condaops.reconciler.errors import BuildError, TransientError
from condaops.reconciler.publish.archive import GZIP, Written, write_archive
from condaops.reconciler.publish.layers import LayerPlan, layer_entries, plan_layers, prefix_packages, unowned_files

if TYPE_CHECKING:
    from rattler import Client, RepoDataRecord

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
ARCHITECTURES = {
    "linux-64": "amd64",
    "linux-aarch64": "arm64",
    "linux-ppc64le": "ppc64le",
    "linux-s390x": "s390x",
    "linux-32": "386",
    "linux-armv7l": "arm",
}


_STAGING_ERRORS: tuple[type[BaseException], ...] = (
    rx.InstallerError,
    rx.TransactionError,
    rx.LinkError,
    rx.ExtractError,
    rx.CacheDirError,
    rx.IoError,
    rx.FetchRepoDataError,
    rx.InvalidMatchSpecError,
    OSError,
)


class ImageError(BuildError, TransientError):
    """Staging the environment for the image failed (disk, cache); a retry may work."""

    reason = "ImageFailed"


@dataclass(frozen=True, slots=True)
class Layer:
    """One written layer blob and the packages it holds."""

    file: Path
    digest: str  # sha256:... of the gzip blob
    size: int
    diff_id: str  # sha256:... of the uncompressed tar
    packages: tuple[str, ...]
    media_type: str = OCI_LAYER_GZIP


@dataclass(frozen=True, slots=True)
class Image:
    """A written image: its layers, its config bytes and its manifest bytes."""

    layers: tuple[Layer, ...]
    config: bytes
    manifest: bytes


def image_architecture(platform: str) -> str | None:
    """The OCI architecture for a conda platform; None when images cannot be made for it."""
    return ARCHITECTURES.get(platform)


async def stage_prefix(
    records: Sequence[RepoDataRecord],
    staging: Path,
    image_prefix: str,
    *,
    cache_dir: Path,
    client: Client | None = None,
    requested_specs: Iterable[str] = (),
) -> None:
    """Install ``records`` into ``staging`` as if at ``image_prefix`` (see module doc)."""
    if staging.exists():
        shutil.rmtree(staging)
    try:
        await install(
            list(records),
            target_prefix=staging,
            alternative_target_prefix=Path(image_prefix),
            cache_dir=Path(cache_dir),
            show_progress=False,
            client=client,
            requested_specs=[MatchSpec(s)._match_spec for s in requested_specs],
        )
        finish_prefix(staging)
    except _STAGING_ERRORS as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise ImageError(f"staging the image of {image_prefix} in {staging} failed: {exc}") from exc


def copy_unowned(built: Path, staging: Path, image_prefix: str) -> list[str]:
    """Copy files of ``built`` that ``staging`` lacks (pip installs); returns them."""
    copied = []
    old, new = str(built).encode(), image_prefix.encode()
    for rel in unowned_files(built, prefix_packages(built)):
        src, dst = built / rel.rstrip("/"), staging / rel.rstrip("/")
        if os.path.lexists(dst):
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            os.symlink(os.readlink(src).replace(str(built), image_prefix), dst)
        elif src.is_dir():
            dst.mkdir()
        else:
            data = src.read_bytes()
            if old in data and b"\0" not in data:  # text: safe to change length
                data = data.replace(old, new)
            dst.write_bytes(data)
            shutil.copymode(src, dst)
        copied.append(rel)
    return copied


def write_layers(
    staging: Path,
    image_prefix: str,
    out_dir: Path,
    *,
    budget: int,
    popularity: Mapping[str, int] | None = None,
    threads: int = 4,
) -> list[Layer]:
    """Write the layers of ``staging`` into ``out_dir``, in plan order (gzip, parallel)."""
    packages = prefix_packages(staging)
    by_name = {p.name: p for p in packages}
    plans = plan_layers(packages, budget=budget, popularity=popularity)
    rest = unowned_files(staging, packages)
    out_dir.mkdir(parents=True, exist_ok=True)

    def write(index_plan: tuple[int, LayerPlan]) -> Layer:
        index, plan = index_plan
        files = [f for name in plan.packages for f in by_name[name].files] + (rest if plan.rest else [])
        written: Written = write_archive(
            out_dir / f"layer-{index:03d}.tar.gz", layer_entries(staging, image_prefix, files), GZIP
        )
        return Layer(
            written.path, f"sha256:{written.sha256}", written.size, f"sha256:{written.tar_sha256}", plan.packages
        )

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:  # zlib releases the GIL
        return list(pool.map(write, enumerate(plans)))


def image_config(
    layers: Sequence[Layer],
    *,
    image_prefix: str,
    architecture: str,
    variables: Iterable[tuple[str, str]] = (),
    base: Mapping[str, Any] | None = None,
) -> bytes:
    """The image config of the environment's ``layers``, on top of the ``base`` image's
    config (its JSON) if there is one. Canonical JSON, no timestamps.

    The environment: the base's variables, then ``PATH`` with ``<prefix>/bin`` in front of
    the base's ``PATH`` (or the usual default), ``CONDA_PREFIX``, then the spec's
    ``variables`` (which may override any of them). The base's entrypoint, command, user,
    working folder and labels are kept; its history and diff ids come first."""
    run = dict((base or {}).get("config") or {})
    env = dict(item.partition("=")[::2] for item in run.get("Env") or [])
    env["PATH"] = f"{image_prefix}/bin:{env.get('PATH') or DEFAULT_PATH}"
    env["CONDA_PREFIX"] = image_prefix
    env.update(dict(variables))
    run["Env"] = [f"{k}={v}" for k, v in env.items()]
    run["WorkingDir"] = run.get("WorkingDir") or "/"
    base_rootfs = list(((base or {}).get("rootfs") or {}).get("diff_ids") or [])
    base_history = list((base or {}).get("history") or [])
    if base and not base_history:
        base_history = [{"created_by": "base image layer"} for _ in base_rootfs]
    config: dict[str, Any] = {
        "architecture": architecture,
        "os": "linux",
        "config": run,
        "rootfs": {"type": "layers", "diff_ids": base_rootfs + [layer.diff_id for layer in layers]},
        "history": base_history
        + [{"created_by": f"condaops: {', '.join(layer.packages) or 'unowned files'}"} for layer in layers],
    }
    if base and base.get("variant"):
        config["variant"] = base["variant"]
    return canonical_json(config)


def image_manifest(layers: Sequence[Layer], config: bytes, annotations: Mapping[str, str]) -> bytes:
    """The OCI image manifest for ``layers`` and ``config``."""
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256_digest(config), "size": len(config)},
        "layers": [{"mediaType": layer.media_type, "digest": layer.digest, "size": layer.size} for layer in layers],
    }
    if annotations:
        manifest["annotations"] = dict(sorted(annotations.items()))
    return canonical_json(manifest)


def canonical_json(data: object) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sha256_digest(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"
