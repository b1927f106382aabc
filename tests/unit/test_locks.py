"""Committed lockfiles read and judged: every real conda-lock.yml of the corpus, and what
makes a lock stale, unusable here or invalid."""

from __future__ import annotations

import pytest
from rattler import BuildString, PackageRecord, RepoDataRecord

from condaops.reconciler.build.locked import GENERATED_BY, LockedEnv, lock_digest, read_lock
from condaops.reconciler.build.pip import PipLock
from condaops.reconciler.errors import LockError
from condaops.reconciler.lockfiles import LOCK_INVALID, LOCK_PLATFORM_MISSING, LOCK_STALE
from condaops.reconciler.locks.check import lock_input_hash, lock_problems
from condaops.reconciler.locks.write import lock_path_for
from condaops.reconciler.spec import Dependency, Spec
from tests.support.fixtures import require_realdata

CF = "https://conda.anaconda.org/conda-forge"
ALIAS = "https://conda.anaconda.org/"

# conda-lock's own parser refuses these too (tests/integration/test_lockfiles.py says why).
REFUSED = {
    "conda-lock__example-pangeo.conda-lock.yml": "optional: Field required",
    "mamba__bad_package-lock.yaml": "manager: Field required",
    "mamba__bad_version-lock.yaml": "has version -1",
    "mamba__good_no_package-lock.yaml": "Input should be a valid list",
}


def test_every_real_conda_lock_file_is_read_or_refused_with_its_reason() -> None:
    folder = require_realdata() / "lockfiles" / "conda-lock-v1"
    read = 0
    for path in sorted(folder.iterdir()):
        if path.name in REFUSED:
            with pytest.raises(LockError, match=REFUSED[path.name]) as caught:
                read_lock(path.read_bytes(), "conda-lock", path=path.name)
            assert caught.value.reason == LOCK_INVALID and path.name in str(caught.value)
            continue
        locked = read_lock(path.read_bytes(), "conda-lock", path=path.name)
        assert locked.platforms and all(r.url.startswith("https://") for v in locked.records.values() for r in v)
        read += 1
    assert read == 17


def record(name: str, version: str, depends: tuple[str, ...] = (), channel: str = CF) -> RepoDataRecord:
    pr = PackageRecord(name, version, BuildString("h0"), 0, "linux-64", depends=list(depends), md5=b"\0" * 16)
    file = f"{name}-{version}-h0.conda"
    return RepoDataRecord(pr, file, f"{channel}/linux-64/{file}", channel)


def locked(*records: RepoDataRecord, pip: tuple[PipLock, ...] = (), **meta: object) -> LockedEnv:
    recs = {"linux-64": list(records)}
    pips = {"linux-64": list(pip)} if pip else {}
    return LockedEnv("conda-lock", recs, pips, digest=lock_digest(recs, pips), **meta)  # type: ignore[arg-type]


def spec(*deps: str, pip: tuple[str, ...] = ()) -> Spec:
    return Spec((CF,), tuple(Dependency(d) for d in deps), tuple(Dependency(p) for p in pip), platforms=("linux-64",))


GOOD = locked(
    record("app", "2.0", ("lib >=1",)), record("lib", "1.5"), record("python", "3.12", ()), record("pip", "24")
)

PROBLEMS = [
    ("good", GOOD, spec("app", "python"), []),
    ("version-not-satisfied", GOOD, spec("app >=3", "python"), [LOCK_STALE]),
    ("dependency-not-locked", GOOD, spec("app", "python", "numpy"), [LOCK_STALE]),
    ("not-needed-any-more", GOOD, spec("python"), [LOCK_STALE]),
    ("other-channel", locked(record("app", "1", channel="https://example.org/x")), spec("app"), [LOCK_STALE]),
    ("broken-lock", locked(record("app", "1", ("lib",))), spec("app"), [LOCK_INVALID]),
    ("pip-missing", GOOD, spec("app", "python", pip=("requests",)), [LOCK_STALE]),
    (
        "pip-without-pip-section",
        locked(record("app", "1"), pip=(PipLock("requests", "2.0", "https://x/r.whl", "0" * 64),)),
        spec("app"),
        [LOCK_STALE],
    ),
    ("virtual-packages-are-the-hosts", GOOD, spec("app", "python", "__glibc >=2.17"), []),
]


@pytest.mark.parametrize(("lock", "wanted", "reasons"), [p[1:] for p in PROBLEMS], ids=[p[0] for p in PROBLEMS])
def test_lock_problems(lock: LockedEnv, wanted: Spec, reasons: list[str]) -> None:
    found = lock_problems(lock, wanted, host="linux-64", channels=[CF], alias=ALIAS)
    assert [p.reason for p in found] == reasons


def test_other_platforms_only() -> None:
    (problem,) = lock_problems(GOOD, spec("app"), host="linux-aarch64", channels=[CF], alias=ALIAS)
    assert problem.reason == LOCK_PLATFORM_MISSING
    assert problem.message == "locks linux-64 only; builds here run on linux-aarch64"


def test_a_condaops_lock_records_the_input_it_was_solved_from() -> None:
    wanted = spec("app", "python")
    ours = locked(*GOOD.records["linux-64"], content_hash={"linux-64": lock_input_hash(wanted, "linux-64")})
    ours = LockedEnv(ours.kind, ours.records, ours.pip, ours.content_hash, GENERATED_BY, ours.digest)
    assert lock_problems(ours, wanted, host="linux-64", channels=[CF], alias=ALIAS) == []
    changed = spec("app", "python >=3.12")  # still satisfied by the packages, but not what was solved
    (problem,) = lock_problems(ours, changed, host="linux-64", channels=[CF], alias=ALIAS)
    assert problem.reason == LOCK_STALE and "environment file changed" in problem.message
    assert lock_input_hash(wanted, "linux-64") == lock_input_hash(spec("python", "app"), "linux-64")


def test_where_locks_go() -> None:
    assert lock_path_for("team/app.yaml", "conda-lock") == "team/app.conda-lock.yml"
    assert lock_path_for("team/app/environment.yml", "pixi-lock") == "team/app/pixi.lock"
    assert lock_path_for("app.yaml", "pixi-lock") == "app.pixi.lock"


def test_the_digest_is_the_packages_not_the_bytes() -> None:
    assert GOOD.digest == lock_digest({"linux-64": list(reversed(GOOD.records["linux-64"]))}, {})
    assert GOOD.digest != locked(record("app", "2.1")).digest
