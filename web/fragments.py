"""Pieces of pages made only of data that no longer changes: rendered once, then reused.

* a finished build's row in a build table: its state, reason, revision and times are final
  (only ``collected_at`` changes later, and no table shows it); queued and running builds
  are rendered on every request; a build's ``<option>`` in a choice of builds (keyed by
  its state too);
* the locked-packages tables of a build: keyed by build id, a build's lock never changes;
* a downloads table: keyed by the files themselves, because publishing adds files to a
  build after it finished.

Fragments come from the same Jinja macros with autoescaping as every page, so whatever a
spec, path or message holds still reaches the page as text.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import TypeVar

from markupsafe import Markup

from condaops.reconciler.model import CANCELED, COMPLETED, FAILED
from condaops.reconciler.sources.revisions import Revision
from condaops.reconciler.state.packages import LockedPackage
from condaops.reconciler.state.queries import ArtifactInfo, BuildInfo
from condaops.web.cache import LRU
from condaops.web.render import Renderer
from condaops.web.views import build_duration

T = TypeVar("T")
FINAL_STATES = frozenset({COMPLETED, FAILED, CANCELED})
MACROS = "_macros.html"


class Fragments:
    """Rendered fragments in bounded LRUs: rows and downloads tables are about 0.5 and
    1.5 KB, package tables about 0.5 KB per package."""

    def __init__(
        self,
        renderer: Renderer,
        *,
        describe: Callable[[str | None, str | None], Revision | None] = lambda source, revision: None,
        rows: int = 16_384,
        downloads: int = 4096,
        packages: int = 1024,
    ) -> None:
        self._renderer = renderer
        self._describe = describe
        self._rows: LRU[Hashable, Markup] = LRU(rows)
        self._options: LRU[Hashable, tuple[Markup, Markup]] = LRU(rows)
        self._downloads: LRU[Hashable, Markup] = LRU(downloads)
        self._packages: LRU[Hashable, Markup] = LRU(packages)

    def build_rows(self, builds: Iterable[BuildInfo], *, show_env: bool = False) -> list[Markup]:
        """One ``<tr>`` per build, for the ``build_table`` macro."""
        row = self._renderer.macro(MACROS, "build_row")

        def render(b: BuildInfo, rev: Revision | None) -> Markup:
            return Markup(row(b, build_duration(b), show_env, rev))

        out: list[Markup] = []
        for b in builds:
            rev = self._describe(b.source, b.source_revision)  # in the key: commit details may come later
            if b.state in FINAL_STATES:
                out.append(_kept(self._rows, (b.build_id, show_env, rev), functools.partial(render, b, rev)))
            else:
                out.append(render(b, rev))
        return out

    def build_options(self, builds: Iterable[BuildInfo], *, selected: int) -> Markup:
        """``<option>`` elements for choosing a build, the one at index ``selected`` chosen."""
        option = self._renderer.macro(MACROS, "build_option")

        def both(b: BuildInfo) -> tuple[Markup, Markup]:
            return Markup(option(b, False)), Markup(option(b, True))

        pairs = [_kept(self._options, (b.build_id, b.state), functools.partial(both, b)) for b in builds]
        return Markup("".join(pair[i == selected] for i, pair in enumerate(pairs)))  # all Markup already

    def downloads(self, artifacts: Sequence[ArtifactInfo]) -> Markup:
        """The table of a build's files with their download links."""
        table = self._renderer.macro(MACROS, "downloads")
        return _kept(self._downloads, tuple(artifacts), lambda: Markup(table(artifacts)))

    def packages(self, build_id: int, packages: Sequence[LockedPackage]) -> Markup:
        """The locked packages of a build, one table per platform."""

        def render() -> Markup:
            grouped: dict[str, list[LockedPackage]] = {}
            for p in packages:
                grouped.setdefault(p.platform, []).append(p)
            return Markup(self._renderer.text("packages.html", locked=grouped))

        return _kept(self._packages, build_id, render)


def _kept(cache: LRU[Hashable, T], key: Hashable, produce: Callable[[], T]) -> T:
    html = cache.get(key)
    if html is None:
        html = produce()
        cache.put(key, html)
    return html
