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


@dataclass(frozen=True)
class ChannelSettings:
    """Where packages come from."""

    default: tuple[str, ...] = field(
        default=("conda-forge",), metadata=_doc("Channels used when a spec lists none.")
    )
    allowed: tuple[str, ...] = field(
        default=(), metadata=_doc("Channels specs may use; empty means any channel.")
    )
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


@dataclass(frozen=True)
class WebSettings:
    """The web server (status site, API, registry, webhooks)."""

    listen: str = field(default="127.0.0.1:8080", metadata=_doc("host:port the web server binds."))


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
    prune: bool = field(default=False, metadata=_doc("Retire environments whose file disappeared."))
    web: WebSettings = field(default_factory=WebSettings, metadata=_doc("Web server."))
    config_file: Path | None = field(default=None, metadata=_doc("The file these settings came from (not a key)."))

    @property
    def database_url(self) -> str:
        return self.database or f"sqlite:///{(self.store / 'condaops.db').resolve()}"

    @property
    def cache_dir(self) -> Path:
        return self.store / ".cache" / "pkgs"
