"""Dynamic images for tests: a channel to build from and the registry serving them.

``dynamic_registry`` and ``builds`` (fixtures in tests/integration/conftest.py) are made
from these. The channel has ``tool`` 1.0 on ``libtool-data``, ``app`` 1.0 needing
``lib <2`` next to ``lib`` 1.0/2.0 (a conflict to ask for), and, when the host has
busybox-static, ``busybox`` whose ``bin/busybox`` is that static binary (a program that
runs in an image with nothing else in it).
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import Message
from pathlib import Path

from condaops.config.settings import (
    AuthSettings,
    ChannelSettings,
    DynamicSettings,
    RegistrySettings,
    Settings,
    WebSettings,
)
from condaops.reconciler.dynamic_builder import DynamicImageBuilder
from condaops.registry.api import Registry
from condaops.registry.app import create_registry_app
from condaops.registry.backends import open_storage
from tests.support.channels import PackageSpec, ServedURL
from tests.support.registry_clients import OCI_MANIFEST, TOKEN, serve_asgi

ALIAS = "https://conda.anaconda.org/"

DYNAMIC_LOG = "condaops.registry.dynamic"
ENABLED = DynamicSettings(enabled=True)


def channel_packages(tool: list[PackageSpec]) -> list[PackageSpec]:
    packages = [
        *tool,
        PackageSpec("app", "1.0", depends=("lib <2",)),
        PackageSpec("lib", "1.0"),
        PackageSpec("lib", "2.0"),
    ]
    busybox = shutil.which("busybox")
    if busybox:
        packages.append(PackageSpec("busybox", "1.36", files={"bin/busybox": Path(busybox).read_bytes()}, fmt="conda"))
    return packages


@dataclass(frozen=True)
class Served:
    host: str
    store: Path
    channel: ServedURL
    settings: Settings

    def get(
        self, path: str, method: str = "GET", accept: str = OCI_MANIFEST, **headers: str
    ) -> tuple[int, Message, bytes]:
        """``(status, headers, body)`` of ``METHOD /v2/<path>``, errors included."""
        request = urllib.request.Request(
            f"http://{self.host}/v2/{path}", method=method, headers={"Accept": accept, **headers}
        )
        try:
            with urllib.request.urlopen(request, timeout=120) as answer:
                return answer.status, answer.headers, answer.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers, exc.read()

    def error(self, path: str, method: str = "GET") -> tuple[int, dict]:
        status, _, body = self.get(path, method)
        errors = json.loads(body)["errors"]
        assert len(errors) == 1
        return status, errors[0]


@contextlib.contextmanager
def dynamic_servers(store: Path, channel: ServedURL) -> Iterator[Callable[..., Served]]:
    """``serve(dynamic=..., allowed=..., auth=...)``: the registry app over ``store``, with the
    builder `condaops serve` hands it."""
    with contextlib.ExitStack() as stack:

        def serve(
            dynamic: DynamicSettings = ENABLED, allowed: tuple[str, ...] = (), auth: AuthSettings | None = None
        ) -> Served:
            channels = ChannelSettings(
                default=("testchan",), allowed=allowed, alias=ALIAS, mirrors={ALIAS + "testchan": (str(channel),)}
            )
            settings = Settings(
                store=store,
                channels=channels,
                dynamic=dynamic,
                registry=RegistrySettings(push_tokens=(TOKEN,)),
                web=WebSettings(auth=auth or AuthSettings()),
            )
            storage = open_storage(settings)
            builder = DynamicImageBuilder(settings, Registry(storage))  # what `condaops serve` hands the registry
            app = create_registry_app(settings, storage, dynamic_builder=builder)
            return Served(stack.enter_context(serve_asgi(app)), store, channel, settings)

        yield serve


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def build_log() -> Iterator[Callable[[], list[str]]]:
    """``builds()``: the dynamic builds started so far (their ``dynamic_build_started`` log
    lines). A handler on the service's logger, since the Litestar app replaces the root
    logger's handlers (and with them caplog's)."""
    logger, handler = logging.getLogger(DYNAMIC_LOG), _Collect()
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield lambda: [m for m in handler.messages if m.startswith("dynamic_build_started")]
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
