"""Settings of where builds go: the built-in registry, its storage, push targets, the
published forms of builds and their signatures. Part of the frozen Settings tree
(``settings.py``); nothing is read here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from condaops.config.fielddoc import doc as _doc

BUILTIN_TARGET = "builtin"


@dataclass(frozen=True)
class PushTargetSettings:
    """One registry every published build is pushed to. Without `url` it is the built-in registry;
    with one, an external OCI registry reached over HTTP(S) with oras."""

    name: str = field(
        default=BUILTIN_TARGET,
        metadata=_doc(
            "Unique target name, used in logs and errors; default `builtin` without `url`, else the URL's host."
        ),
    )
    url: str | None = field(
        default=None,
        metadata=_doc("The registry, as `host[:port]` or `https://host[:port]`; unset = the built-in registry."),
    )
    repository: str = field(
        default="", metadata=_doc("Repository prefix: `<ns>/<name>` is pushed as `<repository>/<ns>/<name>`.")
    )
    username: str | None = field(
        default=None,
        metadata=_doc(
            "User name for basic credentials (exchanged for a bearer token when the registry asks); "
            "unset with a password = the password is sent as a bearer token."
        ),
    )
    password_env: str | None = field(
        default=None, metadata=_doc("Environment variable holding the password or access token.")
    )
    password_file: Path | None = field(
        default=None, metadata=_doc("File holding the password or access token (read at each push).")
    )
    insecure: bool = field(
        default=False, metadata=_doc("Plain HTTP instead of HTTPS (test and loopback registries only).")
    )

    @property
    def builtin(self) -> bool:
        return self.url is None

    def __str__(self) -> str:  # how the configuration reference shows the default list
        return self.name


@dataclass(frozen=True)
class RegistrySettings:
    """The built-in OCI registry: anyone may pull, pushing needs a token."""

    push_tokens: tuple[str, ...] = field(
        default=(),
        metadata=_doc(
            "Tokens that may push (`Authorization: Bearer <token>`, or basic auth with the token as password)."
        ),
    )
    push_token_file: Path | None = field(
        default=None,
        metadata=_doc("File of push tokens, one per line (`#` starts a comment); re-read when it changes."),
    )
    push: tuple[PushTargetSettings, ...] = field(
        default=(PushTargetSettings(),),
        metadata=_doc(
            "Where published builds are pushed: the built-in registry (`builtin`) and/or external registries."
        ),
    )
    max_blob_size: int = field(
        default=20 * 1024**3,
        metadata=_doc("Largest blob a client may push; bigger uploads are refused with 413 before they are received."),
    )
    max_uploads: int = field(
        default=100,
        metadata=_doc("Upload sessions open at once (all clients); more are refused with 429 until some finish."),
    )
    upload_max_age: float = field(
        default=86400.0,
        metadata=_doc(
            "Upload sessions older than this are abandoned and removed (on `gc_interval` and by `condaops gc`)."
        ),
    )
    gc_interval: float = field(
        default=3600.0,
        metadata=_doc(
            "How often the server removes abandoned upload sessions and collects dynamic images beyond "
            "`dynamic.keep`; 0 = only `condaops gc` does."
        ),
    )


@dataclass(frozen=True)
class StorageSettings:
    """Where registry blobs and manifests are kept: a local folder or S3-compatible object storage.
    S3 credentials come from the usual AWS variables and files (`AWS_ACCESS_KEY_ID`, `AWS_PROFILE`, ...)."""

    backend: str = field(default="filesystem", metadata=_doc("`filesystem` or `s3`."))
    directory: Path | None = field(
        default=None, metadata=_doc("Folder of the filesystem backend; unset = `<store>/registry`.")
    )
    s3_bucket: str = field(default="", metadata=_doc("Bucket of the s3 backend."))
    s3_prefix: str = field(default="", metadata=_doc("Key prefix inside the bucket, e.g. `condaops/registry`."))
    s3_endpoint: str = field(default="", metadata=_doc("S3 endpoint URL (MinIO, Ceph...); unset = AWS."))
    s3_region: str = field(default="", metadata=_doc("Region; unset = from the AWS configuration."))
    s3_redirect: bool = field(
        default=True,
        metadata=_doc("Answer blob downloads with a redirect to a presigned URL instead of streaming them."),
    )
    s3_url_expiry: float = field(default=900.0, metadata=_doc("Lifetime of presigned download URLs."))


@dataclass(frozen=True)
class SigningSettings:
    """Signing published images and artifacts (cosign's format: a `sha256-<digest>.sig` tag beside each
    signed manifest). Without `key_file` nothing is signed."""

    key_file: Path | None = field(
        default=None,
        metadata=_doc(
            "PEM private key (ECDSA P-256, PKCS#8, encrypted or not) that signs every pushed image and "
            "artifact manifest; its public key is served at `/.well-known/condaops/signing-key.pub`."
        ),
    )
    password_env: str | None = field(
        default=None, metadata=_doc("Variable holding the key's password (not with `password_file`); never logged.")
    )
    password_file: Path | None = field(
        default=None, metadata=_doc("File holding the key's password; trailing newlines are ignored.")
    )
    public_key_file: Path | None = field(
        default=None,
        metadata=_doc(
            "PEM public key of `key_file`, served at `/.well-known/condaops/signing-key.pub`; unset = derived "
            "from `key_file` (which then needs its password where the site runs)."
        ),
    )
    registry_host: str | None = field(
        default=None,
        metadata=_doc(
            "Host (and port) users pull the built-in registry from, as signatures name it "
            "(`docker-reference`); default `web.listen`. External targets use their own host."
        ),
    )
    previous_keys: tuple[Path, ...] = field(
        default=(),
        metadata=_doc(
            "Public keys (PEM) of earlier signing keys, still served beside the current one while images "
            "they signed are in use (key rotation)."
        ),
    )


@dataclass(frozen=True)
class PublishSettings:
    """What each build is published as: a conda-pack tarball and an OCI image in the built-in registry."""

    enabled: bool = field(
        default=True,
        metadata=_doc(
            "Publish every linked build (tarball, image, pushes to `registry.push`) in a job of its own "
            "after the build is recorded."
        ),
    )
    pack: bool = field(default=True, metadata=_doc("Write a conda-pack tarball into the build's artifacts."))
    pack_format: str = field(default="tar.zst", metadata=_doc("conda-pack tarball format: `tar.zst` or `tar.gz`."))
    image: bool = field(default=True, metadata=_doc("Build an OCI image of the environment (linux platforms only)."))
    image_prefix: str = field(
        default="/opt/env",
        metadata=_doc(
            "Where the environment lives inside the image; keep it short (binary prefix placeholders "
            "can only be replaced by a path no longer than themselves, 33 characters for old packages)."
        ),
    )
    image_base: str | None = field(
        default=None,
        metadata=_doc(
            "Base image the environment is layered on. Unset: the built-in base, this host's GNU C library "
            "(loader, libc and its companions, recorded with their package versions; nothing is pulled, so it "
            "works offline). `scratch`: no base (only static programs run). Otherwise an image as "
            "`host[:port]/repository[:tag][@digest]` in any registry, fetched once and cached by digest under "
            "`<store>/.cache/base-images`. Images whose packages need a newer glibc than the base has are "
            "published but reported as not runnable (`ImageNotRunnable`). See docs/images.md."
        ),
    )
    layer_compression: str = field(
        default="zstd",
        metadata=_doc(
            "Compression of image layers: `zstd` (podman, skopeo, CRI-O, containerd >= 1.5, Docker Engine "
            ">= 23; several times faster to write) or `gzip` (every client, including older Docker engines)."
        ),
    )
    layer_budget: int = field(
        default=80,
        metadata=_doc(
            "Most layers an image gets: one per package until then, above it the least "
            "popular × smallest packages share one layer."
        ),
    )
    push: bool = field(
        default=True,
        metadata=_doc(
            "Push the image as `<ns>/<name>` to each target of `registry.push`, with the lockfiles and "
            "tarball attached as OCI artifacts."
        ),
    )
    squashfs: bool = field(
        default=False,
        metadata=_doc(
            "Also write each build as a squashfs image of its prefix (`<name>.sqsh`, needs `mksquashfs` from "
            "squashfs-tools): the same bytes for the same lock, attached to the image like the tarball. Mount "
            "it at the build's prefix path (paths inside the environment name it)."
        ),
    )
    squashfs_compression: str = field(
        default="zstd", metadata=_doc("Compression of squashfs images: `zstd` (Linux 4.14 and later) or `gzip`.")
    )
    sbom: bool = field(
        default=True,
        metadata=_doc(
            "Write a CycloneDX SBOM (`sbom.cdx.json`) of every build and attach it to the image "
            "(artifact type `application/vnd.cyclonedx+json`)."
        ),
    )
    signing: SigningSettings = field(
        default_factory=SigningSettings, metadata=_doc("Signatures of pushed images and artifacts.")
    )
