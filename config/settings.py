"""The frozen Settings tree.

One object of grouped, frozen dataclasses. Each field's ``metadata["doc"]`` is its
documentation (the configuration reference is generated from it). Loading and
validation live in ``condaops.config.load``; nothing here reads files or the
environment, and nothing is read at import time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


def _doc(text: str, **kw: object) -> dict[str, object]:
    return {"doc": text, **kw}


@dataclass(frozen=True)
class UpdateSettings:
    """Update pull requests: on a schedule, environments with a committed lockfile are solved
    again; a changed solution is committed on a branch of its own and proposed as a pull/merge
    request (the forge of the source's `status_*` keys). Environments without a lockfile get
    an "updates available" report instead."""

    schedule: str = field(
        default="24h",
        metadata=_doc(
            "When to look: an interval (`6h`, `1d`) or a cron expression of five fields "
            "(`0 6 * * 1-5`: 06:00 UTC on weekdays)."
        ),
    )
    environments: tuple[str, ...] = field(
        default=("*",),
        metadata=_doc("Environments to update, as `<ns>/<name>` globs (`team/*`, `*/python-*`); `*` for all."),
    )
    cooldown: float = field(
        default=0.0,
        metadata=_doc(
            "A new package version is proposed only once it is this old (`3d`, `12h`): from the "
            "time the channel indexed it, else its build time. 0 proposes versions as soon as they appear."
        ),
    )
    group: str = field(
        default="environment",
        metadata=_doc(
            "One branch and pull request per `environment` (`<prefix>/<ns>/<name>`) or per "
            "`namespace` (`<prefix>/<ns>`, every environment of the namespace together)."
        ),
    )
    branch_prefix: str = field(default="condaops/update", metadata=_doc("Prefix of the update branches."))
    labels: tuple[str, ...] = field(default=("dependencies",), metadata=_doc("Labels put on the update pull requests."))
    pull_requests: bool = field(
        default=True,
        metadata=_doc(
            "Open pull requests (needs a Git source with `status_api`, `status_repo` and a token); "
            "false: only report, on the site and in `status --json`, what an update would change."
        ),
    )
    author: str = field(
        default="condaops <condaops@localhost>",
        metadata=_doc("Author and committer of the update commits, as `Name <email>`."),
    )


@dataclass(frozen=True)
class SourceSettings:
    """One place desired state comes from: a directory tree or a Git remote."""

    name: str = field(metadata=_doc("Unique source name; defaults to the folder name or the repository name."))
    directory: Path | None = field(default=None, metadata=_doc("Folder of environment files (exclusive with `git`)."))
    git: str | None = field(default=None, metadata=_doc("Git URL or local path (exclusive with `directory`)."))
    branch: str = field(default="main", metadata=_doc("Git branch to build."))
    path: str = field(default="", metadata=_doc("Sub-folder of the repository or directory holding the environments."))
    default_namespace: str = field(default="default", metadata=_doc("Namespace for files directly in the source root."))
    polling: bool | None = field(
        default=None,
        metadata=_doc("Force polling (true) or inotify (false); unset = poll on network filesystems."),
    )
    interval: float = field(default=60.0, metadata=_doc("Seconds between polls of a Git remote / safety re-scans."))
    allow_empty: bool = field(
        default=False,
        metadata=_doc("Let a revision with no environments retire them (with `prune`); by default it retires nothing."),
    )
    username: str | None = field(
        default=None, metadata=_doc("Git over http(s): user name; default `git` when a password or token is set.")
    )
    password_env: str | None = field(
        default=None, metadata=_doc("Git over http(s): environment variable holding the password or access token.")
    )
    password_file: Path | None = field(
        default=None,
        metadata=_doc("Git over http(s): file holding the password or access token (read at each fetch)."),
    )
    ssh_key_file: Path | None = field(
        default=None, metadata=_doc("Git over ssh: private key to use; default: ssh's own configuration.")
    )
    ssh_known_hosts: Path | None = field(
        default=None, metadata=_doc("Git over ssh: known_hosts file the server key must be in; default: ssh's own.")
    )
    mirror_dir: Path | None = field(
        default=None, metadata=_doc("Git: folder holding the bare mirror `<name>.git`; default `<store>/.cache/git`.")
    )
    status_api: str | None = field(
        default=None,
        metadata=_doc(
            "Commit statuses: `github`, `gitlab` or `gitea` to post each build's state for its commit; unset = off."
        ),
    )
    status_url: str | None = field(
        default=None,
        metadata=_doc(
            "Commit statuses: the API's base URL; default `https://api.github.com` for `github` "
            "(GitHub Enterprise: `https://<host>/api/v3`); the server's URL for `gitlab` and `gitea`."
        ),
    )
    status_repo: str | None = field(
        default=None,
        metadata=_doc(
            "Commit statuses: the repository as `owner/name`; for `gitlab` a project id or `group/project` path."
        ),
    )
    status_token_env: str | None = field(
        default=None, metadata=_doc("Commit statuses: environment variable holding the API token.")
    )
    status_token_file: Path | None = field(
        default=None, metadata=_doc("Commit statuses: file holding the API token (read at each post).")
    )
    status_context: str = field(
        default="condaops",
        metadata=_doc("Commit statuses: context prefix; each environment reports as `<context>/<ns>/<name>`."),
    )
    status_target_url: str | None = field(
        default=None,
        metadata=_doc("Commit statuses: base URL of the status site; each status links to `<url>/builds/<id>`."),
    )
    webhook_secret_env: str | None = field(
        default=None,
        metadata=_doc(
            "Webhooks: environment variable holding the secret that signs `POST /hooks/git` calls "
            "for this source; unset (and no `webhook_secret_file`) = webhooks cannot refresh it."
        ),
    )
    webhook_secret_file: Path | None = field(
        default=None, metadata=_doc("Webhooks: file holding the webhook secret (read at each call).")
    )
    change_requests: bool = field(
        default=False,
        metadata=_doc(
            "Change requests: review every open pull/merge request ref against `branch` (which "
            "environments change, and each one's package diff)."
        ),
    )
    change_refspecs: tuple[str, ...] = field(
        default=("refs/pull/*/head", "refs/merge-requests/*/head"),
        metadata=_doc("Change requests: ref globs that name open pull/merge requests."),
    )
    change_grace: float = field(
        default=86400.0,
        metadata=_doc("Change requests: how long a closed request's review is kept after its ref disappears."),
    )
    web_url: str | None = field(
        default=None,
        metadata=_doc(
            "Git: the repository's web address, for links to its pull requests, commits and files; "
            "unset = guessed from `git` for http(s) and ssh URLs (`git@host:o/r.git` → `https://host/o/r`)."
        ),
    )
    updates: UpdateSettings | None = field(
        default=None,
        metadata=_doc("Update pull requests for locked environments, reports for the others; unset = off."),
    )


@dataclass(frozen=True)
class ChannelSettings:
    """Where packages come from."""

    default: tuple[str, ...] = field(default=("conda-forge",), metadata=_doc("Channels used when a spec lists none."))
    allowed: tuple[str, ...] = field(default=(), metadata=_doc("Channels specs may use; empty means any channel."))
    mirrors: dict[str, tuple[str, ...]] = field(
        default_factory=dict,
        metadata=_doc("Canonical channel URL -> mirror URLs tried in order (air-gapped sites)."),
    )
    alias: str = field(
        default="https://conda.anaconda.org/",
        metadata=_doc("Base URL that short channel names such as `conda-forge` resolve against."),
    )


@dataclass(frozen=True)
class PipSettings:
    """Where `pip:` dependencies come from (resolved and installed with uv)."""

    index_url: str | None = field(default=None, metadata=_doc("Python package index URL; unset = uv's default (PyPI)."))
    extra_index_urls: tuple[str, ...] = field(default=(), metadata=_doc("Additional package indexes."))
    find_links: tuple[str, ...] = field(default=(), metadata=_doc("Folders or URLs of wheels to consider."))


@dataclass(frozen=True)
class BuildSettings:
    """How builds run."""

    concurrency: int = field(default=2, metadata=_doc("Builds running at once (across all workers)."))
    retries: int = field(default=3, metadata=_doc("Attempts after the first for transient failures."))
    backoff: float = field(default=30.0, metadata=_doc("Seconds before the first retry; doubles each attempt."))
    backoff_max: float = field(default=3600.0, metadata=_doc("Upper bound on the delay between retries, seconds."))
    timeout: float = field(default=3600.0, metadata=_doc("Seconds after which a build is stopped and failed."))
    lease: float = field(
        default=60.0,
        metadata=_doc(
            "A worker renews its hold on each build it runs; a build whose worker stopped renewing "
            "for this long (killed, host lost) goes back to the queue and another worker builds it."
        ),
    )
    cache_dir: Path | None = field(
        default=None,
        metadata=_doc(
            "This process's package, repodata and uv caches; unset = `<store>/.cache`. With several "
            "worker hosts give each a local folder (on the store's filesystem, installs hardlink "
            "from it; elsewhere they copy)."
        ),
    )


@dataclass(frozen=True)
class ReconcileSettings:
    """How reconcile passes look at what changed."""

    full_check: float = field(
        default=300.0,
        metadata=_doc(
            "Seconds between full checks. A pass between them looks only at what changed (a new commit, "
            "a watcher's report, a recorded build); the full check re-reads every source in full, checks "
            "every linked prefix and link on disk (a deleted prefix is rebuilt, a broken or moved link "
            "repaired) and plans every environment again."
        ),
    )


@dataclass(frozen=True)
class AuthSettings:
    """Who may read the status site and its API. Open to everyone unless tokens are set.

    Health, readiness and metrics stay open. Webhook secrets and registry push tokens are
    configured separately."""

    tokens: tuple[str, ...] = field(
        default=(),
        repr=False,  # secrets stay out of logs and tracebacks
        metadata=_doc(
            "Bearer tokens that may read every namespace (`Authorization: Bearer <token>`, or the cookie "
            "set by the login page). When set, namespaces not listed in `namespaces` need one of them."
        ),
    )
    namespaces: dict[str, tuple[str, ...] | None] = field(
        default_factory=dict,
        repr=False,
        metadata=_doc(
            "Per-namespace visibility: `public` (anyone, even when `tokens` are set) or a list of tokens "
            "that may read that namespace in addition to `tokens`."
        ),
    )


@dataclass(frozen=True)
class WebSettings:
    """The web server (status site, API, registry, webhooks)."""

    listen: str = field(default="127.0.0.1:8080", metadata=_doc("host:port the web server binds."))
    page_cache: int = field(
        default=2048,
        metadata=_doc(
            "Rendered environment pages kept in memory (about 15 KB each), reused while the "
            "environment, its builds and their files are unchanged; 0 renders every request."
        ),
    )
    auth: AuthSettings = field(default_factory=AuthSettings, metadata=_doc("Read access to the site and API."))


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


@dataclass(frozen=True)
class KernelSettings:
    """Jupyter kernelspecs for environments that hold a kernel (ipykernel, IRkernel, xeus...)."""

    directory: Path | None = field(
        default=None,
        metadata=_doc(
            "Folder the kernelspecs are written to (`<directory>/condaops-<ns>-<name>/kernel.json`); put it on "
            "the path JupyterHub searches (a `kernels` folder under a `JUPYTER_PATH` entry); unset = off."
        ),
    )
    pin_builds: bool = field(
        default=False,
        metadata=_doc(
            "Also write `condaops-<ns>-<name>-<build>` for every kept build, for notebooks that must stay on one build."
        ),
    )
    display_name: str = field(
        default="{name} ({namespace})",
        metadata=_doc("How kernels are named in JupyterLab's launcher; `{name}` and `{namespace}` are filled in."),
    )


@dataclass(frozen=True)
class ModuleSettings:
    """Environment modules (Lmod, Tcl environment-modules): `module load <ns>/<name>`."""

    directory: Path | None = field(
        default=None,
        metadata=_doc(
            "Folder the modulefiles are written to (`<directory>/<ns>/<name>/current.lua`, one file per kept "
            "build); add it with `module use` or to `MODULEPATH`; unset = off."
        ),
    )
    format: str = field(
        default="lua",
        metadata=_doc(
            "`lua` (Lmod), `tcl` (environment-modules; Lmod reads it too) or `both` (each tool reads its own)."
        ),
    )


@dataclass(frozen=True)
class NameSettings:
    """Stable names for conda's `envs_dirs`: `conda activate <ns>-<name>`."""

    enabled: bool = field(default=True, metadata=_doc("Keep a folder of `<ns>-<name>` links to each environment."))
    directory: Path | None = field(
        default=None, metadata=_doc("The folder of names (list it in `envs_dirs`); unset = `<store>/envs-by-name`.")
    )


@dataclass(frozen=True)
class PolicySettings:
    """Site-wide policy: rules in a file the environments' repository cannot change or loosen."""

    site_file: Path | None = field(
        default=None,
        metadata=_doc(
            "A policy file in the format of `condaops-policy.yaml` whose rules apply to every environment "
            "of every source, in addition to the repository's own; read again when it changes. An "
            "invalid file fails every build with `PolicyInvalid`."
        ),
    )


@dataclass(frozen=True)
class DynamicSettings:
    """Dynamic images: `GET /v2/dynamic/<pkg>/<pkg.ge.1.0>/.../manifests/latest` builds an image of those
    packages from `channels.default` (restricted by `channels.allowed`) for the host's Linux platform,
    once per set of packages; later requests are answered from the registry."""

    enabled: bool = field(
        default=False,
        metadata=_doc("Serve the `dynamic/` namespace of the registry; off by default (the namespace does not exist)."),
    )
    max_packages: int = field(
        default=20, metadata=_doc("Most packages one dynamic image may ask for (their dependencies not counted).")
    )
    concurrency: int = field(
        default=1, metadata=_doc("Dynamic images one server process builds at once; requests for others wait.")
    )
    queue: int = field(
        default=8,
        metadata=_doc(
            "Requests for new dynamic images that may wait for a build slot; more get 429 (try again later)."
        ),
    )
    rate: int = field(
        default=10,
        metadata=_doc(
            "New dynamic images (requests that solve) one client (by address, or by token) may ask for per "
            "minute; more get 429 with `Retry-After`. Cached images are not counted."
        ),
    )
    require_token: bool = field(
        default=False,
        metadata=_doc(
            "Only clients holding a token (`web.auth` or `registry.push_tokens`) may ask for new dynamic "
            "images; anonymous clients get 401 (cached images stay as visible as the `dynamic` namespace)."
        ),
    )
    keep: int = field(
        default=100,
        metadata=_doc(
            "Dynamic images kept by `condaops gc` and `registry.gc_interval`: the most recently used; older "
            "ones (their tags, manifests and blobs no other image uses) are removed."
        ),
    )


@dataclass(frozen=True)
class Settings:
    """Everything condaops is configured with."""

    store: Path = field(default=Path(".condaops"), metadata=_doc("Root folder of environments, artifacts and caches."))
    database: str = field(default="", metadata=_doc("SQLAlchemy URL; default SQLite at <store>/condaops.db."))
    sources: tuple[SourceSettings, ...] = field(default=(), metadata=_doc("Where desired state comes from."))
    channels: ChannelSettings = field(default_factory=ChannelSettings, metadata=_doc("Package channels."))
    pip: PipSettings = field(default_factory=PipSettings, metadata=_doc("Python package indexes for `pip:`."))
    platforms: tuple[str, ...] = field(default=(), metadata=_doc("Platforms to lock for; default the host's."))
    build: BuildSettings = field(default_factory=BuildSettings, metadata=_doc("Build execution."))
    reconcile: ReconcileSettings = field(
        default_factory=ReconcileSettings, metadata=_doc("Reconcile passes and the full check.")
    )
    prune: bool = field(default=False, metadata=_doc("Retire environments whose file disappeared."))
    min_free_space: int = field(
        default=1024**3,
        metadata=_doc(
            "Free space kept on the disks holding the store and the registry: below it, builds fail with "
            "`DiskFull` (retried later) and registry pushes are refused (507); pulls and the site keep working."
        ),
    )
    web: WebSettings = field(default_factory=WebSettings, metadata=_doc("Web server."))
    registry: RegistrySettings = field(default_factory=RegistrySettings, metadata=_doc("Built-in OCI registry."))
    storage: StorageSettings = field(default_factory=StorageSettings, metadata=_doc("Registry storage."))
    publish: PublishSettings = field(default_factory=PublishSettings, metadata=_doc("Published forms of builds."))
    dynamic: DynamicSettings = field(default_factory=DynamicSettings, metadata=_doc("Images built on request."))
    kernels: KernelSettings = field(default_factory=KernelSettings, metadata=_doc("Jupyter kernels."))
    modules: ModuleSettings = field(default_factory=ModuleSettings, metadata=_doc("Environment modules."))
    names: NameSettings = field(default_factory=NameSettings, metadata=_doc("Names for `conda activate`."))
    policy: PolicySettings = field(default_factory=PolicySettings, metadata=_doc("Site-wide policy rules."))
    config_file: Path | None = field(default=None, metadata=_doc("The file these settings came from (not a key)."))

    @property
    def database_url(self) -> str:
        return self.database or f"sqlite:///{(self.store / 'condaops.db').resolve()}"
