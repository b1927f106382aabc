"""Policy findings as data: what a check found, recorded with builds and shown everywhere.

Pure: standard library only (the web and the recorder read findings without importing
the checker or rattler).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass

ERROR = "error"
INVALID = "invalid"  # the rule name of an invalid policy file


@dataclass(frozen=True, slots=True)
class Violation:
    """One finding: which rule (from which file) a package of a platform breaks."""

    rule: str
    level: str
    origin: str
    message: str
    platform: str | None = None
    package: str | None = None

    @property
    def blocking(self) -> bool:
        return self.level == ERROR

    def line(self) -> str:
        """One line naming the file, the rule, the package and the platform."""
        where = f" ({self.platform})" if self.platform else ""
        return f"{self.origin}: {self.rule}: {self.message}{where}"


def report_json(findings: Sequence[Violation]) -> str:
    """The findings as a JSON list, as builds record them."""
    return json.dumps([asdict(v) for v in findings], sort_keys=True)


def report_from_json(text: str | None) -> list[Violation]:
    """The inverse of ``report_json``; an empty list for None or unreadable text."""
    try:
        return [Violation(**item) for item in json.loads(text or "[]")]
    except (ValueError, TypeError):
        return []


def summary(findings: Sequence[Violation]) -> str:
    """One line for a failed build: the first blocking finding and how many more."""
    blocking = [v for v in findings if v.blocking]
    if not blocking:
        return ""
    more = f" (and {len(blocking) - 1} more violation(s); see the build log)" if len(blocking) > 1 else ""
    return blocking[0].line() + more
