"""Parsing environment.yaml files into Specs: normalization, selectors, rejections, identity."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from rattler import MatchSpec

from condaops.reconciler.errors import SourceError, SpecError
from condaops.reconciler.spec import Dependency, Spec, spec_from_canonical
from condaops.reconciler.specfile import (
    MAX_SPEC_BYTES,
    ParsedSpec,
    load_spec_file,
    normalize_match_spec,
    parse_spec_bytes,
)

FILE = "team/env.yaml"


def parse(text: str) -> ParsedSpec:
    return parse_spec_bytes(textwrap.dedent(text).encode(), file=FILE)


def rejection(data: str | bytes) -> SpecError:
    raw = textwrap.dedent(data).encode() if isinstance(data, str) else data
    with pytest.raises(SpecError) as caught:
        parse_spec_bytes(raw, file=FILE)
    return caught.value


# --- match spec normalization --------------------------------------------------------

NORMALIZED = [
    ("python=2.7", "python =2.7", "fuzzy-pin"),
    ("python >= 3.8, < 3.9", "python >=3.8,<3.9", "spaced-range"),
    ("python >=3.8,<3.9", "python >=3.8,<3.9", "tight-range"),
    ("scipy   >=    1.5.0,  < 2.0.0", "scipy >=1.5.0,<2.0.0", "irregular-whitespace"),
    ("pandas =2.0", "pandas =2.0", "space-before-equals"),
    ("python ==3.10", "python ==3.10", "space-before-double-equals"),
    ("numpy 1.26.*", "numpy 1.26.*", "glob-version"),
    ("  numpy  ", "numpy", "surrounding-space"),
    ("Pillow==12.3.0", "pillow ==12.3.0", "lower-cased-name"),
    ("conda-forge::numpy", "conda-forge::numpy", "channel-prefix"),
    ("conda-forge/linux-64::NumPy >= 1.0", "conda-forge/linux-64::numpy >=1.0", "subdir-prefix"),
    ("https://104.17.92.24:443::flask=1.0.2", "https://104.17.92.24:443::flask =1.0.2", "url-prefix-with-port"),
    ("pytorch=2.1=*cuda*", "pytorch =2.1=*cuda*", "version-and-build"),
    ("jaxlib>=0.4.31=cuda12*", "jaxlib >=0.4.31=cuda12*", "range-and-build"),
    ("libarchive>=3.8 lgpl_*", "libarchive >=3.8 lgpl_*", "space-separated-build"),
    ("numpy  1.2   py3_0", "numpy 1.2 py3_0", "three-words"),
    ("blas[build=mkl]", "blas[build=mkl]", "bracket-build"),
    ("blas [build=mkl]", "blas[build=mkl]", "space-before-bracket"),
    ("numpy >=1.0,<2 | 3", "numpy >=1.0,<2|3", "alternatives"),
    ("dask-cuda==25.8.*,>=0.0.0a0", "dask-cuda ==25.8.*,>=0.0.0a0", "rapids-style"),
    ("ruamel.yaml>=0.11.14,<0.20", "ruamel.yaml >=0.11.14,<0.20", "dotted-name"),
]


@pytest.mark.parametrize(("text", "expected"), [(t, e) for t, e, _ in NORMALIZED], ids=[i for _, _, i in NORMALIZED])
def test_normalize_match_spec(text: str, expected: str) -> None:
    assert normalize_match_spec(text) == expected
    assert normalize_match_spec(expected) == expected  # idempotent
    assert str(MatchSpec(expected)) == str(MatchSpec(text))  # same meaning to rattler


INVALID_MATCH_SPECS = [
    ("", "empty"),
    ("python==", "operator-without-version"),
    ("=1.0", "no-name"),
    ("foo bar baz qux", "stray-words"),
    ("numpy>=1.2;<3", "semicolon"),
    ("pytorch = 2.1 = *cuda*", "spaced-build-separator"),
    ("a*b", "glob-name"),
    ("https://conda.anaconda.org/conda-forge/linux-64/numpy-1.0-py_0.conda", "package-url"),
]


@pytest.mark.parametrize("text", [t for t, _ in INVALID_MATCH_SPECS], ids=[i for _, i in INVALID_MATCH_SPECS])
def test_normalize_match_spec_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=r"\S"):
        normalize_match_spec(text)


# --- accepted files --------------------------------------------------------------------


def test_full_file() -> None:
    parsed = parse("""\
        name: analysis
        channels:
          - conda-forge
          - nodefaults
          - bioconda
        dependencies:
          - python >= 3.11
          - Pandas =2.0
          - pip
          - pip:
            - Flask==2.0
        variables:
          DEBUG: true
          LEVEL: 3
          TEXT: "two words"
        platforms:
          - osx-arm64
          - linux-64
        """)
    assert parsed.spec == Spec(
        channels=("conda-forge", "bioconda"),
        dependencies=(Dependency("pandas =2.0"), Dependency("pip"), Dependency("python >=3.11")),
        pip=(Dependency("flask==2.0"),),
        variables=(("DEBUG", "true"), ("LEVEL", "3"), ("TEXT", "two words")),
        platforms=("linux-64", "osx-arm64"),
    )
    assert parsed.spec.name == "analysis"
    assert parsed.warnings == ()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("dependencies:\n", ()),
        ("dependencies: []\n", ()),
        ("name: x\n", ()),
        ("channels: [conda-forge]\ndependencies: [numpy, scipy]\n", (Dependency("numpy"), Dependency("scipy"))),
    ],
    ids=["null", "empty-list", "missing", "flow-style"],
)
def test_dependencies_shapes(text: str, expected: tuple[Dependency, ...]) -> None:
    assert parse(text).spec.dependencies == expected


PIP_NORMALIZED = [
    ("Flask==0.12.3", "flask==0.12.3", "lower-case"),
    ("package12[Extra2,extra1] == 12.0.0", "package12[extra1,extra2]==12.0.0", "extras"),
    ("hypothesis >=6.61.0,<7.0.0", "hypothesis<7.0.0,>=6.61.0", "range"),
    ("flit-core === 3.9.0", "flit-core===3.9.0", "arbitrary-equality"),
    ("Typing_Extensions", "typing-extensions", "pep503-name"),
    ("numpy; python_version < '3.10'", 'numpy; python_version < "3.10"', "marker"),
    (
        "requests @ https://example.org/requests-2.31.0-py3-none-any.whl#sha256=" + "a" * 64,
        "requests @ https://example.org/requests-2.31.0-py3-none-any.whl#sha256=" + "a" * 64,
        "direct-reference",
    ),
    (
        "deepobs @ git+https://git@github.com/fsschneider/DeepOBS.git@develop",
        "deepobs @ git+https://git@github.com/fsschneider/DeepOBS.git@develop",
        "named-vcs",
    ),
    ("git+https://github.com/dask/distributed", "git+https://github.com/dask/distributed", "bare-vcs"),
    ("flit-core==3.9.0 --hash=sha256:" + "AB" * 32, "flit-core==3.9.0 --hash=sha256:" + "ab" * 32, "hash-option"),
]


@pytest.mark.parametrize(
    ("line", "expected"), [(a, b) for a, b, _ in PIP_NORMALIZED], ids=[i for _, _, i in PIP_NORMALIZED]
)
def test_pip_requirements(line: str, expected: str) -> None:
    parsed = parse(f'dependencies:\n  - pip\n  - pip:\n    - "{line}"\n')
    assert parsed.spec.pip == (Dependency(expected),)


WARNINGS = [
    ("prefix: /opt/env\ndependencies: [numpy]\n", "line 1: 'prefix:' is ignored", "prefix"),
    ("category: dev\ndependencies: [numpy]\n", "line 1: 'category:' is ignored", "category"),
    ("dependencies:\n  - python\n  - pip:\n    - toolz\n", "line 3: a 'pip:' section but no 'pip'", "pip-without-pip"),
    ("channels: [/srv/channel]\ndependencies: [numpy]\n", "is a local path", "local-channel"),
    ("channels: [a, b, a]\ndependencies: [numpy]\n", "channel 'a' is listed twice", "duplicate-channel"),
    ("dependencies:\n  - numpy\n  - numpy\n", "line 3: 'numpy' is listed twice", "duplicate-dep"),
    ("dependencies:\n  - pandas\n  - pandas >=2\n", "'pandas' is listed more than once", "two-constraints"),
    ("dependencies:\n  - gcc\n  - gcc  # [linux]\n", "already listed for every platform", "redundant-selector"),
    ("dependencies:\n", "line 1: no dependencies", "empty"),
    ("name: x\nchannels: [a]\n", "line 1: no dependencies", "missing"),
    ("platforms: [linux-64, linux-64]\ndependencies: [numpy]\n", "listed twice", "duplicate-platform"),
]


@pytest.mark.parametrize(("text", "fragment"), [(t, f) for t, f, _ in WARNINGS], ids=[i for _, _, i in WARNINGS])
def test_warnings(text: str, fragment: str) -> None:
    warnings = parse(text).warnings
    assert any(fragment in w for w in warnings), warnings
    assert all("\n" not in w for w in warnings)


def test_redundant_selector_keeps_the_unconditional_line() -> None:
    spec = parse("dependencies:\n  - gcc  # [linux]\n  - gcc\n").spec
    assert spec.dependencies == (Dependency("gcc"),)


# --- selectors -------------------------------------------------------------------------


def test_selectors() -> None:
    spec = parse("""\
        dependencies:
          - python <3.11  # just a comment
          - clang_osx-arm64  # [arm64]
          - "gcc_linux-64>=6"  #[linux64]
          - pywin32  # [ not  unix ]
          - sel(osx): libcxx
          - pip
          - pip:
            - psutil  # [linux64]
            - "tz @ https://example.org/tz-1-py3-none-any.whl#sha256=abc"
        """).spec
    assert {d.text: d.selector for d in spec.dependencies} == {
        "python <3.11": None,
        "clang_osx-arm64": "arm64",
        "gcc_linux-64 >=6": "linux64",
        "pywin32": "not unix",
        "libcxx": "osx",
        "pip": None,
    }
    assert {d.text: d.selector for d in spec.pip} == {
        "psutil": "linux64",
        "tz @ https://example.org/tz-1-py3-none-any.whl#sha256=abc": None,
    }
    assert spec.dependencies_for("linux-64") == ["gcc_linux-64 >=6", "pip", "python <3.11"]
    assert spec.dependencies_for("osx-arm64") == ["clang_osx-arm64", "libcxx", "pip", "python <3.11"]
    assert spec.dependencies_for("win-64") == ["pip", "python <3.11", "pywin32"]
    assert spec.pip_for("osx-arm64") == ["tz @ https://example.org/tz-1-py3-none-any.whl#sha256=abc"]


@pytest.mark.parametrize(
    "text",
    [
        "dependencies:\n  - numpy\n  - gcc  # [linux and x86_64]\n",
        "dependencies:\n  - numpy\n  - gcc  # [py38]\n",
        "dependencies:\n  - numpy\n  - gcc  # [linux64] for the compiler\n",
        "dependencies:\n  - numpy\n  - sel(freebsd): gcc\n",
        "dependencies:\n  - pip:\n    - psutil  # [not not linux]\n",
    ],
    ids=["expression", "python-selector", "trailing-text", "unknown-sel", "double-negation"],
)
def test_selector_rejected(text: str) -> None:
    error = rejection(text)
    assert (error.reason, error.line) == ("SelectorInvalid", 3)
    assert str(error).startswith(f"{FILE}:3: ")


# --- rejections ------------------------------------------------------------------------

REJECTIONS = [
    # (id, file content, reason, line, fragment of the message)
    ("not-utf8", b"name: x\ndependencies:\n  - caf\xe9\n", "SpecNotUtf8", 3, "byte offset 29"),
    ("bad-yaml", "dependencies:\n  - thiswontwork\n  invalid\n", "SpecYamlInvalid", 3, "invalid YAML"),
    ("unclosed-quote", 'name: x\ndependencies:\n  - "numpy\n  - scipy\n', "SpecYamlInvalid", 3, "quoted scalar"),
    ("two-documents", "dependencies: [a]\n---\ndependencies: [b]\n", "SpecYamlInvalid", 2, "single document"),
    (
        "duplicate-key",
        "dependencies: [a]\nchannels: [x]\ndependencies: [b]\n",
        "SpecYamlInvalid",
        3,
        "duplicate key 'dependencies' (first on line 1)",
    ),
    (
        "duplicate-variable",
        "dependencies: [a]\nvariables:\n  A: 1\n  A: 2\n",
        "SpecYamlInvalid",
        4,
        "duplicate key 'A'",
    ),
    ("empty", "", "SpecInvalid", None, "the file is empty"),
    ("only-comments", "# nothing here\n", "SpecInvalid", None, "the file is empty"),
    ("top-level-list", "- numpy\n- scipy\n", "SpecInvalid", 1, "must be a mapping"),
    ("top-level-string", "numpy\n", "SpecInvalid", 1, "not a string"),
    (
        "jinja-expression",
        "dependencies:\n  - conda-store-server=={{ version }}\n",
        "SpecTemplated",
        2,
        "render the template",
    ),
    ("jinja-statement", "{% if x %}\ndependencies: [a]\n{% endif %}\n", "SpecTemplated", 1, "render the template"),
    (
        "jinja-after-a-commented-one",  # the placeholder found in the whole text, reported on its own line
        "# {{ in a comment }}\ndependencies:\n  - numpy  # {% ok %}\n  - scipy=={{ v }}\n",
        "SpecTemplated",
        4,
        "render the template",
    ),
    (
        "unknown-key",
        "name: x\ndependecies: [numpy]\n",
        "SpecUnknownKey",
        2,
        "unknown key 'dependecies' (allowed: name, channels, dependencies, variables, platforms",
    ),
    ("pip-repositories", "pip-repositories: [https://x]\ndependencies: [a]\n", "SpecUnknownKey", 1, "pip.index_url"),
    (
        "channels-string",
        "channels: conda-forge\ndependencies: [a]\n",
        "SpecInvalid",
        1,
        "'channels' must be a list, not a string",
    ),
    ("channel-number", "channels:\n  - 42\n", "SpecInvalid", 2, "a channel must be"),
    (
        "channel-env-var",
        "channels:\n  - https://h/t/${TOKEN}/stable\n",
        "ChannelInvalid",
        2,
        "credentials belong in condaops configuration",
    ),
    ("channel-password", "channels:\n  - https://me:secret@h/channel\n", "ChannelInvalid", 2, "credentials"),
    ("dep-prefix-env-var", "dependencies:\n  - https://h/$TOKEN/c::numpy\n", "ChannelInvalid", 2, "credentials"),
    (
        "dependencies-mapping",
        "dependencies:\n  numpy: 1\n",
        "SpecInvalid",
        2,
        "'dependencies' must be a list, not a mapping",
    ),
    ("dependency-number", "dependencies:\n  - numpy\n  - 3.14\n", "SpecInvalid", 3, "quote it"),
    ("dependency-empty", "dependencies:\n  - numpy\n  -\n", "SpecInvalid", 3, "not empty"),
    ("dependency-other-mapping", "dependencies:\n  - conda: [numpy]\n", "SpecInvalid", 2, "key 'conda'"),
    ("two-pip-sections", "dependencies:\n  - pip: [a]\n  - pip: [b]\n", "SpecInvalid", 3, "second 'pip:'"),
    (
        "bad-match-spec",
        "dependencies:\n  - numpy\n  - python==\n",
        "MatchSpecInvalid",
        3,
        "'python==' is not a valid conda match spec",
    ),
    ("stray-words", "dependencies:\n  - foo bar baz qux\n", "MatchSpecInvalid", 2, "not a build string"),
    ("unknown-platform", "platforms:\n  - linux-64\n  - linux64\n", "SpecInvalid", 3, "unknown platform 'linux64'"),
    ("variables-list", "variables:\n  - A=1\n", "SpecInvalid", 2, "'variables' must be a mapping"),
    ("variable-null", "variables:\n  A:\n", "SpecInvalid", 2, 'use "" for an empty string'),
    ("variable-name", "variables:\n  A-B: x\n", "SpecInvalid", 2, "not a valid environment"),
    ("name-list", "name: [a]\n", "SpecInvalid", 1, "'name' must be a string"),
    ("control-character", "dependencies:\n  - num\x07py\n", "SpecYamlInvalid", 2, "character #x0007"),
    (
        "deep-nesting",
        "dependencies: " + "[" * 50_000 + "]" * 50_000 + "\n",
        "SpecYamlInvalid",
        None,
        "nested too deeply",
    ),
    ("bad-channel-url", "channels:\n  - http://[::1/ch\n", "ChannelInvalid", 2, "not a channel name or URL"),
    ("channel-whitespace", "channels:\n  - conda forge\n", "ChannelInvalid", 2, "contains whitespace"),
]


@pytest.mark.parametrize(
    ("data", "reason", "line", "fragment"), [r[1:] for r in REJECTIONS], ids=[r[0] for r in REJECTIONS]
)
def test_rejections(data: str | bytes, reason: str, line: int | None, fragment: str) -> None:
    error = rejection(data)
    assert (error.reason, error.line, error.file) == (reason, line, FILE)
    location = f"{FILE}:{line}: " if line else f"{FILE}: "
    assert str(error).startswith(location)
    assert fragment in str(error)


PIP_REJECTIONS = [
    ("-e .", "PipRequirementUnsupported", "editable installs", "editable-dot"),
    ("-e git+https://github.com/x/y.git#egg=y", "PipRequirementUnsupported", "editable", "editable-vcs"),
    ("--editable=./pkg", "PipRequirementUnsupported", "editable", "editable-long"),
    (".", "PipRequirementUnsupported", "local paths", "dot"),
    ("./module_dir", "PipRequirementUnsupported", "local paths", "relative-dir"),
    ("/opt/pkg.whl", "PipRequirementUnsupported", "local paths", "absolute-path"),
    ("file:///tmp/pkg", "PipRequirementUnsupported", "local paths", "file-url"),
    ("pkg @ file:///tmp/pkg", "PipRequirementUnsupported", "local paths", "named-file-url"),
    ("-r requirements.txt", "PipRequirementUnsupported", "list the requirements", "requirements"),
    ("--index-url https://mirror/simple", "PipRequirementUnsupported", "pip.index_url", "index"),
    ("--extra-index-url https://x/simple", "PipRequirementUnsupported", "pip.extra_index_urls", "extra-index"),
    ("--find-links https://x/wheels", "PipRequirementUnsupported", "pip.index_url", "find-links"),
    ("--pre --index-url https://x/simple", "PipRequirementUnsupported", "pip.index_url", "pre-and-index"),
    ("--pre", "PipRequirementUnsupported", "option '--pre'", "pre"),
    ("numpy --no-deps", "PipRequirementUnsupported", "option '--no-deps'", "trailing-option"),
    ("hg+https://hg.example.org/repo", "PipRequirementUnsupported", "use git+https", "mercurial"),
    ("pkg @ https://${TOKEN}@example.org/pkg.whl", "PipRequirementUnsupported", "credentials", "url-env-var"),
    ("foo==", "PipRequirementInvalid", "not a valid pip requirement", "dangling-operator"),
    ("https://example.org/pkg-1.0-py3-none-any.whl", "PipRequirementInvalid", "name @ URL", "bare-url"),
    ("flit-core===3.9.0 --hash=sha256:1234", "PipRequirementInvalid", "4 hex digits, not 64", "short-hash"),
    ("flit-core===3.9.0 --hash=md5:1234", "PipRequirementInvalid", "--hash=sha256:", "md5-hash"),
    ("pkg @ ftp://example.org/pkg.whl", "PipRequirementInvalid", "scheme 'ftp'", "ftp-url"),
]


@pytest.mark.parametrize(
    ("line", "reason", "fragment"), [r[:3] for r in PIP_REJECTIONS], ids=[r[3] for r in PIP_REJECTIONS]
)
def test_pip_rejections(line: str, reason: str, fragment: str) -> None:
    error = rejection(f'dependencies:\n  - pip\n  - pip:\n    - requests\n    - "{line}"\n')
    assert (error.reason, error.line) == (reason, 5)
    assert str(error).startswith(f"{FILE}:5: '{line}'")
    assert fragment in str(error)


def test_pip_entry_must_be_a_string() -> None:
    error = rejection("dependencies:\n  - pip:\n    - {name: x}\n")
    assert (error.reason, error.line) == ("SpecInvalid", 3)


def test_too_large_bytes() -> None:
    error = rejection(b"#" * (MAX_SPEC_BYTES + 1))
    assert error.reason == "SpecTooLarge"
    assert str(error).startswith(f"{FILE}: the file is {MAX_SPEC_BYTES + 1} bytes")


# --- files on disk -----------------------------------------------------------------------


def test_load_spec_file_names(tmp_path: Path) -> None:
    path = tmp_path / "env.yaml"
    path.write_text("dependencies: [numpy]\n")
    assert load_spec_file(path).spec.dependencies == (Dependency("numpy"),)
    path.write_text("dependencies: [numpy==]\n")
    with pytest.raises(SpecError) as default_name:
        load_spec_file(path)
    with pytest.raises(SpecError) as display_name:
        load_spec_file(path, file="ns/env.yaml")
    assert str(default_name.value).startswith(f"{path}:1: ")
    assert str(display_name.value).startswith("ns/env.yaml:1: ")


def test_load_spec_file_refuses_large_file_unread(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("wb") as fh:
        fh.truncate(64 * MAX_SPEC_BYTES)  # sparse: reading it whole would be 64 MiB
    with pytest.raises(SpecError) as caught:
        load_spec_file(path, file="huge.yaml")
    assert caught.value.reason == "SpecTooLarge"
    assert f"{64 * MAX_SPEC_BYTES} bytes" in str(caught.value)


def test_load_spec_file_missing_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as caught:
        load_spec_file(tmp_path / "gone.yaml", file="gone.yaml")
    assert str(caught.value).startswith("gone.yaml: cannot read the file")


def test_utf8_bom_is_accepted() -> None:
    parsed = parse_spec_bytes("\ufeffdependencies: [numpy]\n".encode(), file=FILE)
    assert parsed.spec.dependencies == (Dependency("numpy"),)


# --- identity ------------------------------------------------------------------------------

BASE = """\
name: one
channels: [conda-forge, bioconda]
dependencies:
  - numpy >=1.26
  - python=3.12
  - gcc  # [linux]
  - pip
  - pip:
    - requests>=2
    - flask
