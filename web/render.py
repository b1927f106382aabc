"""Server-side HTML: one Jinja environment, autoescaping everything.

Whatever comes from a spec, a log, a path or a commit message reaches the page as text:
autoescape is on for every template and no template marks such data ``|safe``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from litestar import MediaType, Response
from markupsafe import Markup

from condaops.reconciler.names import shown
from condaops.reconciler.sources.revisions import short_revision
from condaops.web.views import channel_label, human_duration, human_size

TEMPLATES = Path(__file__).with_name("templates")
STATIC = Path(__file__).with_name("static")


def when(moment: datetime | None) -> str:
    """UTC, to the second: the same on every screen (no browser time zones without JS)."""
    if moment is None:
        return "-"
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def ago(moment: datetime | None) -> Markup:
    """A ``<time>`` element: the exact UTC time as text and on hover; the page script turns
    the text into "3 min ago" (without JavaScript the exact time stays)."""
    if moment is None:
        return Markup("-")
    exact = when(moment)
    iso = moment.astimezone(timezone.utc).isoformat(timespec="seconds")
    return Markup('<time datetime="{}" title="{}" data-ago>{}</time>').format(iso, exact, exact)


def iso(moment: datetime | None) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds") if moment else ""


def make_environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,  # every template, whatever its extension
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    env.filters.update(
        size=human_size,
        duration=human_duration,
        when=when,
        ago=ago,
        iso=iso,
        rev=short_revision,
        channel=channel_label,
        shown=shown,
    )
    return env


class Renderer:
    """Renders templates into HTML responses; ``common`` is merged into every context."""

    def __init__(self, globals: dict[str, Any] | None = None, **common: Any) -> None:
        self.env = make_environment()
        self.env.globals.update(globals or {})  # seen by macros too (imported without context)
        self.common = common

    def compile_all(self) -> None:
        """Load (parse and compile) every template now; later requests find them ready."""
        for name in self.env.list_templates(extensions=["html"]):
            self.env.get_template(name)

    def text(self, template: str, **context: Any) -> str:
        return self.env.get_template(template).render(**self.common, **context)

    def macro(self, template: str, name: str) -> Callable[..., str]:
        """A macro of ``template``, to call from Python (it returns escaped ``Markup``)."""
        return getattr(self.env.get_template(template).module, name)

    def html(
        self, template: str, *, status: int = 200, headers: dict[str, str] | None = None, **context: Any
    ) -> Response[str]:
        return html_response(self.text(template, **context), status=status, headers=headers)


def html_response(text: str, *, status: int = 200, headers: dict[str, str] | None = None) -> Response[str]:
    return Response(text, media_type=MediaType.HTML, status_code=status, headers=headers)
