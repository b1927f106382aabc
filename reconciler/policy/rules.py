"""Policy rules as data: parsed from a policy file's mapping, merged per environment.

Pure: standard library only. A policy file (``condaops-policy.yaml``) holds up to five
sections, each optional::

    channels:  {allowed: [conda-forge], level: error}
    packages:
      deny:    [{spec: "openssl <3", reason: "...", level: error}]
      require: [{spec: "ca-certificates", reason: "..."}]
    licenses:  {allow: [...], deny: [...], unknown: warning, level: error}
    size:      {max: 2 GiB, level: warning}

``parse_policy`` validates one file's mapping into a ``PolicyDoc`` and raises
``PolicyFileError`` naming the file and the key. ``merge`` builds the ``Rules`` of one
environment from the layers that apply to it: the site's rules (settings; always kept)
and the repository's, where a namespace file's section replaces the root file's section
of the same name (``packages.deny`` and ``packages.require`` count as sections of their
own). Every rule remembers the file it came from, so a violation can name it.

Match specs are kept as text here; the loader checks that rattler parses them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

ERROR, WARNING, IGNORE = "error", "warning", "ignore"
LEVELS = (ERROR, WARNING)
SECTIONS = ("channels", "packages", "licenses", "size")
MAX_RULES = 1000  # per list: a policy is read on every pass; keep it bounded

_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3}
_UNITS |= {"kib": 1024, "mib": 1024**2, "gib": 1024**3, "tb": 1000**4, "tib": 1024**4}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


class PolicyFileError(ValueError):
    """A policy file is not valid; the message names the file and the key."""


@dataclass(frozen=True, slots=True)
class ChannelRule:
    """Packages must come from one of ``allowed`` (canonical channel URLs)."""

    allowed: tuple[str, ...]
    level: str
    origin: str


@dataclass(frozen=True, slots=True)
class PackageRule:
    """``deny``: no package may match ``spec``; ``require``: some package must."""

    kind: str  # deny | require
    spec: str
    reason: str
    level: str
    origin: str


@dataclass(frozen=True, slots=True)
class LicenseRule:
    """Licence patterns (SPDX ids, ``*`` wildcards) every package's licence is held to."""

    allow: tuple[str, ...]
    deny: tuple[str, ...]
    unknown: str  # error | warning | ignore: a missing or non-SPDX licence
    level: str
    origin: str


@dataclass(frozen=True, slots=True)
class SizeRule:
    """The packages of one platform may download at most ``max_bytes``."""

    max_bytes: int
    level: str
    origin: str


@dataclass(frozen=True, slots=True)
class PolicyDoc:
    """One policy file; a section that is None is absent (inherited from the root)."""

    origin: str
    channels: ChannelRule | None = None
    deny: tuple[PackageRule, ...] | None = None
    require: tuple[PackageRule, ...] | None = None
    licenses: LicenseRule | None = None
    size: SizeRule | None = None


@dataclass(frozen=True, slots=True)
class Rules:
    """Every rule that applies to one environment; ``invalid`` lists the policy files that
    could not be read (such an environment is never built unchecked)."""

    channels: tuple[ChannelRule, ...] = ()
    packages: tuple[PackageRule, ...] = ()
    licenses: tuple[LicenseRule, ...] = ()
    sizes: tuple[SizeRule, ...] = ()
    invalid: tuple[str, ...] = field(default=())

    @property
    def empty(self) -> bool:
        return not (self.channels or self.packages or self.licenses or self.sizes or self.invalid)

    def to_json(self) -> str:
        """Canonical JSON: the same rules always give the same text (and policy hash)."""
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))


def rules_from_json(text: str) -> Rules:
    """The inverse of ``Rules.to_json``."""
    data = json.loads(text)
    return Rules(
        channels=tuple(ChannelRule(tuple(c["allowed"]), c["level"], c["origin"]) for c in data["channels"]),
        packages=tuple(PackageRule(**p) for p in data["packages"]),
        licenses=tuple(
            LicenseRule(tuple(x["allow"]), tuple(x["deny"]), x["unknown"], x["level"], x["origin"])
            for x in data["licenses"]
        ),
        sizes=tuple(SizeRule(**s) for s in data["sizes"]),
        invalid=tuple(data["invalid"]),
    )


def rules_for(policy: str | None) -> Rules:
    """The rules a ticket or desired environment carries (none for None)."""
    return rules_from_json(policy) if policy else Rules()


def merge(site: Iterable[PolicyDoc], root: PolicyDoc | None, namespace: PolicyDoc | None) -> Rules:
    """The rules of one environment: every site layer in full, then the repository's root
    file with the namespace file's sections replacing the root's."""
    repo = _overlay(root, namespace)
    layers = [*site, *([repo] if repo else [])]
    return Rules(
        channels=tuple(d.channels for d in layers if d.channels),
        packages=tuple(r for d in layers for r in (*(d.deny or ()), *(d.require or ()))),
        licenses=tuple(d.licenses for d in layers if d.licenses),
        sizes=tuple(d.size for d in layers if d.size),
    )


def _overlay(root: PolicyDoc | None, namespace: PolicyDoc | None) -> PolicyDoc | None:
    if root is None or namespace is None:
        return namespace or root
    sections = ("channels", "deny", "require", "licenses", "size")
    return replace(root, **{s: getattr(namespace, s) for s in sections if getattr(namespace, s) is not None})


# --- parsing ------------------------------------------------------------------------------


