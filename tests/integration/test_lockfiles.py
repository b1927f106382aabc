"""Lockfiles from real solves, checked against the formats' own parsers and real files.

Records come from ``rattler.solve`` over the real channels in ``../shared/realdata``
(``file://`` is fine for solving); the real conda-lock.yml and @EXPLICIT files there are
the reference for shape and, where they name the same package files, for hashes.
"""

from __future__ import annotations

import asyncio
import random
import re
import subprocess
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
import rattler
import yaml
from conda_lock.lockfile import parse_conda_lock_file
from conda_lock.lockfile.v2prelim.models import Lockfile
from rattler import BuildString, GenericVirtualPackage, PackageName, RepoDataRecord, Version
from rattler.explicit_environment import ExplicitEnvironmentSpec

from condaops.reconciler.build.lock import CONDA_LOCK, ENVIRONMENT, EXPLICIT, PIXI_LOCK, read_pip_locks, write_lockfiles
from condaops.reconciler.build.pip import PipLock
from condaops.reconciler.lockread import read_pixi_lock
from condaops.reconciler.spec import Dependency, Spec
from tests.support.ci import skip_or_fail

pytestmark = pytest.mark.integration

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
# Real conda-lock files that conda-lock 4.0.3's own parser refuses, and why.
UNPARSEABLE_LOCKS = {
    "mamba__bad_package-lock.yaml": "deliberately broken (SOURCES.md: NEGATIVE)",
    "mamba__bad_version-lock.yaml": "deliberately broken: version -1",
    "mamba__good_no_package-lock.yaml": "`package: null`; the model wants a list",
    "conda-lock__example-pangeo.conda-lock.yml": "old conda-lock output: entries lack `optional`",
}
# conda's explicit grammar: <channel>/<subdir>/<file>.(conda|tar.bz2)#(md5|sha256:<hex>)
EXPLICIT_LINE = re.compile(
    r"\S+/(noarch|[a-z]+-[a-z0-9]+)/[^/\s]+\.(conda|tar\.bz2)#([0-9a-f]{32}|sha256:[0-9a-f]{64})"
)

_VIRTUAL = {
    "linux-64": [("__glibc", "2.28"), ("__linux", "5.10"), ("__unix", "0")],
    "osx-arm64": [("__osx", "13.0"), ("__unix", "0")],
}


def realdata(*parts: str) -> Path:
    """A path under ../shared/realdata; skip (fail in CI) when the corpus is absent."""
    path = SHARED.joinpath("realdata", *parts)
    if not path.exists():
        skip_or_fail(f"{path} is missing: the real-data corpus must sit next to the project as ../shared")
    return path


def solve(channel: Path, specs: Sequence[str], platform: str) -> list[RepoDataRecord]:
    virtual = [GenericVirtualPackage(PackageName(n), Version(v), BuildString("0")) for n, v in _VIRTUAL[platform]]
    return asyncio.run(
        rattler.solve(
            [channel.as_uri()],
            specs,
            platforms=[platform, "noarch"],
            virtual_packages=virtual,
            timestamp_policy="allow-missing",  # the 2019-2021 records predate the policy
        )
    )


def spec_for(channel: Path, deps: Sequence[str], **extra: object) -> Spec:
    return Spec(
        channels=(channel.as_uri(),),
        dependencies=tuple(sorted(Dependency(d) for d in deps)),
        **extra,  # type: ignore[arg-type]
    )


FLASK_DEPS = ("flask", "python=2.7")
CF_DEPS = ("bzip2", "ncurses", "openssl", "tk", "tzdata")


@pytest.fixture(scope="module")
def flask_records() -> dict[str, list[RepoDataRecord]]:
    return {"linux-64": solve(realdata("channel", "defaults-2021-py27-flask"), FLASK_DEPS, "linux-64")}


@pytest.fixture(scope="module")
def cf_records() -> dict[str, list[RepoDataRecord]]:
    channel = realdata("channel", "conda-forge-py312-deps")
    return {p: solve(channel, CF_DEPS, p) for p in ("linux-64", "osx-arm64")}


