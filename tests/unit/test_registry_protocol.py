"""Pure protocol decisions of the registry: digests, names, ranges, negotiation, paging."""

from __future__ import annotations

import pytest

from condaops.registry.errors import RegistryError
from condaops.registry.protocol import (
    ByteRange,
    Digest,
    accepts,
    check_name,
    check_tag,
    page_tags,
    parse_content_range,
    parse_digest,
    parse_page_size,
    parse_range,
    tags_link,
    upload_range,
)

HEX = "a" * 64
OCI = "application/vnd.oci.image.manifest.v1+json"
DOCKER = "application/vnd.docker.distribution.manifest.v2+json"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"sha256:{HEX}", Digest("sha256", HEX)),
        (f"sha512:{'b' * 128}", Digest("sha512", "b" * 128)),
    ],
    ids=["sha256", "sha512"],
)
def test_parse_digest_accepts(text: str, expected: Digest) -> None:
    assert parse_digest(text) == expected
    assert str(parse_digest(text)) == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sha256:" + "a" * 63, "64 lowercase hex"),
        ("sha256:" + "A" * 64, "64 lowercase hex"),
        ("md5:" + "a" * 32, "not supported"),
        ("sha256", "is not a digest"),
        ("sha256:../../etc", "is not a digest"),
        ("", "is not a digest"),
    ],
    ids=["short", "uppercase", "md5", "no-colon", "traversal", "empty"],
)
def test_parse_digest_refuses(text: str, message: str) -> None:
    with pytest.raises(RegistryError) as caught:
        parse_digest(text)
    assert caught.value.code.name == "DIGEST_INVALID"
    assert caught.value.status == 400
    assert message in caught.value.message


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("ns/env", True),
        ("a", True),
        ("ns/env-1.2_x", True),
        ("a/b/c/d", True),
        ("a__b/c--d", True),
        ("NS/env", False),
        ("ns//env", False),
        ("ns/env/", False),
        ("/ns", False),
        ("ns/../env", False),
        ("ns/_uploads", False),
        ("ns/.hidden", False),
        ("a" * 256, False),
    ],
    ids=lambda v: str(v)[:20],
)
def test_check_name(name: str, valid: bool) -> None:
    if valid:
        assert check_name(name) == name
    else:
        with pytest.raises(RegistryError) as caught:
            check_name(name)
        assert caught.value.code.name == "NAME_INVALID"


@pytest.mark.parametrize(
    ("tag", "valid"),
    [
        ("v1", True),
        ("latest", True),
        ("_x.1-2", True),
        ("A" * 128, True),
        ("A" * 129, False),
        (".hidden", False),
        ("-x", False),
        ("a/b", False),
        ("a:b", False),
    ],
)
def test_check_tag(tag: str, valid: bool) -> None:
    if valid:
        assert check_tag(tag) == tag
    else:
        with pytest.raises(RegistryError, match="is not a tag"):
            check_tag(tag)


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        (None, 100, None),
        ("bytes=0-9", 100, ByteRange(0, 9, 100)),
        ("bytes=10-", 100, ByteRange(10, 99, 100)),
        ("bytes=90-500", 100, ByteRange(90, 99, 100)),
        ("bytes=-10", 100, ByteRange(90, 99, 100)),
        ("bytes=-500", 100, ByteRange(0, 99, 100)),
        ("bytes = 5 - 6", 100, ByteRange(5, 6, 100)),
        ("bytes=0-1,5-6", 100, None),  # several ranges: send everything
        ("items=0-1", 100, None),
        ("bytes=9-3", 100, None),  # invalid: ignored
        ("bytes=-", 100, None),
    ],
    ids=["none", "first-10", "open", "clamped", "suffix", "suffix-all", "spaces", "multi", "unit", "reversed", "empty"],
)
def test_parse_range(header: str | None, size: int, expected: ByteRange | None) -> None:
    assert parse_range(header, size) == expected


