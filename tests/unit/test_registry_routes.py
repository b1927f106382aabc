"""Parsing ``/v2/<rest>`` into registry operations (names with slashes come first)."""

from __future__ import annotations

import pytest

from condaops.registry.errors import RegistryError
from condaops.registry.routes import Route, parse_route

DIGEST = "sha256:" + "0" * 64
UPLOAD = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    ("method", "rest", "expected"),
    [
        ("GET", "", Route("base")),
        ("HEAD", "/", Route("base")),
        ("GET", "ns/env/tags/list", Route("list_tags", "ns/env")),
        ("GET", "ns/env/manifests/v1/", Route("get_manifest", "ns/env", "v1")),
        ("GET", "_catalog", Route("catalog")),
        ("HEAD", "ns/env/manifests/v1", Route("get_manifest", "ns/env", "v1")),
        ("PUT", "ns/env/manifests/v1", Route("put_manifest", "ns/env", "v1")),
        ("GET", f"ns/env/manifests/{DIGEST}", Route("get_manifest", "ns/env", DIGEST)),
        ("GET", f"ns/env/blobs/{DIGEST}", Route("get_blob", "ns/env", DIGEST)),
        ("HEAD", f"a/b/c/blobs/{DIGEST}", Route("get_blob", "a/b/c", DIGEST)),
        ("POST", "ns/env/blobs/uploads/", Route("start_upload", "ns/env")),
        ("POST", "ns/env/blobs/uploads", Route("start_upload", "ns/env")),
        ("PATCH", f"ns/env/blobs/uploads/{UPLOAD}", Route("patch_upload", "ns/env", UPLOAD)),
        ("PUT", f"ns/env/blobs/uploads/{UPLOAD}", Route("finish_upload", "ns/env", UPLOAD)),
        ("GET", f"ns/env/blobs/uploads/{UPLOAD}", Route("upload_status", "ns/env", UPLOAD)),
        ("DELETE", f"ns/env/blobs/uploads/{UPLOAD}", Route("cancel_upload", "ns/env", UPLOAD)),
        ("GET", f"ns/env/referrers/{DIGEST}", Route("referrers", "ns/env", DIGEST)),
        ("DELETE", "ns/env/manifests/v1", Route("delete_manifest", "ns/env", "v1")),
        # keywords inside a repository name: the last keyword decides
        ("GET", "ns/blobs/manifests/v1", Route("get_manifest", "ns/blobs", "v1")),
        ("GET", "tags/list/tags/list", Route("list_tags", "tags/list")),
        ("GET", f"ns/manifests/blobs/{DIGEST}", Route("get_blob", "ns/manifests", DIGEST)),
        ("get", "ns/env/tags/list", Route("list_tags", "ns/env")),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 30 else None,
)
def test_parse_route(method: str, rest: str, expected: Route) -> None:
    assert parse_route(method, rest) == expected


@pytest.mark.parametrize(
    ("method", "rest", "code", "status"),
    [
        ("GET", "ns/env", "NOT_FOUND", 404),
        ("GET", "ns/env/other/x", "NOT_FOUND", 404),
        ("GET", "tags/list", "NOT_FOUND", 404),
        ("POST", "ns/env/manifests/v1", "UNSUPPORTED", 405),
        ("POST", "", "UNSUPPORTED", 405),
        ("PATCH", "ns/env/tags/list", "UNSUPPORTED", 405),
        ("GET", "NS/env/tags/list", "NAME_INVALID", 400),
        ("GET", "ns/../env/tags/list", "NAME_INVALID", 400),
        ("GET", "ns/env/manifests/.bad", "TAG_INVALID", 400),
        ("GET", "ns/env/manifests/sha256:xyz", "DIGEST_INVALID", 400),
        ("GET", "ns/env/blobs/latest", "DIGEST_INVALID", 400),
        ("GET", "ns/env/referrers/latest", "DIGEST_INVALID", 400),
        ("PATCH", "ns/env/blobs/uploads/..", "BLOB_UPLOAD_UNKNOWN", 404),
        ("PATCH", "ns/env/blobs/uploads/not-an-id", "BLOB_UPLOAD_UNKNOWN", 404),
        # names outside the distribution grammar are refused, never rewritten
        ("GET", "a//b/tags/list", "NAME_INVALID", 400),
        ("GET", "a/b//tags/list", "NAME_INVALID", 400),
        ("GET", "/abs/x/tags/list", "NAME_INVALID", 400),
        ("GET", "//abs/x/tags/list", "NAME_INVALID", 400),
        ("GET", "a/b%2fc/tags/list", "NAME_INVALID", 400),
        ("GET", "a/./b/tags/list", "NAME_INVALID", 400),
        ("PUT", "_catalog", "UNSUPPORTED", 405),
    ],
)
def test_parse_route_refuses(method: str, rest: str, code: str, status: int) -> None:
    with pytest.raises(RegistryError) as caught:
        parse_route(method, rest)
    assert (caught.value.code.name, caught.value.status) == (code, status)


def test_unsupported_method_lists_the_allowed_ones() -> None:
    with pytest.raises(RegistryError) as caught:
        parse_route("POST", "ns/env/manifests/v1")
    assert caught.value.headers == {"Allow": "DELETE, GET, HEAD, PUT"}


@pytest.mark.parametrize(
    ("method", "rest", "push"),
    [
        ("GET", "", False),
        ("GET", "_catalog", False),
        ("GET", "a/tags/list", False),
        ("HEAD", f"a/blobs/{DIGEST}", False),
        ("GET", f"a/referrers/{DIGEST}", False),
        ("PUT", "a/manifests/v1", True),
        ("POST", "a/blobs/uploads/", True),
        ("GET", f"a/blobs/uploads/{UPLOAD}", True),
        ("DELETE", "a/manifests/v1", True),
    ],
)
def test_push_operations_are_marked(method: str, rest: str, push: bool) -> None:
    assert parse_route(method, rest).is_push is push