PIP = {
    "linux-64": [
        PipLock("tiny-b", "2.1", "https://files.example/packages/tiny_b-2.1-py3-none-any.whl", "b" * 64),
        PipLock("tiny-a", "1.0", "https://files.example/packages/tiny_a-1.0-py3-none-any.whl", "a" * 64),
    ]
}


@pytest.fixture
def write(tmp_path: Path) -> Callable[..., dict[str, list[Path]]]:
    """Factory: write lockfiles for records into a fresh folder; returns kind -> paths."""
    counter = iter(range(1000))

    def _write(records: dict[str, list[RepoDataRecord]], spec: Spec, **kwargs: object) -> dict[str, list[Path]]:
        folder = tmp_path / f"out{next(counter)}"
        kwargs.setdefault("name", "demo")
        kwargs.setdefault("channels", spec.channels)
        kwargs.setdefault("host_platform", "linux-64")
        written = write_lockfiles(folder, records, spec, **kwargs)  # type: ignore[arg-type]
        by_kind: dict[str, list[Path]] = {}
        for kind, path in written:
            assert path.parent == folder
            by_kind.setdefault(kind, []).append(path)
        return by_kind

    return _write


@pytest.fixture(scope="module")
def real_locks() -> dict[str, Lockfile]:
    """Every parseable real conda-lock file, parsed once (parsing them all takes ~2.5 s)."""
    folder = realdata("lockfiles", "conda-lock-v1")
    paths = sorted(p for p in folder.iterdir() if p.name not in UNPARSEABLE_LOCKS)
    return {p.name: parse_conda_lock_file(p) for p in paths}


# --- conda-lock.yml ---------------------------------------------------------------------


def test_writes_every_kind_with_documented_names(write, cf_records) -> None:
    spec = spec_for(realdata("channel", "conda-forge-py312-deps"), CF_DEPS)
    files = write(cf_records, spec)
    assert {k: sorted(p.name for p in v) for k, v in files.items()} == {
        CONDA_LOCK: ["conda-lock.yml"],
        EXPLICIT: ["conda-linux-64.lock", "conda-osx-arm64.lock"],
        PIXI_LOCK: ["pixi.lock"],
        ENVIRONMENT: ["environment.yaml"],
    }


def test_conda_lock_parses_back_with_conda_locks_parser(write, cf_records) -> None:
    spec = spec_for(realdata("channel", "conda-forge-py312-deps"), CF_DEPS)
    path = write(cf_records, spec)[CONDA_LOCK][0]
    lockfile = parse_conda_lock_file(path)

    assert lockfile.metadata.platforms == ["linux-64", "osx-arm64"]
    assert lockfile.metadata.content_hash == {"linux-64": spec.spec_hash, "osx-arm64": spec.spec_hash}
    assert [c.url for c in lockfile.metadata.channels] == [spec.channels[0]]
    for platform, records in cf_records.items():
        locked = {p.name: p for p in lockfile.package if p.platform == platform}
        assert set(locked) == {r.name.normalized for r in records}
        for record in records:
            entry = locked[record.name.normalized]
            assert (entry.manager, entry.version, entry.url) == ("conda", str(record.version), record.url)
            assert entry.hash.md5 == record.md5.hex() and entry.hash.sha256 == record.sha256.hex()
            assert entry.categories == {"main"}
    tk = next(p for p in lockfile.package if p.name == "tk" and p.platform == "linux-64")
    assert tk.dependencies["libzlib"] == ">=1.2.13,<2.0.0a0"  # the patched repodata, verbatim


def test_real_conda_lock_files_parse_with_the_same_parser(real_locks) -> None:
    assert len(real_locks) >= 15
    for name, lockfile in real_locks.items():
        assert lockfile.metadata.platforms, name
    for name in UNPARSEABLE_LOCKS:  # if conda-lock starts accepting these, revisit the list
        with pytest.raises(ValueError):
            parse_conda_lock_file(realdata("lockfiles", "conda-lock-v1", name))


