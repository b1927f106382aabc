"""Registry garbage collection: dynamic images beyond ``dynamic.keep`` and abandoned
uploads go (``condaops gc`` and the server's ``registry.gc_interval``); what other images
use stays, and what remains still pulls with a real client."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from condaops.config.settings import DynamicSettings
from condaops.reconciler.runtime import Runtime
from condaops.registry.backends import open_storage
from condaops.registry.collect import collect_registry, referenced_blobs
from condaops.registry.dynamic_index import DynamicIndex
from condaops.registry.layout import UPLOADS, upload_key
from condaops.registry.store import RegistryStore
from tests.support.dynamic import Served
from tests.support.registry_clients import free_port, skopeo

pytestmark = pytest.mark.integration


def blob_count(served: Served) -> int:
    root = served.store / "registry" / "blobs"
    return sum(1 for p in root.rglob("*") if p.is_file())


def test_gc_keeps_the_most_recently_pulled_dynamic_images(
    dynamic_registry: Callable[..., Served], builds: Callable[[], list[str]]
) -> None:
    served = dynamic_registry(DynamicSettings(enabled=True, keep=1))
    for path in ("dynamic/lib.eq.1.0", "dynamic/lib.lt.2", "dynamic/lib.eq.2.0", "dynamic/tool"):
        assert served.get(f"{path}/manifests/latest")[0] == 200
        time.sleep(0.01)  # distinct "last used" times
    assert len(builds()) == 3  # lib 1.0 (twice asked), lib 2.0, tool
    before = blob_count(served)
    storage = open_storage(served.settings)

    dry = collect_registry(served.settings, storage, dry_run=True)
    assert len(dry.images) == 2 and blob_count(served) == before  # nothing removed yet
    done = collect_registry(served.settings, storage)

    assert len(done.images) == 2
    assert done.repositories == ["dynamic/lib.eq.1.0", "dynamic/lib.eq.2.0", "dynamic/lib.lt.2"]
    assert done.blobs > 0 and blob_count(served) == before - done.blobs
    assert [sorted(i.aliases) for i in DynamicIndex(storage).all()] == [["dynamic/tool"]]
    store = RegistryStore(storage)
    assert store.repositories() == ["dynamic/tool"]
    kept = referenced_blobs(store)
    assert all(store.blob_size(d) is not None for d in kept)  # nothing the kept image uses went
    inspected = skopeo("inspect", "--tls-verify=false", f"docker://{served.host}/dynamic/tool:latest")
    assert json.loads(inspected.stdout)["Digest"]
    assert served.get("dynamic/lib.eq.1.0/tags/list")[0] == 404  # gone: asking again builds it again
    assert served.get("dynamic/lib.eq.1.0/manifests/latest")[0] == 200 and len(builds()) == 4


def test_abandoned_uploads_are_purged_by_gc_and_on_schedule(tmp_path: Path, project, tool_channel) -> None:  # type: ignore[no-untyped-def]
    from tests.integration.conftest import ALIAS

    port = free_port()
    p = project({ALIAS + "testchan": tool_channel}, web={"listen": f"127.0.0.1:{port}"})
    code, out, _ = p.cli("gc")
    assert code == 0 and "0 abandoned upload(s)" in out
    settings = _settings(p)
    storage = open_storage(settings)
    fresh = RegistryStore(storage).uploads.start("ns/env")
    old = RegistryStore(storage, clock=lambda: time.time() - 2 * 86400).uploads.start("ns/env")
    code, out, _ = p.cli("gc", "--dry-run")
    assert "would remove 1 abandoned upload(s)" in out and len(storage.list(UPLOADS)) == 2
    code, out, _ = p.cli("gc")
    assert "removed 1 abandoned upload(s)" in out and storage.list(UPLOADS) == [fresh]

    # The server does the same every registry.gc_interval (shortened here; the key's floor is 1m).
    again = RegistryStore(storage, clock=lambda: time.time() - 2 * 86400).uploads.start("ns/env")
    quick = dataclasses.replace(settings, registry=dataclasses.replace(settings.registry, gc_interval=0.3))
    assert storage.size(f"{upload_key(again)}/state.json") is not None and old not in storage.list(UPLOADS)
    runtime = Runtime(quick)

    async def serve_briefly() -> None:
        stop = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: runtime.serve(web=True, stop=stop))
            with anyio.fail_after(20):
                while again in storage.list(UPLOADS):
                    await anyio.sleep(0.1)
            stop.set()

    anyio.run(serve_briefly)
    assert storage.list(UPLOADS) == [fresh]


def _settings(project):  # type: ignore[no-untyped-def]
    from condaops.config import load_settings

    return load_settings(project.config_file, environ={})