"""


def spec_hash(text: str) -> str:
    return parse(text).spec.spec_hash


@pytest.mark.parametrize(
    "variant",
    [
        BASE.replace("  - numpy >=1.26\n  - python=3.12\n", "  - python=3.12\n  - numpy >=1.26\n"),
        BASE.replace("    - requests>=2\n    - flask\n", "    - flask\n    - requests>=2\n"),
        BASE.replace("numpy >=1.26", "numpy   >=  1.26").replace("python=3.12", "python =3.12"),
        BASE.replace("requests>=2", "Requests >= 2"),
        BASE.replace("name: one", "name: two"),
        BASE.replace("name: one\n", ""),
        BASE.replace("[conda-forge, bioconda]", "[conda-forge, nodefaults, bioconda]"),
        BASE + "condaops:\n  display_name: Tools for everyone\n",
    ],
    ids=[
        "conda-order",
        "pip-order",
        "conda-whitespace",
        "pip-whitespace-and-case",
        "other-name",
        "no-name",
        "nodefaults",
        "display-name",
    ],
)
def test_same_hash(variant: str) -> None:
    assert spec_hash(variant) == spec_hash(BASE)


@pytest.mark.parametrize(
    "variant",
    [
        BASE.replace("[conda-forge, bioconda]", "[bioconda, conda-forge]"),
        BASE.replace("python=3.12", "python==3.12"),
        BASE.replace("# [linux]", "# [osx]"),
        BASE.replace("    - flask\n", "    - flask  # [win]\n"),
        BASE + "platforms: [linux-64]\n",
        BASE + "variables: {A: b}\n",
    ],
    ids=["channel-order", "exact-pin", "selector", "pip-selector", "platforms", "variables"],
)
def test_different_hash(variant: str) -> None:
    assert spec_hash(variant) != spec_hash(BASE)


def test_round_trip_through_canonical_json() -> None:
    spec = parse(BASE + "platforms: [win-64, linux-64]\nvariables: {B: '2', A: x}\n").spec
    stored = json.loads(spec.canonical_json())
    restored = spec_from_canonical(stored, name=spec.name)
    assert restored == spec
    assert restored.spec_hash == spec.spec_hash
    assert restored.name == "one"


# --- condaops: (settings of condaops' own, outside the identity) ---------------------------


def test_display_name_is_read_and_is_not_identity() -> None:
    plain = parse(BASE).spec
    named = parse(BASE + "condaops:\n  display_name: '  Données 2026 (ds) '\n").spec
    assert named.display_name == "Données 2026 (ds)" and plain.display_name is None
    assert named == plain and named.canonical_json() == plain.canonical_json()
    assert parse(BASE + "condaops:\n").spec.display_name is None


@pytest.mark.parametrize(
    ("tail", "reason", "key", "fragment"),
    [
        ("condaops: Tools\n", "SpecInvalid", "condaops", "'condaops' must be a mapping"),
        ("condaops:\n  display: Tools\n", "SpecUnknownKey", "condaops.display", "unknown key 'condaops.display'"),
        ("condaops:\n  display_name: 2026\n", "SpecInvalid", "condaops.display_name", "not a number; quote it"),
        ("condaops:\n  display_name:\n", "SpecInvalid", "condaops.display_name", "non-empty string, not empty"),
        ("condaops:\n  display_name: [a]\n", "SpecInvalid", "condaops.display_name", "not a list"),
        ('condaops:\n  display_name: "a\\nb"\n', "SpecInvalid", "condaops.display_name", "one line"),
        (f"condaops:\n  display_name: {'x' * 101}\n", "SpecInvalid", "condaops.display_name", "100 or fewer"),
    ],
    ids=["not-a-mapping", "unknown-key", "number", "empty", "list", "line-break", "too-long"],
)
def test_display_name_rejections(tail: str, reason: str, key: str, fragment: str) -> None:
    error = rejection(BASE + tail)
    assert (error.reason, error.key) == (reason, key)
    assert str(error).startswith(f"{FILE}:") and fragment in str(error) and key in str(error)
