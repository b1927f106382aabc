"""Every real environment.yaml in ../shared/realdata/envs parses, or is refused on purpose.

The table names each file (see SOURCES.md there); a file added to or removed from the
corpus fails ``test_table_covers_the_corpus`` until the table says what to expect of it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from rattler import MatchSpec

from condaops.reconciler.errors import SpecError
from condaops.reconciler.spec import Spec, spec_from_canonical
from condaops.reconciler.specfile import ParsedSpec, load_spec_file
from tests.support.ci import skip_or_fail

ENVS = Path(__file__).parents[3] / "shared/realdata/envs"

OK = "ok"
# file -> "ok", or (reason, line) for files condaops refuses.
EXPECTED: dict[str, str | tuple[str, int]] = {
    "binder-examples__conda-environment.yaml": OK,
    # conda-lock's own key; condaops refuses unknown top-level keys.
    "conda-lock__allow-pypi-requests-explicit.yaml": ("SpecUnknownKey", 3),
    "conda-lock__example-pangeo.yaml": OK,
    "conda-lock__gdal.yaml": OK,  # warning: pip: without pip
    "conda-lock__multiple-categories-dev.yaml": OK,  # warning: category ignored
    "conda-lock__test-channel-inversion.yaml": OK,
    "conda-lock__test-cuda.yaml": OK,
    "conda-lock__test-env-filter-platform.yaml": OK,
    "conda-lock__test-environment-blas-mkl.yaml": OK,
    "conda-lock__test-git-tag.yaml": OK,
    "conda-lock__test-local-pip.yaml": ("PipRequirementUnsupported", 9),  # -e .
    "conda-lock__test-pip-full-url.yaml": OK,
    # --hash=sha256:1234 can never match a download: refused before any build.
    "conda-lock__test-pip-hash-checking.yaml": ("PipRequirementInvalid", 8),
    # pip indexes (with $PIP_PASSWORD) belong in condaops.yaml.
    "conda-lock__test-pip-repositories.yaml": ("SpecUnknownKey", 3),
    "conda-lock__test-pip-with-platform-selector.yaml": OK,
    "conda-lock__test-update-preupdate.yaml": OK,
    "conda-lock__test-v2-to-v3-upgrade.yaml": OK,
    "conda-lock__zlib.yaml": OK,
    "conda-pack__basic_python.yaml": OK,
    "conda-pack__has_conda.yaml": OK,
    # NEGATIVE, but a well-formed spec: it fails when solving, not when parsing.
    "conda-store__broken_environment.yaml": OK,
    "conda-store__complicated_environment.yaml": OK,
    "conda-store__python-flask-env.yaml": OK,
    "conda-store__server-environment-dev.yaml": OK,
    "conda-store__simple_environment.yaml": OK,
    "conda-store__ubuntu2004-conda-store-jinja.yaml": ("SpecTemplated", 9),
    "conda__advanced-pip.yaml": ("PipRequirementUnsupported", 9),  # --index-url, -e, -r
    "conda__channels_with_envvars.yaml": ("ChannelInvalid", 4),  # ${CONDA_TOKEN}
    "conda__docs.yaml": OK,
    "conda__empty_deps.yaml": OK,  # EDGE: dependencies: null is an empty environment
    "conda__environment_host_port.yaml": OK,
    "conda__environment_pinned.yaml": OK,
    "conda__valid_keys.yaml": OK,  # warning: prefix ignored
    "dask__ci-3.12.yaml": OK,
    "dask__ci-mindeps-array.yaml": OK,
    "geopandas__ci-311-minimal.yaml": OK,
    "geopandas__ci-313-dev.yaml": ("PipRequirementUnsupported", 30),  # --pre --index-url
    "geopandas__environment.yaml": OK,
    "lightning__environment.yaml": OK,
    "mamba__env-create-export.yaml": OK,
    "mamba__env-extra-white-space.yaml": OK,
    "mamba__env-name-with-spaces.yaml": OK,
    "mamba__env_1-flow-channels.yaml": OK,
    "mamba__env_2-sel.yaml": OK,
    "mamba__environment-dev.yaml": OK,
    "nebari-docker-images__dask-worker.yaml": OK,
    "nebari-docker-images__jupyterhub.yaml": OK,
    "nebari-docker-images__jupyterlab.yaml": OK,
    "nebari__default-environment-dashboard.yaml": OK,
    "nebari__default-environment-dask.yaml": OK,
    "nebari__qhub310-environment-dashboard.yaml": OK,
    "nebari__qhub310-environment-dask.yaml": OK,
    "paketo-conda-env-update__vendored_app.yaml": OK,
    "paketo-miniconda__conda_with_pip.yaml": OK,
    "paketo-miniconda__really_simple_app.yaml": OK,  # warning: local path channel
    "pangeo__base-notebook.yaml": OK,
    "pangeo__ml-notebook.yaml": OK,
    "pangeo__pangeo-notebook.yaml": OK,
    "pangeo__pytorch-notebook.yaml": OK,
    "pixi__cockpit.yaml": OK,
    "pixi__conda-minimal.yaml": OK,
    "pixi__crnnft.yaml": OK,
    "pixi__let-plot.yaml": OK,
    "pixi__test_env-pip-specifiers.yaml": OK,
    "rapidsai-cudf__all_cuda-129_arch-x86_64.yaml": OK,  # warnings: repeated packages
    "rattler__asymmetric_vqgan.yaml": ("PipRequirementUnsupported", 30),  # -e git+...
    "rattler__channel_inversion.yaml": OK,
    "rattler__python-platforms.yaml": OK,
    "rattler__variables.yaml": OK,
    "repo2docker__buildpack-base-environment.yaml": OK,
    "repo2docker__buildpack-py27.yaml": OK,
    "repo2docker__downgrade-xeus-cling.yaml": OK,
    "repo2docker__invalid-yaml.yaml": ("SpecYamlInvalid", 3),
    "repo2docker__py-r.yaml": OK,
    "repo2docker__py35-binder-dir.yaml": OK,
    "xarray__binder.yaml": OK,
    "xarray__ci-environment.yaml": OK,
}


@pytest.fixture(scope="module")
def envs() -> Path:
    if not ENVS.is_dir():
        skip_or_fail(f"real environment corpus not found at {ENVS} (checked out without ../shared?)")
    return ENVS


def load(envs: Path, name: str) -> ParsedSpec:
    return load_spec_file(envs / name, file=name)


def test_table_covers_the_corpus(envs: Path) -> None:
    present = sorted(p.name for p in envs.iterdir() if p.suffix in (".yaml", ".yml"))
    assert present == sorted(EXPECTED)
    assert len(present) == 77


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_file(envs: Path, name: str) -> None:
    expected = EXPECTED[name]
    if expected == OK:
        parsed = load(envs, name)
        spec = parsed.spec
        assert spec_from_canonical(spec.canonical(), name=spec.name) == spec
        for dep in spec.dependencies:
            MatchSpec(dep.text)  # the normalized text still parses
        assert all(isinstance(w, str) and "\n" not in w for w in parsed.warnings)
        return
    reason, line = expected
    with pytest.raises(SpecError) as caught:
        load(envs, name)
    assert (caught.value.reason, caught.value.line) == (reason, line)
    assert str(caught.value).startswith(f"{name}:{line}: ")


# Spot checks that the features SOURCES.md lists come out as intended.
FEATURES = [
    (
        "conda-lock__test-env-filter-platform.yaml",
        lambda s: (
            s.dependencies_for("osx-arm64") == ["clang_osx-arm64", "python <3.11"]
            and s.platforms == ("linux-64", "osx-64", "osx-arm64")
        ),
        "comment-selectors",
    ),
    (
        "conda-lock__test-pip-with-platform-selector.yaml",
        lambda s: s.pip_for("linux-64") == ["psutil"] and s.pip_for("osx-arm64") == [],
        "pip-selector",
    ),
    ("mamba__env_2-sel.yaml", lambda s: s.dependencies_for("win-64") == ["test1-win", "test4"], "sel-keys"),
    ("conda-lock__gdal.yaml", lambda s: "python >=3.8,<3.9" in s.dependencies_for("linux-64"), "spaced-range"),
    (
        "conda__environment_host_port.yaml",
        lambda s: s.dependencies_for("linux-64") == ["https://104.17.92.24:443::flask =1.0.2"],
        "url-channel-prefix",
    ),
    (
        "pangeo__pytorch-notebook.yaml",
        lambda s: "pytorch >=2.7.0=cuda12*" in s.dependencies_for("linux-64"),
        "build-string",
    ),
    (
        "conda-lock__test-environment-blas-mkl.yaml",
        lambda s: "blas[build=mkl]" in s.dependencies_for("linux-64"),
        "bracket-build",
    ),
    ("pangeo__base-notebook.yaml", lambda s: s.channels == ("conda-forge",), "nodefaults"),
    ("conda__docs.yaml", lambda s: "pillow ==12.3.0" in s.dependencies_for("linux-64"), "lower-cased"),
    ("conda__empty_deps.yaml", lambda s: s.dependencies == () and s.pip == (), "null-deps"),
    ("rattler__variables.yaml", lambda s: s.variables == (("MY_ENV_VAR", "My Value"),), "variables"),
    ("lightning__environment.yaml", lambda s: s.name == "lightning", "multi-line-name"),
    (
        "conda-lock__test-pip-full-url.yaml",
        lambda s: s.pip_for("linux-64")[0].startswith("requests @ https://github.com/"),
        "direct-reference",
    ),
    (
        "conda-lock__test-git-tag.yaml",
        lambda s: s.pip_for("linux-64") == ["git+https://github.com/pydantic/pydantic@v2.0b2"],
        "vcs-reference",
    ),
]


@pytest.mark.parametrize(("name", "check"), [(n, c) for n, c, _ in FEATURES], ids=[i for _, _, i in FEATURES])
def test_feature(envs: Path, name: str, check: Callable[[Spec], bool]) -> None:
    assert check(load(envs, name).spec)
