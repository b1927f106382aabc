"""An HTTP server on 127.0.0.1 for the length of a ``with`` block: what every test server
(channels, PyPI index, Git smart HTTP, forges, hung channels) runs on."""

from __future__ import annotations

import contextlib
import http.server
import threading
from collections.abc import Callable, Iterator
from typing import Any


@contextlib.contextmanager
def serve_http(handler: Callable[..., Any], *, name: str = "http") -> Iterator[str]:
    """Serve with ``handler`` on a free port of 127.0.0.1, each request in its own daemon
    thread; yields the base URL (no trailing slash). Stopped when the block exits, failure
    included; a short poll interval keeps that quick."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name=name, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