def test_conda_lock_has_the_shape_of_real_files(write, flask_records) -> None:
    spec = spec_for(realdata("channel", "defaults-2021-py27-flask"), FLASK_DEPS)
    ours = yaml.safe_load(write(flask_records, spec, pip=PIP)[CONDA_LOCK][0].read_text())
    reference = realdata("lockfiles", "conda-lock-v1", "conda-lock__test-install-with-pip-deps.conda-lock.yml")
    real = yaml.safe_load(reference.read_text())

    assert list(ours) == list(real) == ["version", "metadata", "package"]
    assert ours["version"] == real["version"] == 1
    required = {"content_hash", "channels", "platforms", "sources"}
    assert required <= set(ours["metadata"]) and required <= set(real["metadata"])
    assert set(ours["metadata"]["channels"][0]) == set(real["metadata"]["channels"][0])
    for manager in ("conda", "pip"):
        our_keys = {tuple(p) for p in ours["package"] if p["manager"] == manager}
        real_keys = {tuple(p) for p in real["package"] if p["manager"] == manager}
        assert our_keys == real_keys, manager
        real_hash_keys = {tuple(p["hash"]) for p in real["package"] if p["manager"] == manager}
        assert {tuple(p["hash"]) for p in ours["package"] if p["manager"] == manager} <= real_hash_keys


def test_hashes_agree_with_real_lockfiles_naming_the_same_files(write, cf_records, real_locks) -> None:
    real: dict[str, tuple[str, str]] = {}
    for lockfile in real_locks.values():
        for package in lockfile.package:
            if package.manager == "conda":
                real[_subdir_file(package.url)] = (package.name, package.hash.md5 or "")
    spec = spec_for(realdata("channel", "conda-forge-py312-deps"), CF_DEPS)
    ours = parse_conda_lock_file(write(cf_records, spec)[CONDA_LOCK][0])
    shared = [p for p in ours.package if _subdir_file(p.url) in real]
    assert len(shared) >= 5  # SOURCES.md: 18 files overlap with the corpus
    for package in shared:
        assert real[_subdir_file(package.url)] == (package.name, package.hash.md5)


def _subdir_file(url: str) -> str:
    return "/".join(url.rsplit("/", 2)[-2:])


def test_pip_locks_are_pip_entries_and_read_back(write, flask_records) -> None:
    spec = spec_for(realdata("channel", "defaults-2021-py27-flask"), FLASK_DEPS)
    path = write(flask_records, spec, pip=PIP)[CONDA_LOCK][0]
    pip_entries = [p for p in parse_conda_lock_file(path).package if p.manager == "pip"]
    assert sorted((p.name, p.version, p.hash.sha256) for p in pip_entries) == [
        ("tiny-a", "1.0", "a" * 64),
        ("tiny-b", "2.1", "b" * 64),
    ]
    assert read_pip_locks(path) == {"linux-64": sorted(PIP["linux-64"])}


def test_time_is_written_only_when_given(write, flask_records) -> None:
    spec = spec_for(realdata("channel", "defaults-2021-py27-flask"), FLASK_DEPS)
    plain = write(flask_records, spec)[CONDA_LOCK][0]
    assert "time_metadata" not in yaml.safe_load(plain.read_text())["metadata"]
    moment = datetime(2026, 11, 3, 12, 30, 5, tzinfo=UTC)
    timed = write(flask_records, spec, created_at=moment)[CONDA_LOCK][0]
    assert parse_conda_lock_file(timed).metadata.time_metadata.created_at == "2026-11-03T12:30:05Z"


# --- @EXPLICIT --------------------------------------------------------------------------