def parse_policy(data: object, *, origin: str, resolve_channel: Any = None) -> PolicyDoc:
    """Validate one policy file's top-level mapping. ``resolve_channel(name) -> [urls]``
    turns channel names into canonical URLs (names are kept as written without it)."""
    if data is None:
        return PolicyDoc(origin)
    where = _Where(origin)
    top = where.mapping(data, "", SECTIONS)
    doc = PolicyDoc(origin)
    if "channels" in top:
        doc = replace(doc, channels=_channels(where, top["channels"], resolve_channel))
    if "packages" in top:
        packages = where.mapping(top["packages"], "packages", ("deny", "require"))
        if "deny" in packages:
            doc = replace(doc, deny=_package_rules(where, packages["deny"], "deny"))
        if "require" in packages:
            doc = replace(doc, require=_package_rules(where, packages["require"], "require"))
    if "licenses" in top:
        doc = replace(doc, licenses=_licenses(where, top["licenses"]))
    if "size" in top:
        doc = replace(doc, size=_size(where, top["size"]))
    return doc


@dataclass(frozen=True, slots=True)
class _Where:
    """Validation helpers that name the file and the key in every message."""

    origin: str

    def fail(self, key: str, message: str) -> PolicyFileError:
        return PolicyFileError(f"{self.origin}: key '{key}': {message}" if key else f"{self.origin}: {message}")

    def mapping(self, value: object, key: str, allowed: Sequence[str]) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(key, f"expected a mapping with {', '.join(allowed)}, got {_kind(value)}")
        for name in value:
            if name not in allowed:
                full = f"{key}.{name}" if key else str(name)
                raise self.fail(full, f"unknown key; expected one of {', '.join(allowed)}")
        return dict(value)

    def strings(self, value: object, key: str) -> tuple[str, ...]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise self.fail(key, f"expected a list of non-empty strings, got {_kind(value)}")
        if len(value) > MAX_RULES:
            raise self.fail(key, f"has {len(value)} entries, more than {MAX_RULES}")
        return tuple(v.strip() for v in value)

    def level(self, value: object, key: str, choices: Sequence[str] = LEVELS) -> str:
        if value not in choices:
            raise self.fail(key, f"expected one of {', '.join(choices)}, got {value!r}")
        return str(value)


def _channels(where: _Where, value: object, resolve: Any) -> ChannelRule:
    section = where.mapping(value, "channels", ("allowed", "level"))
    if "allowed" not in section:
        raise where.fail("channels.allowed", "is required: list the channels packages may come from")
    names = where.strings(section["allowed"], "channels.allowed")
    urls = tuple(dict.fromkeys(u for n in names for u in (resolve(n) if resolve else [n])))
    return ChannelRule(urls, where.level(section.get("level", ERROR), "channels.level"), where.origin)


def _package_rules(where: _Where, value: object, kind: str) -> tuple[PackageRule, ...]:
    key = f"packages.{kind}"
    if not isinstance(value, list):
        raise where.fail(key, f"expected a list of {{spec, reason}} entries, got {_kind(value)}")
    if len(value) > MAX_RULES:
        raise where.fail(key, f"has {len(value)} entries, more than {MAX_RULES}")
    rules = []
    for index, item in enumerate(value):
        item_key = f"{key}[{index}]"
        if isinstance(item, str):
            item = {"spec": item}
        entry = where.mapping(item, item_key, ("spec", "reason", "level"))
        spec = entry.get("spec")
        if not isinstance(spec, str) or not spec.strip():
            raise where.fail(f"{item_key}.spec", "is required: a match spec such as 'openssl <3'")
        reason = entry.get("reason", "")
        if not isinstance(reason, str):
            raise where.fail(f"{item_key}.reason", f"expected text, got {_kind(reason)}")
        level = where.level(entry.get("level", ERROR), f"{item_key}.level")
        rules.append(PackageRule(kind, " ".join(spec.split()), reason.strip(), level, where.origin))
    return tuple(rules)


def _licenses(where: _Where, value: object) -> LicenseRule:
    section = where.mapping(value, "licenses", ("allow", "deny", "unknown", "level"))
    allow = where.strings(section.get("allow", []), "licenses.allow")
    deny = where.strings(section.get("deny", []), "licenses.deny")
    unknown = where.level(section.get("unknown", WARNING), "licenses.unknown", (ERROR, WARNING, IGNORE))
    level = where.level(section.get("level", ERROR), "licenses.level")
    return LicenseRule(allow, deny, unknown, level, where.origin)


def _size(where: _Where, value: object) -> SizeRule:
    section = where.mapping(value, "size", ("max", "level"))
    if "max" not in section:
        raise where.fail("size.max", "is required, e.g. '2 GiB' or a number of bytes")
    limit = parse_size(section["max"])
    if limit is None:
        raise where.fail("size.max", f"expected a size such as '500 MB' or '2 GiB', got {section['max']!r}")
    return SizeRule(limit, where.level(section.get("level", ERROR), "size.level"), where.origin)


def parse_size(value: object) -> int | None:
    """Bytes from ``1234``, ``"500 MB"`` or ``"2 GiB"``; None if it is not a size."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    match = _SIZE.match(value) if isinstance(value, str) else None
    if not match or match.group(2).lower() not in _UNITS:
        return None
    size = int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    return size if size > 0 else None


def _kind(value: object) -> str:
    return "nothing" if value is None else f"{type(value).__name__} {value!r}"[:80]
