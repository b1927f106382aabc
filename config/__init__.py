"""condaops configuration: one frozen ``Settings`` tree, loaded with ``load_settings``.

Nothing is read at import time; the entry point calls ``load_settings()`` once and passes
the result (or the parts a component needs) down.
"""

from condaops.config.load import load_settings
from condaops.config.settings import (
    BuildSettings,
    ChannelSettings,
    PipSettings,
    Settings,
    SourceSettings,
    WebSettings,
)
from condaops.reconciler.errors import ConfigError

__all__ = [
    "BuildSettings",
    "ChannelSettings",
    "ConfigError",
    "PipSettings",
    "Settings",
    "SourceSettings",
    "WebSettings",
    "load_settings",
]
