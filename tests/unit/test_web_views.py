"""Pure helpers of the status site: paging, search parsing, diffs, formatting, commands."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from condaops.reconciler.model import EnvRef
from condaops.reconciler.pkgdiff import rattler_compare
from condaops.reconciler.sources.revisions import short_revision
from condaops.reconciler.state.packages import PYPI, LockedPackage, version_matches
from condaops.reconciler.state.queries import BuildInfo, EnvInfo
from condaops.web.builds import content_type
from condaops.web.health import sync_health
from condaops.web.views import (
    EnvRow,
    channel_label,
    clamp_page,
    copy_commands,
    count_states,
    diff_packages,
    filter_rows,
    human_duration,
    human_size,
    image_status,
    namespace_rows,
    next_offset,
    parse_query,
    spec_document,
    valid_name,
)

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("limit", "offset", "expected"),
    [(None, None, (50, 0)), (0, 0, (1, 0)), (-5, -5, (1, 0)), (10**9, 3, (500, 3)), (20, 40, (20, 40))],
    ids=["defaults", "zero", "negative", "huge", "plain"],
)
def test_page_sizes_are_clamped(limit: int | None, offset: int | None, expected: tuple[int, int]) -> None:
    assert clamp_page(limit, offset) == expected


@pytest.mark.parametrize(
    ("offset", "limit", "total", "expected"), [(0, 10, 25, 10), (20, 10, 25, None), (0, 10, 10, None)]
)
def test_next_offset(offset: int, limit: int, total: int, expected: int | None) -> None:
    assert next_offset(offset, limit, total) == expected


@pytest.mark.parametrize(
    ("text", "package", "version"),
    [
        ("openssl 3.3", "openssl", "3.3"),
        ("OpenSSL=3.3", "openssl", "3.3"),
        ("openssl==3.3.*", "openssl", "3.3"),
        ("  openssl   ", "openssl", None),
        ("py*", "py*", None),
        ("openssl >=3", None, None),
        ("two words here", None, None),
        ("", None, None),
        (None, None, None),
    ],
    ids=["space", "equals", "double-equals-star", "padded", "glob", "operator", "words", "empty", "none"],
)
def test_parse_query(text: str | None, package: str | None, version: str | None) -> None:
    query = parse_query(text)
    assert (query.package, query.version) == (package, version)


@pytest.mark.parametrize(
    ("version", "prefix", "matches"),
    [
        ("3.3.1", "3.3", True),
        ("3.3", "3.3", True),
        ("3.30.0", "3.3", False),
        ("3.3.1", None, True),
        ("3.3.1", "3", True),
        ("13.3", "3", False),
    ],
    ids=["patch", "exact", "longer-segment", "no-prefix", "major", "not-a-suffix"],
)
def test_version_prefix_matches_whole_segments(version: str, prefix: str | None, matches: bool) -> None:
    assert version_matches(version, prefix) is matches


def pkg(name: str, version: str, build: str = "0", platform: str = "linux-64", **kw: object) -> LockedPackage:
    return LockedPackage(platform=platform, name=name, version=version, build=build, **kw)  # type: ignore[arg-type]


def test_diff_packages() -> None:
    old = [
        pkg("app", "1.0"),
        pkg("openssl", "3.3.1"),
        pkg("gone", "1"),
        pkg("same", "1"),
        pkg("rebuilt", "1", "0"),
        pkg("app", "1.0", platform="osx-arm64"),
        pkg("requests", "2.31", manager=PYPI),
    ]
    new = [
        pkg("app", "2.0"),
        pkg("openssl", "3.3.1"),
        pkg("zlib", "1.3"),
        pkg("same", "1"),
        pkg("rebuilt", "1", "1"),
        pkg("app", "1.0", platform="osx-arm64"),
        pkg("requests", "2.32", manager=PYPI),
    ]

    diff = diff_packages(old, new, rattler_compare)

    assert [p.name for p in diff.added] == ["zlib"]
    assert [p.name for p in diff.removed] == ["gone"]
    assert [(c.kind, c.old.name, c.old.version, c.new.version, c.new.build) for c in diff.changed] == [
        ("upgraded", "app", "1.0", "2.0", "0"),
        ("rebuilt", "rebuilt", "1", "1", "1"),
        ("upgraded", "requests", "2.31", "2.32", "0"),
    ]
    assert diff_packages(new, new, rattler_compare).empty


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (None, "-"),
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (5 * 1024**2 + 1, "5.0 MiB"),
        (3 * 1024**5, "3072.0 TiB"),
    ],
)
def test_human_size(size: int | None, text: str) -> None:
    assert human_size(size) == text


@pytest.mark.parametrize(
    ("seconds", "text"), [(None, "-"), (0.25, "0.2 s"), (59.9, "59.9 s"), (61, "1 min 1 s"), (3725, "1 h 2 min")]
)
def test_human_duration(seconds: float | None, text: str) -> None:
    assert human_duration(seconds) == text


@pytest.mark.parametrize(
    ("revision", "short"),
    [(None, "-"), ("dir:" + "a" * 64, "dir:aaaaaaaaaaaa"), ("f" * 40, "f" * 12), ("v1.2", "v1.2")],
)
def test_short_revision(revision: str | None, short: str) -> None:
    assert short_revision(revision) == short


@pytest.mark.parametrize(
    ("url", "label"),
    [
        ("https://conda.anaconda.org/conda-forge", "conda-forge"),
        ("https://repo.anaconda.com/pkgs/main", "pkgs/main"),
        ("http://127.0.0.1:8000/", "http://127.0.0.1:8000"),
        (None, "-"),
    ],
)
def test_channel_label(url: str | None, label: str) -> None:
    assert channel_label(url) == label


def test_spec_document_is_yaml_without_empty_keys() -> None:
    canonical = '{"channels":["conda-forge"],"dependencies":["numpy"],"pip":[],"platforms":[],"variables":{"A":"<b>"}}'

    assert spec_document(canonical) == "channels:\n- conda-forge\ndependencies:\n- numpy\nvariables:\n  A: <b>\n"
    assert spec_document(None) == ""


LOCKS, PACK = "application/vnd.condaops.lockfiles.v1", "application/vnd.condaops.conda-pack.v1"
SBOM = "application/vnd.cyclonedx+json"


def test_the_site_names_artifacts_as_the_publish_job_does() -> None:
    from condaops.reconciler.publish import push, sbom
    from condaops.web import views

    assert (
        (views.LOCKFILES_ARTIFACT, views.PACK_ARTIFACT)
        == (push.LOCKFILES_ARTIFACT, push.PACK_ARTIFACT)
        == (LOCKS, PACK)
    )
    assert views.SBOM_ARTIFACT == sbom.SBOM_ARTIFACT == SBOM


def image_record(**changes: object) -> dict:
    record = {
        "manifest_digest": "sha256:" + "1" * 64,
        "tags": ["latest", "build-7", "spec-abc"],
        "runnable": True,
        "not_runnable": None,
        "base": {"reference": "builtin", "description": "builtin (glibc 2.36)"},
        "targets": {
            "builtin": {
                "repository": "team/web",
                "builtin": True,
                "by_type": {LOCKS: "sha256:" + "2" * 64, PACK: "sha256:" + "3" * 64},
            },
            "mirror": {"repository": "mirror/team/web", "builtin": False, "by_type": {}},
        },
    }
    return record | changes


def test_copy_commands_offer_the_published_image_and_its_artifacts() -> None:
    ref = EnvRef("team", "Web")
    image = image_status(image_record(), current=True)
    full = copy_commands(
        "condaops.example:8080", ref, prefix="/srv/store/team/envs/Web", has_lock=True, image=image, plain_http=True
    )
    assert [c.text for c in full] == [
        "docker pull condaops.example:8080/team/web:latest",
        f"oras pull --plain-http condaops.example:8080/team/web@sha256:{'2' * 64}",
        f"oras pull --plain-http condaops.example:8080/team/web@sha256:{'3' * 64}",
        "conda activate /srv/store/team/envs/Web",
        "conda-lock install --name Web conda-lock.yml",
    ]
    older = image_status(image_record(), current=False)
    assert older is not None and older.reference == ":build-7"
    https = copy_commands("h", ref, prefix=None, has_lock=False, image=older)
    assert https[0].text == "docker pull h/team/web:build-7" and https[1].text.startswith("oras pull h/team/web@")


def test_the_sbom_attached_to_the_image_has_its_oras_command() -> None:
    builtin = {
        "repository": "team/web",
        "builtin": True,
        "by_type": {LOCKS: "sha256:" + "2" * 64, SBOM: "sha256:" + "4" * 64},
    }
    image = image_status(image_record(targets={"builtin": builtin}), current=True)
    commands = {
        c.label: c.text for c in copy_commands("h", EnvRef("team", "web"), prefix=None, has_lock=False, image=image)
    }
    assert commands["CycloneDX SBOM (oras)"] == f"oras pull h/team/web@sha256:{'4' * 64}"
    assert "conda-pack tarball (oras)" not in commands  # only what was attached


def test_no_pull_commands_without_a_published_runnable_image() -> None:
    ref = EnvRef("team", "web")
    assert copy_commands("h", ref, prefix=None, has_lock=False) == []  # not published (yet)
    assert image_status(None, current=True) is None
    elsewhere = image_record(targets={"mirror": {"repository": "m/team/web", "builtin": False}})
    assert image_status(elsewhere, current=True) is None  # pushed to another registry only
    broken = image_status(image_record(runnable=False, not_runnable="the base has glibc 2.28"), current=True)
    assert broken is not None and broken.not_runnable == "the base has glibc 2.28"
    texts = [c.text for c in copy_commands("h", ref, prefix=None, has_lock=False, image=broken)]
    assert not any(t.startswith("docker") for t in texts) and len(texts) == 2  # the artifacts are still there


@pytest.mark.parametrize("name", ["team", "a.b-c_d", "A1"])
def test_valid_names(name: str) -> None:
    assert valid_name(name)


@pytest.mark.parametrize("name", ["", "..", ".hidden", "a/b", "a b", "<script>", "x" * 200])
def test_invalid_names(name: str) -> None:
    assert not valid_name(name)


def build(build_id: int, state: str, spec: str = "s1") -> BuildInfo:
    return BuildInfo(
        build_id,
        EnvRef("ns", "x"),
        spec,
        state,
        1,
        None,
        None,
        False,
        None,
        None,
        None,
        None,
        T0,
        T0,
        T0 + timedelta(seconds=3),
        None,
    )


def row(ns: str, name: str, state: str) -> EnvRow:
    info = EnvInfo(EnvRef(ns, name), "src", None, None, "s1", None, None, False, None, None, (), None, None)
    return EnvRow(info, state, None, None, sync_health(info, state, None))


def test_counts_and_namespaces() -> None:
    rows = [row("a", "x", "ready"), row("a", "y", "failed"), row("b", "z", "ready")]

    assert count_states(rows) == {"pending": 0, "building": 0, "ready": 2, "failed": 1, "removed": 0}
    spaces = namespace_rows(rows)
    assert [(n.name, n.total, n.states["ready"]) for n in spaces] == [("a", 2, 1), ("b", 1, 1)]
    assert [r.ref.name for r in filter_rows(rows, namespace="a", state="ready")] == ["x"]
    assert [r.ref.name for r in filter_rows(rows, text="A/Y")] == ["y"]


@pytest.mark.parametrize(
    ("kind", "name", "media_type"),
    [
        ("conda-lock", "conda-lock.yml", "application/yaml"),
        ("explicit-osx-arm64", "conda-osx-arm64.lock", "text/plain"),
        ("log", "build.log", "text/plain"),
        ("pack", "env.tar.zst", "application/zstd"),
        ("pack-gz", "env.tar.gz", "application/gzip"),
        ("image", "index.json", "application/json"),
        ("other", "blob.bin", "application/octet-stream"),
        ("other", "evil.html", "application/octet-stream"),
    ],
)
def test_artifact_content_types(kind: str, name: str, media_type: str) -> None:
    assert content_type(kind, name) == media_type