def _explicit_body(path: Path) -> list[str]:
    lines = [line.strip() for line in path.read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def test_explicit_files_follow_the_real_files_grammar(write, cf_records) -> None:
    references = ["conda-lock__zlib.conda-linux-64.lock", "rattler__python.explicit-env-linux-64.txt"]
    for name in references:  # the grammar check itself accepts real files
        body = _explicit_body(realdata("lockfiles", "explicit", name))
        assert body[0] == "@EXPLICIT" and all(EXPLICIT_LINE.fullmatch(line) for line in body[1:]), name

    spec = spec_for(realdata("channel", "conda-forge-py312-deps"), CF_DEPS)
    for path in write(cf_records, spec)[EXPLICIT]:
        platform = path.name.removeprefix("conda-").removesuffix(".lock")
        body = _explicit_body(path)
        assert body[0] == "@EXPLICIT"
        assert all(EXPLICIT_LINE.fullmatch(line) for line in body[1:])
        expected = {f"{r.url}#{r.md5.hex()}" for r in cf_records[platform]}
        assert set(body[1:]) == expected
        parsed = ExplicitEnvironmentSpec.from_path(path)  # rattler's (mamba's) reader
        assert str(parsed.platform) == platform
        assert {p.url for p in parsed.packages} == expected


def test_explicit_lists_dependencies_first(write, flask_records) -> None:
    spec = spec_for(realdata("channel", "defaults-2021-py27-flask"), FLASK_DEPS)
    body = _explicit_body(write(flask_records, spec)[EXPLICIT][0])[1:]
    position = {line.rsplit("/", 1)[1].rsplit("-", 2)[0]: i for i, line in enumerate(body)}
    for record in flask_records["linux-64"]:
        for depend in record.depends:
            assert position[depend.split()[0]] < position[record.name.normalized], (record.name, depend)


def test_explicit_md5_matches_real_explicit_files(write, cf_records) -> None:
    real = {}
    for path in realdata("lockfiles", "explicit").iterdir():
        for line in _explicit_body(path)[1:]:
            url, _, digest = line.partition("#")
            real[_subdir_file(url)] = digest
    spec = spec_for(realdata("channel", "conda-forge-py312-deps"), CF_DEPS)
    ours = dict(line.partition("#")[::2] for line in _explicit_body(write(cf_records, spec)[EXPLICIT][0])[1:])
    overlap = {_subdir_file(url): digest for url, digest in ours.items() if _subdir_file(url) in real}
    assert overlap, "expected files shared with the real explicit lockfiles (SOURCES.md)"
    assert all(real[key] == digest for key, digest in overlap.items())


# --- pixi.lock ----------------------------------------------------------------------------

_FIELDS = (
    "file_name",
    "url",
    "subdir",
    "build",
    "build_number",
    "md5",
    "sha256",
    "size",
    "depends",
    "constrains",
    "license",
    "timestamp",
)


def _fields(record: RepoDataRecord) -> tuple[object, ...]:
    values = tuple(getattr(record, f) for f in _FIELDS)
    return (record.name.normalized, str(record.version), str(record.noarch), *values)


def test_pixi_lock_round_trips_full_records(write, cf_records, flask_records) -> None:
    records = {**cf_records}
    spec = spec_for(realdata("channel", "conda-forge-py312-deps"), CF_DEPS)
    back = read_pixi_lock(write(records, spec)[PIXI_LOCK][0])
    assert sorted(back) == ["linux-64", "osx-arm64"]
    for platform, originals in records.items():
        assert sorted(map(_fields, back[platform])) == sorted(map(_fields, originals))
    flask_spec = spec_for(realdata("channel", "defaults-2021-py27-flask"), FLASK_DEPS)
    flask_back = read_pixi_lock(write(flask_records, flask_spec)[PIXI_LOCK][0])["linux-64"]
    assert sorted(map(_fields, flask_back)) == sorted(map(_fields, flask_records["linux-64"]))
    assert {str(r.noarch) for r in flask_back} >= {'NoArchType("python")', "NoArchType(None)"}


def test_pixi_lock_reinstalls_a_runnable_environment(write, flask_records, tmp_path) -> None:
    spec = spec_for(realdata("channel", "defaults-2021-py27-flask"), FLASK_DEPS)
    records = read_pixi_lock(write(flask_records, spec)[PIXI_LOCK][0])["linux-64"]
    prefix = tmp_path / "env"
    asyncio.run(rattler.install(records, prefix, cache_dir=tmp_path / "pkgs", show_progress=False))
    out = subprocess.run(
        [prefix / "bin" / "python", "-c", "import flask; print(flask.__version__)"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.strip() == "1.1.2"


# --- environment.yaml -------------------------------------------------------------------


def test_environment_yaml_pins_the_host_platform(write, cf_records) -> None:
    channel = realdata("channel", "conda-forge-py312-deps")
    spec = spec_for(channel, CF_DEPS, variables=(("OMP_NUM_THREADS", "1"),))
    pip = {"osx-arm64": PIP["linux-64"][:1], "linux-64": PIP["linux-64"]}
    document = yaml.safe_load(write(cf_records, spec, name="tools", pip=pip)[ENVIRONMENT][0].read_text())
    pins = {f"{r.name.normalized}={r.version}={r.build}" for r in cf_records["linux-64"]}
    assert document["name"] == "tools"
    assert document["channels"] == [channel.as_uri(), "nodefaults"]
    assert set(document["dependencies"][:-1]) == pins
    assert document["dependencies"][-1] == {"pip": ["tiny-a==1.0", "tiny-b==2.1"]}
    assert document["variables"] == {"OMP_NUM_THREADS": "1"}


def test_environment_yaml_falls_back_to_a_solved_platform(write, cf_records) -> None:
    spec = spec_for(realdata("channel", "conda-forge-py312-deps"), CF_DEPS)
    only_osx = {"osx-arm64": cf_records["osx-arm64"]}
    text = write(only_osx, spec, host_platform="linux-64")[ENVIRONMENT][0].read_text()
    assert "osx-arm64" in text.splitlines()[0]
    osx_tk = next(r for r in cf_records["osx-arm64"] if r.name.normalized == "tk")
    assert f"- tk={osx_tk.version}={osx_tk.build}\n" in text


# --- determinism and secrets ------------------------------------------------------------


def test_same_records_give_byte_identical_files(write, cf_records) -> None:
    spec = spec_for(realdata("channel", "conda-forge-py312-deps"), CF_DEPS)
    shuffled = {}
    rng = random.Random(7)
    for platform in reversed(list(cf_records)):
        records = list(cf_records[platform])
        rng.shuffle(records)
        shuffled[platform] = records
    pip = {"linux-64": list(reversed(PIP["linux-64"]))}
    first = write(cf_records, spec, pip=PIP)
    second = write(shuffled, spec, pip=pip)
    for kind in first:
        for a, b in zip(first[kind], second[kind], strict=True):
            assert a.name == b.name and a.read_bytes() == b.read_bytes(), a.name


def test_credentials_never_reach_a_lockfile(write, cf_records) -> None:
    base = "https://builder:s3cret@conda.example/t/tk-0042/cf"
    records = {
        platform: [RepoDataRecord(r, r.file_name, f"{base}/{r.subdir}/{r.file_name}", f"{base}/") for r in recs]
        for platform, recs in cf_records.items()
    }
    spec = Spec(channels=(base,), dependencies=tuple(Dependency(d) for d in CF_DEPS))
    secret_pip = PipLock("x", "1", "https://u:s3cret@py.example/x-1-py3-none-any.whl", "c" * 64)
    files = write(records, spec, pip={"linux-64": [secret_pip]})
    for path in (p for paths in files.values() for p in paths):
        text = path.read_text()
        assert "s3cret" not in text and "tk-0042" not in text, path.name
        assert "https://conda.example/cf" in text, path.name


# --- conda-lock.yml is conda-lock's own output, byte for byte -------------------------------


def _conda_lock_reference(
    path: Path, records, pip, *, name, channels, spec_hash, created_at, source_path, content_hash
):
    """conda-lock.yml as conda-lock's ``write_conda_lock_file`` writes it from its models
    (the way condaops wrote it before it wrote the file itself)."""
    from conda_lock.lockfile import write_conda_lock_file
    from conda_lock.lockfile.v2prelim.models import HashModel, LockedDependency, LockMeta, TimeMeta
    from conda_lock.models.channel import Channel

    from condaops.reconciler.build.lock import parse_depends
    from condaops.reconciler.lockread import channel_url, redact_url, sorted_records

    platforms = sorted(records)
    packages = [
        LockedDependency(
            name=r.name.normalized,
            version=str(r.version),
            manager="conda",
            platform=p,
            dependencies=parse_depends(r.depends),
            url=redact_url(r.url),
            hash=HashModel(md5=r.md5.hex(), sha256=r.sha256.hex() if r.sha256 else None),
            categories={"main"},
        )
        for p in platforms
        for r in sorted_records(records[p])
    ]
    packages += [
        LockedDependency(
            name=lock.name,
            version=lock.version,
            manager="pip",
            platform=p,
            dependencies={},
            url=redact_url(lock.url),
            hash=HashModel(sha256=lock.sha256),
            categories={"main"},
        )
        for p in platforms
        for lock in sorted(pip.get(p, ()))
    ]
    metadata = LockMeta(
        content_hash={p: (content_hash or {}).get(p, spec_hash) for p in platforms},
        channels=[Channel(url=channel_url(c), used_env_vars=()) for c in channels],
        platforms=platforms,
        sources=[source_path] if source_path else [],
        time_metadata=TimeMeta(created_at=created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        if created_at
        else None,
        custom_metadata={"generated_by": "condaops", "environment": name},
    )
    write_conda_lock_file(Lockfile(package=packages, metadata=metadata), path, None, include_help_text=False)


@pytest.mark.parametrize("case", ["flask", "cf-two-platforms", "pip-credentials-time", "virtual-and-hash"])
def test_conda_lock_yml_is_what_conda_lock_writes(tmp_path, flask_records, cf_records, case) -> None:
    """condaops writes conda-lock.yml itself (a build never imports conda-lock); the bytes
    are those of conda-lock's writer for the same content."""
    from condaops.reconciler.build.lock import write_conda_lock

    records = flask_records if case == "flask" else cf_records
    pip: dict[str, list[PipLock]] = {}
    kwargs: dict[str, object] = {"created_at": None, "source_path": None, "content_hash": None}
    channels: tuple[str, ...] = ("https://repo.anaconda.com/pkgs/main", "https://repo.anaconda.com/pkgs/r/")
    if case == "pip-credentials-time":
        base = "https://builder:s3cret@conda.example/t/tk-0042/cf"
        records = {
            p: [RepoDataRecord(r, r.file_name, f"{base}/{r.subdir}/{r.file_name}", f"{base}/") for r in recs]
            for p, recs in cf_records.items()
        }
        pip = {**PIP, "osx-arm64": [PipLock("Zeta", "0.1", "https://u:p@py.example/zeta-0.1.tar.gz", "c" * 64)]}
        channels = (base, "conda-forge")
        kwargs = {
            "created_at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
            "source_path": "team/demo.yaml",
            "content_hash": {"linux-64": "f" * 64},
        }
    if case == "virtual-and-hash":
        recs = list(flask_records["linux-64"])
        first = recs[0]
        virtual = rattler.PackageRecord("__glibc", "2.28", BuildString("0"), 0, "linux-64", md5=b"\1" * 16)
        recs.append(RepoDataRecord(virtual, "__glibc-2.28-0.conda", first.url, first.channel or ""))
        no_sha = rattler.PackageRecord("zz-top", "1!2.0", BuildString("h1"), 1, "linux-64", md5=b"\2" * 16)
        no_sha.depends = ["python >=2.7,<2.8.0a0", "a-dep", "Z-dep 'quoted: yes'"]
        recs.append(
            RepoDataRecord(
                no_sha, "zz-top-1!2.0-h1.tar.bz2", "https://x.example/c/linux-64/zz-top.tar.bz2", "https://x.example/c"
            )
        )
        records = {"linux-64": recs}
    ours, theirs = tmp_path / "ours.yml", tmp_path / "theirs.yml"
    common = {"name": "démo", "channels": channels, "spec_hash": "0" * 64, **kwargs}
    write_conda_lock(ours, records, pip, **common)  # type: ignore[arg-type]
    _conda_lock_reference(theirs, records, pip, **common)
    assert ours.read_bytes() == theirs.read_bytes()
