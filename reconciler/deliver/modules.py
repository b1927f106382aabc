"""Modulefiles for Lmod (Lua) and Tcl environment-modules, rendered from plain data. Pure.

An environment ``ds/tools`` is the module ``ds/tools`` with one version per kept build:

* ``current`` — the default (``module load ds/tools``): it goes through the stable link,
  so a new build is what the next ``module load`` gives;
* ``<build-id>`` — one build's own prefix (``module load ds/tools/41``), for work that
  must stay on it; it goes when ``gc`` removes that build.

Each file activates the environment as ``conda activate`` does for programs (``PATH``,
``CONDA_PREFIX``, the spec's ``variables:``, what the packages' activation hooks set:
``activate``) with ``pushenv``, so unloading restores what was there, and belongs to the
family ``condaops``: one environment at a time (Lmod swaps the loaded one out, or refuses
with ``LMOD_AUTO_SWAP=no``; environment-modules refuses).
The default version is named in ``.modulerc.lua`` / ``.modulerc``, which both tools read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from condaops.reconciler.deliver.model import MARKER
from condaops.reconciler.model import EnvRef

FAMILY = "condaops"
CURRENT = "current"
LUA, TCL, BOTH = "lua", "tcl", "both"


@dataclass(frozen=True, slots=True)
class ModuleVersion:
    """One modulefile: ``ref`` at ``version`` (``current`` or a build id) run from ``root``."""

    ref: EnvRef
    version: str
    root: str
    build_id: int
    revision: str | None = None
    source_path: str | None = None
    packages: tuple[tuple[str, str], ...] = ()
    variables: tuple[tuple[str, str], ...] = ()
    conda_name: str = ""
    display_name: str | None = None  # the environment file's condaops: display_name:
    activation: tuple[tuple[str, str], ...] = ()  # what the packages' activation hooks set (``activate``)
    path: tuple[str, ...] = ()  # entries they put before <root>/bin on PATH

    @property
    def module(self) -> str:
        return f"{self.ref.namespace}/{self.ref.name}"

    @property
    def full_name(self) -> str:
        return f"{self.module}/{self.version}"


def module_files(versions: Sequence[ModuleVersion], fmt: str) -> dict[str, str]:
    """File name -> text of one environment's module folder, in format ``lua``, ``tcl`` or
    ``both`` (Lmod reads ``x.lua`` before ``x``; environment-modules skips files without
    its ``#%Module`` header, so both tools find their own)."""
    if not versions:
        return {}
    files: dict[str, str] = {}
    default = next((v for v in versions if v.version == CURRENT), versions[0])
    if fmt in (LUA, BOTH):
        files |= {f"{v.version}.lua": render_lua(v) for v in versions}
        files[".modulerc.lua"] = render_modulerc_lua(default)
    if fmt in (TCL, BOTH):
        files |= {v.version: render_tcl(v) for v in versions}
        files[".modulerc"] = render_modulerc_tcl(default)
    return files


def describe(v: ModuleVersion) -> list[tuple[str, str]]:
    """The ``whatis`` lines: what ``module whatis`` and ``module help`` show."""
    which = "current build, follows each new build" if v.version == CURRENT else "this build only"
    packages = ", ".join(f"{name} {version}" for name, version in v.packages) or "-"
    what = f"conda environment {v.ref} built by condaops"
    return [
        ("Name", v.module),
        ("Version", f"{v.version} (build {v.build_id}; {which})"),
        ("Description", f"{v.display_name} ({what})" if v.display_name else what),
        ("Source", v.source_path or "-"),
        ("Revision", v.revision or "-"),
        ("Packages", packages),
        ("Prefix", v.root),
    ]


def help_text(v: ModuleVersion) -> str:
    lines = [f"{key}: {value}" for key, value in describe(v)]
    lines.append(f"Activate with conda instead: conda activate {v.conda_name or v.root}")
    return "\n".join(lines)


def render_lua(v: ModuleVersion) -> str:
    out = [
        f"-- {MARKER}: {v.ref}",
        f"-- Written by condaops for {v.ref}; rewritten at each build, do not edit.",
        f"help({lua_string(help_text(v))})",
        *(f"whatis({lua_string(f'{key}: {value}')})" for key, value in describe(v)),
        f"family({lua_string(FAMILY)})",
        *(f"prepend_path({lua_string('PATH')}, {lua_string(entry)})" for entry in _path(v)),
    ]
    out += [f"pushenv({lua_string(name)}, {lua_string(value)})" for name, value in _variables(v)]
    return "\n".join(out) + "\n"


def render_tcl(v: ModuleVersion) -> str:
    out = [
        "#%Module1.0",
        f"## {MARKER}: {v.ref}",
        f"## Written by condaops for {v.ref}; rewritten at each build, do not edit.",
        "proc ModulesHelp {} {",
        f"    puts stderr {tcl_string(help_text(v))}",
        "}",
        *(f"module-whatis {tcl_string(f'{key}: {value}')}" for key, value in describe(v)),
        f"family {FAMILY}",
        *(f"prepend-path PATH {tcl_string(entry)}" for entry in _path(v)),
    ]
    out += [f"pushenv {tcl_string(name)} {tcl_string(value)}" for name, value in _variables(v)]
    return "\n".join(out) + "\n"


def render_modulerc_lua(default: ModuleVersion) -> str:
    return f"-- {MARKER}: {default.ref}\nmodule_version({lua_string(default.full_name)}, {lua_string('default')})\n"


def render_modulerc_tcl(default: ModuleVersion) -> str:
    return f"#%Module1.0\n## {MARKER}: {default.ref}\nmodule-version {tcl_string(default.full_name)} default\n"


def written_for(text: str) -> str | None:
    """The environment a modulefile was written for by condaops, or None if not ours."""
    for line in text.splitlines()[:3]:
        head, sep, ref = line.lstrip("-# ").partition(": ")
        if sep and head == MARKER:
            return ref.strip()
    return None


def lua_string(text: str) -> str:
    """A Lua string literal for any text."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return f'"{escaped}"'


def tcl_string(text: str) -> str:
    """A Tcl word for any text: quoted, with every character Tcl would substitute escaped."""
    escaped = "".join("\\" + c if c in '\\"$[]{}' else c for c in text).replace("\n", "\\n").replace("\r", "\\r")
    return f'"{escaped}"'


def _variables(v: ModuleVersion) -> list[tuple[str, str]]:
    """In the order conda sets them; a later value replaces an earlier one in its place."""
    found = dict([("CONDA_PREFIX", v.root), ("CONDA_DEFAULT_ENV", v.conda_name or v.root), *v.variables])
    found.update(v.activation)
    return list(found.items())


def _path(v: ModuleVersion) -> list[str]:
    """``prepend_path`` entries in load order: each goes in front of the ones before it."""
    return [f"{v.root}/bin", *reversed(v.path)]
