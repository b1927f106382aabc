"""pytest plugin: factories for real conda channels served on 127.0.0.1.

Loaded by ``tests/conftest.py`` (``pytest_plugins = ["tests.support.fixtures"]``).

* ``channel_factory(packages, name=None) -> Path`` — write and index a channel;
* ``http_channel(path) -> ServedURL`` — serve any folder until the test ends;
* ``realdata_channel(name) -> ServedURL`` — serve ``../shared/realdata/channel/<name>``;
* ``realdata_dir`` — the ``../shared/realdata`` folder (skips, or fails on CI, if absent);
* ``package_cache`` — a rattler package cache shared by the session (warm installs).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

import pytest

from tests.support.channels import PackageSpec, ServedURL, make_channel, serve_directory
from tests.support.ci import skip_or_fail

# <repo>/tests/support/fixtures.py → <repo>/../shared
SHARED_DIR = Path(__file__).resolve().parents[2].parent / "shared"
REALDATA_DIR = SHARED_DIR / "realdata"

ChannelFactory = Callable[..., Path]
Server = Callable[[Path], ServedURL]


def require_realdata() -> Path:
    """The realdata folder; skip the test when it is missing, fail instead on CI."""
    if (REALDATA_DIR / "channel").is_dir():
        return REALDATA_DIR
    skip_or_fail(
        f"real conda packages not found at {REALDATA_DIR} (expected next to the repository as ../shared/realdata)"
    )


@pytest.fixture(scope="session")
def realdata_dir() -> Path:
    return require_realdata()


@pytest.fixture
def channel_factory(tmp_path_factory: pytest.TempPathFactory) -> ChannelFactory:
    """Make indexed channels: ``channel_factory([PackageSpec(...) | dict, ...], name=None)``."""

    def make(packages: Iterable[PackageSpec | Mapping[str, object]] = (), name: str | None = None) -> Path:
        root = tmp_path_factory.mktemp(name or "channel", numbered=True)
        return make_channel(root, packages)

    return make


@pytest.fixture
def http_channel() -> Iterator[Server]:
    """Serve folders over HTTP on 127.0.0.1 for the duration of the test."""
    with contextlib.ExitStack() as stack:

        def serve(path: Path) -> ServedURL:
            return stack.enter_context(serve_directory(Path(path)))

        yield serve


@pytest.fixture
def realdata_channel(http_channel: Server) -> Callable[[str], ServedURL]:
    """Serve ``../shared/realdata/channel/<name>`` over HTTP (read-only, as shipped)."""

    def serve(name: str) -> ServedURL:
        channel = require_realdata() / "channel" / name
        if not channel.is_dir():
            # A typo in a test, not a missing data set: fail loudly everywhere.
            known = sorted(p.name for p in channel.parent.iterdir() if p.is_dir())
            pytest.fail(f"no realdata channel {name!r}; known: {', '.join(known)}", pytrace=False)
        return http_channel(channel)

    return serve


@pytest.fixture(scope="session")
def package_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A package cache shared by all tests of the session (downloads happen once)."""
    return tmp_path_factory.mktemp("pkgs-cache")
