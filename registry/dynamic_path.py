"""Dynamic image names: ``dynamic/<pkg>/<pkg.ge.1.0>/...`` read as conda match specs. Pure.

A repository name under ``dynamic/`` asks for an image of an environment holding the
packages its path components name. The OCI name grammar allows only lowercase letters,
digits and the separators ``.``, ``_``, ``__`` and ``-``, so version operators are spelled
as words between dots:

======  ======  ==============================================
 word    means   example
======  ======  ==============================================
``gt``   ``>``   ``numpy.gt.1.20``  → ``numpy >1.20``
``ge``   ``>=``  ``python.ge.3.11`` → ``python >=3.11``
``lt``   ``<``   ``numpy.lt.2``     → ``numpy <2``
``le``   ``<=``  ``scipy.le.1.13``  → ``scipy <=1.13``
``eq``   ``==``  ``tool.eq.1.0``    → ``tool ==1.0``
======  ======  ==============================================

A component may hold several constraints (``numpy.ge.1.20.lt.2``); components naming the
same package are merged. Order does not matter and repeats count once: the request is the
set of packages, each with the sorted set of its constraints, and its canonical name lists
them in that order (``dynamic/numpy.ge.1.20.lt.2/scipy``).

Package names may contain dots (``ruamel.yaml``). A dotted part that starts with a digit
is taken for a version without a valid operator (``numpy.1.26``, ``numpy.gte.1``) and
refused with the list of operators: no conda package is named like that.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from condaops.registry.errors import NAME_INVALID, RegistryError

NAMESPACE = "dynamic"
OPERATORS: dict[str, str] = {"gt": ">", "ge": ">=", "lt": "<", "le": "<=", "eq": "=="}
_OPERATOR_RE = re.compile(r"\.(" + "|".join(OPERATORS) + r")\.")
_VALID_OPERATORS = ", ".join(f".{word}. ({symbol})" for word, symbol in OPERATORS.items())
_PACKAGE_RE = re.compile(r"[a-z0-9_][a-z0-9_.-]*")
_VERSION_RE = re.compile(r"[a-z0-9_][a-z0-9_.+-]*")


@dataclass(frozen=True, order=True)
class Requirement:
    """One package and its version constraints as ``(operator word, version)`` pairs,
    sorted and unique; no constraints means any version."""

    package: str
    constraints: tuple[tuple[str, str], ...] = ()

    @property
    def match_spec(self) -> str:
        """``numpy >=1.20,<2`` (or just ``numpy``)."""
        if not self.constraints:
            return self.package
        return f"{self.package} " + ",".join(OPERATORS[word] + version for word, version in self.constraints)

    @property
    def component(self) -> str:
        """The canonical path component: ``numpy.ge.1.20.lt.2``."""
        return self.package + "".join(f".{word}.{version}" for word, version in self.constraints)


@dataclass(frozen=True)
class DynamicRequest:
    """The packages a dynamic repository name asks for, sorted by package name."""

    requirements: tuple[Requirement, ...]

    @property
    def match_specs(self) -> tuple[str, ...]:
        return tuple(r.match_spec for r in self.requirements)

    @property
    def canonical_name(self) -> str:
        """The repository the image is built into; every ordering of a request aliases it."""
        return "/".join((NAMESPACE, *(r.component for r in self.requirements)))


def is_dynamic_name(name: str) -> bool:
    """Whether repository ``name`` lies in the dynamic namespace."""
    return name == NAMESPACE or name.startswith(NAMESPACE + "/")


def parse_dynamic_name(name: str, *, max_packages: int) -> DynamicRequest:
    """The request a repository name ``dynamic/...`` makes; NAME_INVALID for a bad
    component (naming it and the operators), for none, or for more than ``max_packages``
    packages."""
    if not is_dynamic_name(name):
        raise ValueError(f"'{name}' is not in the {NAMESPACE}/ namespace")
    components = [c for c in name.split("/")[1:] if c]
    if not components:
        raise RegistryError(
            NAME_INVALID, f"'{name}' names no packages; ask for {NAMESPACE}/<package>/<package>.ge.<version>/..."
        )
    merged: dict[str, set[tuple[str, str]]] = {}
    for component in components:
        requirement = parse_component(component)
        merged.setdefault(requirement.package, set()).update(requirement.constraints)
    if len(merged) > max_packages:
        raise RegistryError(
            NAME_INVALID,
            f"'{name[:300]}' asks for {len(merged)} packages; dynamic images hold at most {max_packages} "
            "(dynamic.max_packages); list only the packages you need, their dependencies come along",
        )
    return DynamicRequest(tuple(Requirement(p, tuple(sorted(c))) for p, c in sorted(merged.items())))


def parse_component(component: str) -> Requirement:
    """One path component: ``<package>`` then any number of ``.<op>.<version>``."""
    package, *rest = _OPERATOR_RE.split(component)
    pairs = list(zip(rest[::2], rest[1::2], strict=True))
    if not _PACKAGE_RE.fullmatch(package) or any(part[:1].isdigit() for part in package.split(".")[1:]):
        raise _bad_component(component, f"'{package}' is not a package name")
    for _word, version in pairs:
        if not _VERSION_RE.fullmatch(version):
            raise _bad_component(component, f"'{version}' is not a version")
    return Requirement(package, tuple(sorted(set(pairs))))


def _bad_component(component: str, why: str) -> RegistryError:
    return RegistryError(
        NAME_INVALID,
        f"'{component[:200]}' is not <package> or <package>.<operator>.<version> ({why}); "
        f"operators are {_VALID_OPERATORS}",
        detail={"component": component[:200], "operators": [f".{w}." for w in OPERATORS]},
    )
