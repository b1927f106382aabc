"""A build's prefix as one squashfs image (``publish.squashfs``), for parallel filesystems.

Lustre and GPFS suffer from environments of tens of thousands of small files; a site
mounts one image per environment instead (``squashfuse``, the kernel's squashfs, or
Apptainer's ``--bind``). ``mksquashfs`` (squashfs-tools) writes it with every time set to
0, every file owned by root and no extended attributes, and it sorts directory entries
itself: the same prefix gives the same bytes, so two builds of the same lock (rebuilt
into the same prefix path) give identical images.

The image holds the prefix exactly as installed, so paths inside it (scripts' ``#!``
lines, text files conda rewrote at install) name the build's prefix: mount it at that
path (``<store>/<ns>/<spec-hash>-<name>``, recorded in the attachment's annotations) and
everything works; mounted elsewhere, programs that read those paths do not. For a fixed
path such as ``/opt/env`` use the OCI image, which is installed for ``publish.image_prefix``.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from condaops.config.settings import Settings
from condaops.reconciler.errors import BuildError
from condaops.reconciler.publish.outputs import Attachment, OutputContext, OutputResult
from condaops.reconciler.reasons import Reason

SQUASHFS_KIND = "squashfs"
SQUASHFS_ARTIFACT = "application/vnd.condaops.squashfs.v1"
PREFIX_ANNOTATION = "org.condaops.squashfs.prefix"  # where the image must be mounted
_TIMEOUT = 3600.0  # a site's largest environments take minutes; this bounds a hung mksquashfs


class SquashfsError(BuildError):
    """mksquashfs is missing or failed; the build stands, the image is not written."""

    reason = Reason.SQUASHFS_FAILED


def squashfs_file_name(name: str) -> str:
    return f"{name}.sqsh"


def squashfs_command(prefix: Path, dest: Path, *, compression: str, processors: int | None = None) -> list[str]:
    """The mksquashfs command line for a reproducible image of ``prefix``. Pure."""
    command = [
        "mksquashfs",
        str(prefix),
        str(dest),
        "-noappend",
        "-no-progress",
        "-quiet",
        "-comp",
        compression,
        "-all-root",
        "-mkfs-time",
        "0",
        "-all-time",
        "0",
        "-no-xattrs",
    ]
    if processors:
        command += ["-processors", str(processors)]
    return command


def write_squashfs(prefix: Path, dest: Path, *, compression: str, timeout: float = _TIMEOUT) -> Path:
    """Write the image of ``prefix`` to ``dest`` (beside, then renamed). Raises ``SquashfsError``."""
    if shutil.which("mksquashfs") is None:
        raise SquashfsError(
            "publish.squashfs is on but mksquashfs is not installed; install squashfs-tools "
            "(apt-get install squashfs-tools) or set publish.squashfs: false"
        )
    partial = dest.with_name(f".{dest.name}.partial")
    partial.unlink(missing_ok=True)
    try:
        done = subprocess.run(
            squashfs_command(prefix, partial, compression=compression),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        partial.unlink(missing_ok=True)
        raise SquashfsError(f"mksquashfs of {prefix} ran past {timeout:g} s") from exc
    if done.returncode != 0:
        partial.unlink(missing_ok=True)
        detail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise SquashfsError(f"mksquashfs of {prefix} failed (exit {done.returncode}): {detail[0]}")
    partial.replace(dest)
    return dest


class SquashfsOutput:
    """The squashfs image of the prefix, attached to the image like the tarball."""

    kind = SQUASHFS_KIND

    def wanted(self, settings: Settings) -> bool:
        return settings.publish.squashfs

    def run(self, ctx: OutputContext) -> OutputResult:
        req = ctx.req
        started = time.monotonic()
        path = write_squashfs(
            req.prefix,
            req.artifacts_dir / squashfs_file_name(req.ref.name),
            compression=ctx.settings.publish.squashfs_compression,
        )
        ctx.log.info(
            "squashfs_written file=%s bytes=%d seconds=%.3f",
            path.name,
            path.stat().st_size,
            time.monotonic() - started,
        )
        mount = {PREFIX_ANNOTATION: str(req.prefix)}
        return OutputResult(
            files=[(SQUASHFS_KIND, path)], attachments=[Attachment(SQUASHFS_ARTIFACT, (path,), annotations=mount)]
        )
