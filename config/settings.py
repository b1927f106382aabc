"""The frozen Settings tree.

One object of grouped, frozen dataclasses. Each field's ``metadata["doc"]`` is its
documentation (the configuration reference is generated from it). The sections of
sources are in ``sources.py``, those of the registry and publishing in ``publishing.py``;
all are importable from here. Loading and validation live in ``condaops.config.load``;
nothing here reads files or the environment, and nothing is read at import time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from condaops.config.fielddoc import doc as _doc
from condaops.config.publishing import (
    BUILTIN_TARGET,
    PublishSettings,
    PushTargetSettings,
    RegistrySettings,
    SigningSettings,
    StorageSettings,
)
from condaops.config.sources import SourceSettings, UpdateSettings

# The whole tree is importable from here; sources.py and publishing.py hold their sections.
__all__ = [
    "BUILTIN_TARGET",
    "AuthSettings",
    "BuildSettings",
    "ChannelSettings",
    "DynamicSettings",
    "KernelSettings",
    "ModuleSettings",
    "NameSettings",
    "PipSettings",
    "PolicySettings",
    "PublishSettings",
    "PushTargetSettings",
    "RegistrySettings",
    "Settings",
    "SigningSettings",
    "SourceSettings",
    "StorageSettings",
    "UpdateSettings",
    "WebSettings",
]


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
        metadata=_doc(
            "How kernels are named in JupyterLab's launcher; an environment file's "
            "`condaops: display_name:` overrides it for that environment."
        ),
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
