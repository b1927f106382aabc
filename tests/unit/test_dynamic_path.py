"""Dynamic image names read as conda match specs (registry/dynamic_path.py)."""

from __future__ import annotations

import pytest

from condaops.registry.dynamic_path import is_dynamic_name, parse_component, parse_dynamic_name
from condaops.registry.errors import NAME_INVALID, RegistryError
from condaops.registry.protocol import check_name


@pytest.mark.parametrize(
    ("name", "specs", "canonical"),
    [
        ("dynamic/numpy", ("numpy",), "dynamic/numpy"),
        ("dynamic/numpy/scipy.gt.1.0", ("numpy", "scipy >1.0"), "dynamic/numpy/scipy.gt.1.0"),
        ("dynamic/scipy.gt.1.0/numpy", ("numpy", "scipy >1.0"), "dynamic/numpy/scipy.gt.1.0"),
        ("dynamic/python.ge.3.11", ("python >=3.11",), "dynamic/python.ge.3.11"),
        ("dynamic/numpy.lt.2", ("numpy <2",), "dynamic/numpy.lt.2"),
        ("dynamic/scipy.le.1.13", ("scipy <=1.13",), "dynamic/scipy.le.1.13"),
        ("dynamic/tool.eq.1.0", ("tool ==1.0",), "dynamic/tool.eq.1.0"),
        ("dynamic/numpy.lt.2.ge.1.20", ("numpy >=1.20,<2",), "dynamic/numpy.ge.1.20.lt.2"),
        ("dynamic/numpy.lt.2/numpy.ge.1.20", ("numpy >=1.20,<2",), "dynamic/numpy.ge.1.20.lt.2"),
        ("dynamic/numpy/numpy.ge.1/numpy.ge.1", ("numpy >=1",), "dynamic/numpy.ge.1"),
        ("dynamic/tool/tool", ("tool",), "dynamic/tool"),
        ("dynamic/ruamel.yaml.ge.0.17", ("ruamel.yaml >=0.17",), "dynamic/ruamel.yaml.ge.0.17"),
        ("dynamic/scikit-learn/libgcc-ng", ("libgcc-ng", "scikit-learn"), "dynamic/libgcc-ng/scikit-learn"),
        ("dynamic/openssl.eq.3.0.13", ("openssl ==3.0.13",), "dynamic/openssl.eq.3.0.13"),
        ("dynamic/pip.ge.24.0.post1", ("pip >=24.0.post1",), "dynamic/pip.ge.24.0.post1"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_names_become_sorted_match_specs(name: str, specs: tuple[str, ...], canonical: str) -> None:
    request = parse_dynamic_name(name, max_packages=10)
    assert request.match_specs == specs
    assert request.canonical_name == canonical
    assert check_name(canonical) == canonical  # a valid repository name itself
    assert parse_dynamic_name(canonical, max_packages=10) == request


def test_every_order_is_the_same_request() -> None:
    parts = ["tool.eq.1.0", "libtool-data", "python.ge.3.11", "numpy.lt.2"]
    first = parse_dynamic_name("dynamic/" + "/".join(parts), max_packages=10)
    assert parse_dynamic_name("dynamic/" + "/".join(reversed(parts)), max_packages=10) == first
    assert parse_dynamic_name("dynamic/" + "/".join(sorted(parts)), max_packages=10) == first


@pytest.mark.parametrize(
    ("component", "named"),
    [
        ("numpy.gte.1.0", "numpy.gte.1.0"),  # unknown operator word
        ("numpy.ne.2", "numpy.ne.2"),
        ("numpy.1.26", "numpy.1.26"),  # version without an operator
        ("numpy.ge.", "numpy.ge."),  # no version
        (".ge.1", ".ge.1"),  # no package
        ("NumPy", "NumPy"),  # not lowercase
    ],
    ids=lambda v: v,
)
def test_a_bad_component_is_named_with_the_operators(component: str, named: str) -> None:
    with pytest.raises(RegistryError) as caught:
        parse_component(component)
    assert caught.value.code == NAME_INVALID
    assert f"'{named}'" in caught.value.message
    for word in (".gt.", ".ge.", ".lt.", ".le.", ".eq."):
        assert word in caught.value.message
    assert caught.value.detail["component"] == component  # type: ignore[index]


def test_a_bad_component_inside_a_name_is_refused() -> None:
    with pytest.raises(RegistryError, match=r"'tool\.gte\.1' is not <package>"):
        parse_dynamic_name("dynamic/numpy/tool.gte.1", max_packages=10)


@pytest.mark.parametrize("name", ["dynamic", "dynamic/"], ids=["bare", "slash"])
def test_no_packages_is_refused(name: str) -> None:
    with pytest.raises(RegistryError, match="names no packages") as caught:
        parse_dynamic_name(name, max_packages=10)
    assert caught.value.code == NAME_INVALID


def test_more_packages_than_allowed_is_refused_counting_distinct_packages() -> None:
    assert parse_dynamic_name("dynamic/a/b/a.ge.1", max_packages=2).match_specs == ("a >=1", "b")
    with pytest.raises(RegistryError, match=r"3 packages.*at most 2 \(dynamic.max_packages\)") as caught:
        parse_dynamic_name("dynamic/a/b/c", max_packages=2)
    assert caught.value.code == NAME_INVALID


@pytest.mark.parametrize(
    ("name", "dynamic"),
    [("dynamic", True), ("dynamic/numpy", True), ("dynamics/numpy", False), ("ns/dynamic", False), ("", False)],
    ids=lambda v: str(v),
)
def test_which_names_are_dynamic(name: str, dynamic: bool) -> None:
    assert is_dynamic_name(name) is dynamic


def test_a_name_outside_the_namespace_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        parse_dynamic_name("ns/env", max_packages=10)
