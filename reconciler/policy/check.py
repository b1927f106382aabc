"""The policy check: solved records against rules, for every platform.

Pure: no IO. ``check_policy(records_by_platform, rules)`` returns the findings —
``Violation``s at level ``error`` (the build fails, the CI check exits 1) or ``warning``
(shown, never blocking) — in a stable order. It is what builds (after solving), change
request reviews and the CI check all call.

Records are rattler ``RepoDataRecord``s (or anything with their ``name``, ``version``,
``build``, ``channel``, ``license`` and ``size`` attributes); match specs are matched with
rattler's ``MatchSpec``, as the solver reads them.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from rattler import MatchSpec

from condaops.reconciler.policy.licenses import judge_license
from condaops.reconciler.policy.rules import ERROR, LicenseRule, PackageRule, Rules

# Rule names, as findings, logs and /metrics show them.
CHANNELS, DENY, REQUIRE, MAX_SIZE, INVALID = "channels", "deny", "require", "max-size", "invalid"


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


def check_policy(records_by_platform: Mapping[str, Sequence[Any]], rules: Rules) -> list[Violation]:
    """Every finding of ``rules`` on the solved records of each platform. An invalid policy
    file is itself a blocking finding (rule ``invalid``), so nothing passes unchecked."""
    found = [Violation(INVALID, ERROR, message.split(":", 1)[0], message) for message in rules.invalid]
    for platform, records in sorted(records_by_platform.items()):
        found += _check_platform(platform, records, rules)
    return found


def _check_platform(platform: str, records: Sequence[Any], rules: Rules) -> list[Violation]:
    found: list[Violation] = []
    for rule in rules.channels:
        allowed = {u.rstrip("/") for u in rule.allowed}
        for r in records:
            channel = _channel(r)
            if channel not in allowed:
                message = (
                    f"{_label(r)} comes from channel {channel or '(none)'}, not one of {', '.join(sorted(allowed))}"
                )
                found.append(Violation(CHANNELS, rule.level, rule.origin, message, platform, _label(r)))
    for rule in rules.packages:
        found += _package_rule(platform, records, rule)
    for licence_rule in rules.licenses:
        found += _license_rule(platform, records, licence_rule)
    for size_rule in rules.sizes:
        total = sum(getattr(r, "size", None) or 0 for r in records)
        if total > size_rule.max_bytes:
            message = f"packages total {_human(total)}, over the limit of {_human(size_rule.max_bytes)}"
            found.append(Violation(MAX_SIZE, size_rule.level, size_rule.origin, message, platform))
    return found


def _package_rule(platform: str, records: Sequence[Any], rule: PackageRule) -> list[Violation]:
    spec = _match_spec(rule.spec)
    because = f" ({rule.reason})" if rule.reason else ""
    if rule.kind == "deny":
        return [
            Violation(
                DENY, rule.level, rule.origin, f"{_label(r)} matches denied '{rule.spec}'{because}", platform, _label(r)
            )
            for r in records
            if spec.matches(r)
        ]
    if any(spec.matches(r) for r in records):
        return []
    name = _spec_name(spec)
    present = [r for r in records if _name(r) == name]
    what = f"has {_label(present[0])}, not" if present else "has no package matching"
    message = f"the environment {what} required '{rule.spec}'{because}"
    return [Violation(REQUIRE, rule.level, rule.origin, message, platform, _label(present[0]) if present else name)]


def _license_rule(platform: str, records: Sequence[Any], rule: LicenseRule) -> list[Violation]:
    found = []
    for r in records:
        finding = judge_license(getattr(r, "license", None), rule)
        if finding is not None:
            level = rule.unknown if finding.rule == "license-unknown" else rule.level
            message = f"{_label(r)}: {finding.detail}"
            found.append(Violation(finding.rule, level, rule.origin, message, platform, _label(r)))
    return found


@functools.lru_cache(maxsize=1024)
def _match_spec(text: str) -> MatchSpec:
    return MatchSpec(text)


def _spec_name(spec: MatchSpec) -> str:
    name = spec.name
    return str(getattr(name, "normalized", name) or "")


def _name(record: Any) -> str:
    name = record.name
    return str(getattr(name, "normalized", name))


def _label(record: Any) -> str:
    return f"{_name(record)} {record.version} {record.build}"


def _channel(record: Any) -> str:
    return str(getattr(record, "channel", "") or "").rstrip("/")


def _human(size: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


# --- reports ------------------------------------------------------------------------------


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
