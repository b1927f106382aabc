"""``pip:`` dependencies end to end: uv locks from a loopback index, installs into a prefix.

The prefix is made by ``rattler.install`` from a local channel holding a ``python``
package built from the host interpreter (tests/support/hostpython.py), so uv installs
into a real, runnable conda environment. Wheels are tiny and written at test time.
The first section tests the pure helpers of pip.py.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest
import rattler

from condaops.config.settings import PipSettings
from condaops.reconciler.build.lock import read_pip_locks, write_lockfiles
from condaops.reconciler.build.pip import (
    PipLock,
    check_requirements,
    index_args,
    install_pip,
    lock_pip,
    parse_pylock,
    python_version,
    render_requirements,
    uv_platform,
)
from condaops.reconciler.errors import BuildTimeoutError, ChannelError, PipError
from condaops.reconciler.lockread import read_pixi_lock
from condaops.reconciler.spec import Dependency, Spec
from tests.support.channels import closed_port_url
from tests.support.hostpython import (
    host_python_runs_when_copied,
    host_python_version,
    host_subdir,
    make_host_python_channel,
)
from tests.support.pypi import serve_directory, sha256_of, write_simple_index, write_wheel

pytestmark = pytest.mark.integration
SHA = "0" * 64

# --- pure helpers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("conda", "uv"),
    [
        ("linux-64", "x86_64-unknown-linux-gnu"),
        ("osx-arm64", "aarch64-apple-darwin"),
        ("win-64", "x86_64-pc-windows-msvc"),
    ],
    ids=["linux", "mac-arm", "windows"],
)
def test_uv_platform(conda: str, uv: str) -> None:
    assert uv_platform(conda) == uv


def test_uv_platform_unknown_names_the_platform() -> None:
    with pytest.raises(PipError, match="linux-s390x"):
        uv_platform("linux-s390x")


def test_index_args_keep_order() -> None:
    settings = PipSettings(index_url="https://a/simple", extra_index_urls=("https://b/simple",), find_links=("/w",))
    assert index_args(settings) == [
        "--index-url",
        "https://a/simple",
        "--extra-index-url",
        "https://b/simple",
        "--find-links",
        "/w",
    ]
    assert index_args(PipSettings()) == []


def test_python_version_from_records() -> None:
    def record(name: str, version: str) -> SimpleNamespace:
        return SimpleNamespace(name=SimpleNamespace(normalized=name), version=version)

    assert python_version([record("zlib", "1.3"), record("python", "3.12.4")]) == "3.12.4"
    assert python_version([record("zlib", "1.3")]) is None


PYLOCK = """
lock-version = "1.0"
created-by = "uv"
[[packages]]
name = "zeta"
version = "1.0"
wheels = [{ url = "https://f.example/zeta-1.0-py3-none-any.whl", hashes = { sha256 = "<sha>" } }]
[[packages]]
name = "alpha"
version = "2.0"
sdist = { url = "https://f.example/alpha-2.0.tar.gz", hashes = { sha256 = "<sha>" } }
[[packages]]
name = "local"
version = "0.1"
wheels = [{ path = "wheels/local-0.1-py3-none-any.whl", hashes = { sha256 = "<sha>" } }]
""".replace("<sha>", SHA)


def test_parse_pylock_wheels_sdists_and_paths(tmp_path: Path) -> None:
    locks = parse_pylock(PYLOCK, base=tmp_path)
    assert locks == [
        PipLock("alpha", "2.0", "https://f.example/alpha-2.0.tar.gz", SHA),
        PipLock("local", "0.1", (tmp_path / "wheels/local-0.1-py3-none-any.whl").as_uri(), SHA),
        PipLock("zeta", "1.0", "https://f.example/zeta-1.0-py3-none-any.whl", SHA),
    ]


@pytest.mark.parametrize(
    ("package", "match"),
    [
        ('name = "g"\nversion = "1"\nvcs = { type = "git", url = "https://g.example/r" }', "'g'.*VCS"),
        ('name = "d"\ndirectory = { path = "src" }', "'d'.*local directory"),
        ('name = "n"\nversion = "1"\nwheels = [{ url = "https://f.example/n-1.whl" }]', "no sha256 for 'n'"),
    ],
    ids=["vcs", "directory", "no-hash"],
)
def test_parse_pylock_refuses_what_cannot_be_hash_locked(package: str, match: str) -> None:
    with pytest.raises(PipError, match=match):
        parse_pylock(f'lock-version = "1.0"\n[[packages]]\n{package}\n')


@pytest.mark.parametrize("line", ["--index-url https://evil.example/simple", "-r /etc/passwd", "-e ."])
def test_installer_options_are_refused(line: str) -> None:
    with pytest.raises(PipError, match=re.escape(line)):
        check_requirements(["requests", line])
    check_requirements(["requests>=2", "foo[extra]==1; python_version >= '3.8'"])


def test_render_requirements_is_sorted_and_hashed() -> None:
    locks = [PipLock("b", "1", "https://f/b.whl", SHA), PipLock("a", "2", "https://f/a.whl", SHA)]
    assert render_requirements(locks) == (
        f"a @ https://f/a.whl --hash=sha256:{SHA}\nb @ https://f/b.whl --hash=sha256:{SHA}\n"
    )


# --- fixtures ----------------------------------------------------------------------------


@dataclass
class Index:
    """A PEP 503 index of tiny wheels on disk (``root``) and, while served, over HTTP."""

    root: Path
    wheels: dict[str, Path]
    url: str = ""

    @property
    def simple(self) -> str:
        return f"{self.url}/simple" if self.url else (self.root / "simple").as_uri()


def _write_wheels(folder: Path) -> dict[str, Path]:
    return {
        "alpha-lib": write_wheel(folder, "alpha-lib", "1.0", requires=["beta-core>=2"]),
        "beta-core-1": write_wheel(folder, "beta-core", "1.0"),
        "beta-core-2": write_wheel(folder, "beta-core", "2.1"),
        "new-only": write_wheel(folder, "py-pick", "2.0", requires_python=">=3.99"),
        "old": write_wheel(folder, "py-pick", "1.0"),
        "linux": write_wheel(folder, "native", "1.0", tag="cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64"),
        "mac": write_wheel(folder, "native", "1.0", tag="cp311-cp311-macosx_11_0_arm64"),
    }


@pytest.fixture
def index(tmp_path: Path) -> Iterator[Index]:
    """A served index; ``index.url`` is its base URL (the server stops after the test)."""
    root = tmp_path / "index"
    wheels = _write_wheels(tmp_path / "built")
    write_simple_index(root, list(wheels.values()))
    with serve_directory(root) as url:
        yield Index(root, {k: root / "files" / w.name for k, w in wheels.items()}, url)


@pytest.fixture(scope="module")
def host_python_channel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    reason = host_python_runs_when_copied()
    if reason:
        pytest.skip(reason)
    return make_host_python_channel(tmp_path_factory.mktemp("host-python-channel"))


@pytest.fixture
def make_prefix(host_python_channel: Path, tmp_path: Path) -> Callable[[str], tuple[Path, str]]:
    """Factory: a conda environment holding the host-python package; returns (prefix, version)."""

    def _make(name: str) -> tuple[Path, str]:
        async def build() -> list[rattler.RepoDataRecord]:
            records = await rattler.solve(
                [host_python_channel.as_uri()],
                ["python 3.*"],
                platforms=[host_subdir(), "noarch"],
                timestamp_policy="allow-missing",
            )
            await rattler.install(records, tmp_path / name, cache_dir=tmp_path / "pkgs", show_progress=False)
            return records

        records = asyncio.run(build())
        version = python_version(records)
        assert version == host_python_version()
        return tmp_path / name, version

    return _make


def run_python(prefix: Path, code: str) -> str:
    result = subprocess.run(
        [prefix / "bin" / "python", "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def lock(requirements: list[str], settings: PipSettings, tmp_path: Path, **kwargs: object) -> list[PipLock]:
    arguments: dict[str, object] = {
        "python_version": host_python_version(),
        "platform": host_subdir(),
        "settings": settings,
        "workdir": tmp_path / "lock",
        "timeout": 120,
        "cache_dir": tmp_path / "uv-cache",
    }
    arguments.update(kwargs)
    return lock_pip(requirements, **arguments)  # type: ignore[arg-type]


# --- locking -----------------------------------------------------------------------------


def test_lock_resolves_dependencies_with_urls_and_hashes(index: Index, tmp_path: Path) -> None:
    locks = lock(["alpha-lib"], PipSettings(index_url=index.simple), tmp_path)
    assert [(x.name, x.version) for x in locks] == [("alpha-lib", "1.0"), ("beta-core", "2.1")]
    for entry, key in zip(locks, ["alpha-lib", "beta-core-2"], strict=True):
        assert entry.url == f"{index.url}/files/{index.wheels[key].name}"
        assert entry.sha256 == sha256_of(index.wheels[key])


def test_lock_respects_the_python_version(index: Index, tmp_path: Path) -> None:
    settings = PipSettings(index_url=index.simple)
    assert lock(["py-pick"], settings, tmp_path)[0].version == "1.0"
    assert lock(["py-pick"], settings, tmp_path, python_version="3.99.1")[0].version == "2.0"


def test_lock_picks_the_wheel_of_the_platform(index: Index, tmp_path: Path) -> None:
    settings = PipSettings(index_url=index.simple)
    linux = lock(["native"], settings, tmp_path, platform="linux-64", python_version="3.11.7")
    mac = lock(["native"], settings, tmp_path, platform="osx-arm64", python_version="3.11.7")
    assert linux[0].url.endswith("manylinux2014_x86_64.whl")
    assert mac[0].url.endswith("macosx_11_0_arm64.whl")


def test_lock_from_find_links_folder(index: Index, tmp_path: Path) -> None:
    empty_index = tmp_path / "empty" / "simple"
    empty_index.mkdir(parents=True)  # keeps uv off PyPI: nothing is found there
    settings = PipSettings(index_url=empty_index.as_uri(), find_links=(str(index.root / "files"),))
    locks = lock(["alpha-lib"], settings, tmp_path)
    assert [x.url for x in locks] == [index.wheels["alpha-lib"].as_uri(), index.wheels["beta-core-2"].as_uri()]


def test_lock_ignores_uv_and_pip_environment_variables(
    index: Index, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = closed_port_url()
    monkeypatch.setenv("UV_INDEX_URL", f"{dead}/simple")
    monkeypatch.setenv("UV_EXTRA_INDEX_URL", f"{dead}/simple")
    monkeypatch.setenv("PIP_INDEX_URL", f"{dead}/simple")
    monkeypatch.setenv("UV_OFFLINE", "1")
    locks = lock(["alpha-lib"], PipSettings(index_url=index.simple), tmp_path)
    assert all(x.url.startswith(index.url) for x in locks)


def test_lock_nothing_runs_nothing(tmp_path: Path) -> None:
    assert lock([], PipSettings(index_url="http://127.0.0.1:9/simple"), tmp_path) == []


def test_missing_requirement_names_it(index: Index, tmp_path: Path) -> None:
    with pytest.raises(PipError, match="no-such-package-zz") as caught:
        lock(["alpha-lib", "no-such-package-zz>=1"], PipSettings(index_url=index.simple), tmp_path)
    assert caught.value.reason == "PipFailed"
    assert host_subdir() in str(caught.value)


def test_unreachable_index_is_transient(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UV_HTTP_RETRIES", "0")  # transport tuning passes through; saves ~10 s
    with pytest.raises(ChannelError, match="could not be reached") as caught:
        lock(["alpha-lib"], PipSettings(index_url=f"{closed_port_url()}/simple"), tmp_path)
    assert caught.value.retryable


def test_lock_past_its_timeout(index: Index, tmp_path: Path) -> None:
    with pytest.raises(BuildTimeoutError, match="uv took longer"):
        lock(["alpha-lib"], PipSettings(index_url=index.simple), tmp_path, timeout=0.001)


# --- installing --------------------------------------------------------------------------


def test_lock_and_install_into_a_conda_environment(index: Index, make_prefix, tmp_path: Path) -> None:
    prefix, version = make_prefix("env")
    assert run_python(prefix, "import sys; print(sys.prefix)") == str(prefix)
    settings = PipSettings(index_url=index.simple)
    locks = lock(["alpha-lib"], settings, tmp_path, python_version=version)
    install_pip(prefix, locks, settings=settings, timeout=120, cache_dir=tmp_path / "uv-cache")
    out = run_python(prefix, "import alpha_lib, beta_core; print(alpha_lib.__file__, beta_core.VERSION)")
    module, beta_version = out.split()
    assert Path(module).is_relative_to(prefix / "lib") and beta_version == "2.1"


def test_install_works_offline_from_the_cache(make_prefix, tmp_path: Path) -> None:
    root = tmp_path / "index"
    write_simple_index(root, list(_write_wheels(tmp_path / "built").values()))
    cache = tmp_path / "uv-cache"
    with serve_directory(root) as url:
        settings = PipSettings(index_url=f"{url}/simple")
        locks = lock(["alpha-lib"], settings, tmp_path)
        first, _ = make_prefix("first")
        install_pip(first, locks, settings=settings, timeout=120, cache_dir=cache)
    # The index is gone: a rebuild (or rollback) from the lock uses uv's cache alone.
    second, _ = make_prefix("second")
    install_pip(second, locks, settings=settings, timeout=120, cache_dir=cache)
    assert run_python(second, "import beta_core; print(beta_core.VERSION)") == "2.1"


def test_tampered_wheel_fails_the_hash_check(index: Index, make_prefix, tmp_path: Path) -> None:
    settings = PipSettings(index_url=index.simple)
    locks = lock(["alpha-lib"], settings, tmp_path)
    beta = index.wheels["beta-core-2"]
    write_wheel(beta.parent / "evil", "beta-core", "2.1", modules={"beta_core/__init__.py": "EVIL = 1\n"}).replace(beta)
    prefix, _ = make_prefix("env")
    with pytest.raises(PipError, match=r"(?i)hash mismatch.*beta"):
        install_pip(prefix, locks, settings=settings, timeout=120, cache_dir=tmp_path / "fresh-cache")
    assert "beta_core" not in run_python(prefix, "import pkgutil; print([m.name for m in pkgutil.iter_modules()])")


def test_install_needs_a_python_in_the_environment(tmp_path: Path) -> None:
    with pytest.raises(PipError, match="no bin/python; add python"):
        install_pip(tmp_path, [PipLock("a", "1", "https://f/a.whl", SHA)], settings=PipSettings(), timeout=10)


def test_install_nothing_is_a_no_op(tmp_path: Path) -> None:
    install_pip(tmp_path, [], settings=PipSettings(), timeout=10)  # no python needed


def test_rebuild_from_the_lockfiles_alone(index: Index, host_python_channel: Path, tmp_path: Path) -> None:
    """pixi.lock gives the conda records, conda-lock.yml the pip locks: enough to rebuild."""
    platform = host_subdir()
    records = asyncio.run(
        rattler.solve(
            [host_python_channel.as_uri()],
            ["python 3.*"],
            platforms=[platform, "noarch"],
            timestamp_policy="allow-missing",
        )
    )
    settings = PipSettings(index_url=index.simple)
    locks = lock(["alpha-lib"], settings, tmp_path, python_version=python_version(records))
    spec = Spec(
        channels=(host_python_channel.as_uri(),),
        dependencies=(Dependency("python 3.*"),),
        pip=(Dependency("alpha-lib"),),
    )
    folder = tmp_path / "locks"
    write_lockfiles(
        folder,
        {platform: records},
        spec,
        name="demo",
        channels=spec.channels,
        host_platform=platform,
        pip={platform: locks},
    )

    prefix = tmp_path / "rebuilt"
    conda_records = read_pixi_lock(folder / "pixi.lock")[platform]
    asyncio.run(rattler.install(conda_records, prefix, cache_dir=tmp_path / "pkgs", show_progress=False))
    install_pip(
        prefix,
        read_pip_locks(folder / "conda-lock.yml")[platform],
        settings=settings,
        timeout=120,
        cache_dir=tmp_path / "uv-cache",
    )
    assert run_python(prefix, "import alpha_lib, beta_core; print(beta_core.VERSION)") == "2.1"