@pytest.mark.parametrize(
    ("header", "size"), [("bytes=100-", 100), ("bytes=500-600", 100), ("bytes=-0", 100), ("bytes=0-", 0)]
)
def test_parse_range_unsatisfiable(header: str, size: int) -> None:
    with pytest.raises(RegistryError) as caught:
        parse_range(header, size)
    assert caught.value.status == 416
    assert caught.value.headers == {"Content-Range": f"bytes */{size}"}


def test_byte_range_headers() -> None:
    wanted = ByteRange(10, 19, 100)
    assert wanted.length == 10
    assert wanted.content_range() == "bytes 10-19/100"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("0-99", (0, 99)),
        ("100-199", (100, 199)),
        ("bytes 5-9/10", (5, 9)),
        ("bytes=5-9", (5, 9)),
        (" 1-1 ", (1, 1)),
        ("10-20/*", (10, 20)),
    ],
)
def test_parse_content_range(header: str, expected: tuple[int, int]) -> None:
    assert parse_content_range(header) == expected


@pytest.mark.parametrize("header", ["", "5", "9-5", "a-b", "-5"])
def test_parse_content_range_refuses(header: str) -> None:
    with pytest.raises(RegistryError) as caught:
        parse_content_range(header)
    assert caught.value.code.name == "BLOB_UPLOAD_INVALID"


@pytest.mark.parametrize(("size", "expected"), [(0, "0-0"), (1, "0-0"), (100, "0-99")])
def test_upload_range(size: int, expected: str) -> None:
    assert upload_range(size) == expected


@pytest.mark.parametrize(
    ("accept", "media_type", "expected"),
    [
        ([], OCI, True),
        ([OCI], OCI, True),
        ([f"{DOCKER}, {OCI}"], OCI, True),
        ([DOCKER, OCI], OCI, True),
        ([DOCKER], OCI, False),
        (["*/*"], OCI, True),
        (["application/*"], OCI, True),
        ([f"{OCI};q=0", "application/*;q=0"], OCI, False),
        ([f"{OCI}; q=0.5"], OCI, True),
        ([f"{OCI.upper()}"], OCI, True),
        (["text/html"], OCI, False),
    ],
    ids=[
        "none",
        "exact",
        "comma-list",
        "repeated-header",
        "other-type",
        "any",
        "major-wildcard",
        "q0",
        "q-half",
        "case",
        "html",
    ],
)
def test_accepts(accept: list[str], media_type: str, expected: bool) -> None:
    assert accepts(accept, media_type) is expected


TAGS = ["v2", "latest", "v1", "a", "v10"]


@pytest.mark.parametrize(
    ("n", "last", "tags", "next_last"),
    [
        (None, None, ["a", "latest", "v1", "v10", "v2"], None),
        (2, None, ["a", "latest"], "latest"),
        (2, "latest", ["v1", "v10"], "v10"),
        (2, "v10", ["v2"], None),
        (5, None, ["a", "latest", "v1", "v10", "v2"], None),
        (0, None, [], None),
        (None, "v2", [], None),
        (None, "b", ["latest", "v1", "v10", "v2"], None),
    ],
    ids=["all", "first-page", "second-page", "last-page", "exact-fit", "zero", "after-end", "last-not-a-tag"],
)
def test_page_tags(n: int | None, last: str | None, tags: list[str], next_last: str | None) -> None:
    page = page_tags(TAGS, n, last)
    assert (page.tags, page.next_last) == (tags, next_last)


@pytest.mark.parametrize(("text", "expected"), [(None, None), ("", None), ("0", 0), ("25", 25)])
def test_parse_page_size(text: str | None, expected: int | None) -> None:
    assert parse_page_size(text) == expected


@pytest.mark.parametrize("text", ["-1", "x", "1.5", "9" * 10])
def test_parse_page_size_refuses(text: str) -> None:
    with pytest.raises(RegistryError) as caught:
        parse_page_size(text)
    assert caught.value.code.name == "PAGINATION_NUMBER_INVALID"


def test_tags_link() -> None:
    assert tags_link("ns/env", 2, "v1.0+x") == '</v2/ns/env/tags/list?n=2&last=v1.0%2Bx>; rel="next"'
