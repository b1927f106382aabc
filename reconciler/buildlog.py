"""The build log: one file per build, written by the build and appended to by publishing.

``<store>/artifacts/<ns>/<name>/<build-id>/build.log`` (``StoreLayout.build_log``) holds
the full text of everything a build and its publishing did, recorded as the build's
artifact of kind ``log`` and followed live by the site. Recorded messages stay one line
(``one_line``) and point here for the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOG_KIND, LOG_FILE = "log", "build.log"
MESSAGE_LIMIT = 2000  # characters of a recorded one-line message
_FORMAT = "%(asctime)s %(levelname)s %(message)s"


@contextmanager
def logging_to(path: Path, logger: logging.Logger) -> Iterator[logging.Logger]:
    """Append ``logger``'s records (INFO and up) to the build log at ``path`` while inside."""
    handler = logging.FileHandler(path, mode="a", encoding="utf-8")
    handler.setFormatter(logging.Formatter(_FORMAT))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield logger
    finally:
        logger.removeHandler(handler)
        handler.close()


def one_line(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """``text`` on one line, cut at ``limit`` characters with a pointer to the build log."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 40] + f" ... (see {LOG_FILE})"
