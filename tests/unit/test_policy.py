"""The policy: parsing files, merging layers, judging licences and checking real records.

Records are the real conda-forge and Anaconda ``defaults`` records of ../shared/realdata
(their ``license`` fields are what upstream wrote), read with rattler as a solve gives them.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from rattler import Channel, RepoData

from condaops.reconciler.build.channels import channel_urls
from condaops.reconciler.model import PolicyFile
from condaops.reconciler.policy.check import CheckedRecord, check_policy, checked_record
from condaops.reconciler.policy.findings import report_from_json, report_json, summary
from condaops.reconciler.policy.licenses import judge_license
from condaops.reconciler.policy.load import parse_policy_bytes, source_policies
from condaops.reconciler.policy.rules import (
    LicenseRule,
    PolicyFileError,
    Rules,
    merge,
    parse_size,
    rules_from_json,
)
from tests.support.fixtures import require_realdata

ALIAS = "https://conda.anaconda.org/"


def records(channel: str, subdir: str = "linux-64", canonical: str = "https://conda.anaconda.org/conda-forge"):  # type: ignore[no-untyped-def]
    path = require_realdata() / "channel" / channel / subdir / "repodata.json"
    return RepoData.from_path(str(path)).into_repo_data(Channel(canonical))


def doc(text: str, origin: str = "condaops-policy.yaml"):  # type: ignore[no-untyped-def]
    return parse_policy_bytes(text.encode(), origin=origin, resolve=lambda name: channel_urls(name, ALIAS))


def rules(text: str) -> Rules:
    return merge([], doc(text), None)


# --- parsing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("bogus: 1", "key 'bogus': unknown key"),
        ("channels: [conda-forge]", "key 'channels': expected a mapping"),
        ("channels: {level: error}", "key 'channels.allowed': is required"),
        ("packages: {deny: [{reason: x}]}", "key 'packages.deny[0].spec': is required"),
        ("packages: {deny: ['openssl <<3']}", "key 'packages.deny[0].spec': 'openssl <<3' is not a match spec"),
        ("packages: {require: [{spec: x, level: fatal}]}", "key 'packages.require[0].level': expected one of"),
        ("licenses: {unknown: maybe}", "key 'licenses.unknown': expected one of error, warning, ignore"),
        ("licenses: {deny: [1]}", "key 'licenses.deny': expected a list of non-empty strings"),
        ("size: {max: lots}", "key 'size.max': expected a size"),
        ("channels: {allowed: [a]\n", "not valid YAML (line 2)"),
        ("- a\n- b\n", "expected a mapping"),
    ],
    ids=["unknown-key", "channels-list", "no-allowed", "no-spec", "bad-spec", "bad-level", "bad-unknown",
         "non-string", "bad-size", "yaml", "not-mapping"],
)  # fmt: skip
def test_invalid_files_name_file_and_key(text: str, expected: str) -> None:
    with pytest.raises(PolicyFileError) as err:
        doc(text, origin="science/condaops-policy.yaml")
    assert str(err.value).startswith("science/condaops-policy.yaml: ")
    assert expected in str(err.value)


def test_sizes() -> None:
    assert parse_size("2 GiB") == 2 * 1024**3
    assert parse_size("500MB") == 500 * 1000**2
    assert parse_size(1234) == 1234
    assert parse_size("0") is None and parse_size(True) is None and parse_size("5 parsecs") is None


def test_rules_round_trip_as_canonical_json() -> None:
    r = rules(
        "channels: {allowed: [conda-forge]}\npackages: {deny: [{spec: 'openssl <3', reason: EOL}], require: [tzdata]}"
        "\nlicenses: {deny: ['GPL-*']}\nsize: {max: 1 GB, level: warning}"
    )
    assert r.channels[0].allowed == ("https://conda.anaconda.org/conda-forge",)
    assert rules_from_json(r.to_json()) == r
    assert r.to_json() == rules_from_json(r.to_json()).to_json()


def test_namespace_file_replaces_root_sections_and_site_rules_always_apply() -> None:
    site = doc("licenses: {deny: [AGPL-3.0-only]}", origin="site policy /etc/site.yaml")
    root = doc("licenses: {deny: ['GPL-3.0-only']}\npackages: {deny: ['openssl <3']}")
    ns = doc("licenses: {deny: []}", origin="science/condaops-policy.yaml")
    merged = merge([site], root, ns)
    assert [x.origin for x in merged.licenses] == ["site policy /etc/site.yaml", "science/condaops-policy.yaml"]
    assert merged.licenses[1].deny == ()
    assert [p.spec for p in merged.packages] == ["openssl <3"]  # not mentioned by the namespace: inherited


def test_invalid_and_duplicate_files_are_problems_per_scope() -> None:
    files = [
        PolicyFile("condaops-policy.yaml", b"licenses: {deny: [MIT]}"),
        PolicyFile("science/condaops-policy.yaml", b"bogus: 1"),
        PolicyFile("ops/condaops-policy.yaml", b"{}"),
        PolicyFile("ops/condaops-policy.yml", b"{}"),
        PolicyFile("hr/condaops-policy.yaml", problem="cannot be read (Permission denied)"),
    ]
    docs, problems = source_policies(files, resolve=lambda name: [name])
    assert set(docs) == {""}
    assert problems["science"].startswith("science/condaops-policy.yaml: key 'bogus'")
    assert "second policy file" in problems["ops"]
    assert problems["hr"] == "hr/condaops-policy.yaml: cannot be read (Permission denied)"


# --- licences -----------------------------------------------------------------------------


def lic(allow: tuple[str, ...] = (), deny: tuple[str, ...] = (), unknown: str = "warning") -> LicenseRule:
    return LicenseRule(allow, deny, unknown, "error", "p.yaml")


@pytest.mark.parametrize(
    ("licence", "rule", "expected"),
    [
        ("MIT", lic(allow=("MIT",)), None),
        ("mit", lic(allow=("MIT",)), None),
        ("Apache-2.0", lic(allow=("MIT",)), "license-allow"),
        ("GPL-3.0-only", lic(deny=("GPL-3.0-only",)), "license-deny"),
        ("GPL-3.0-only", lic(deny=("GPL-*",)), "license-deny"),
        ("GPL-3.0-only WITH GCC-exception-3.1", lic(deny=("GPL-3.0-only",)), None),
        ("GPL-3.0-only WITH GCC-exception-3.1", lic(deny=("* WITH GCC-exception-3.1",)), "license-deny"),
        ("GPL-3.0-only WITH GCC-exception-3.1", lic(allow=("GPL-3.0-only",)), None),
        ("X11 AND BSD-3-Clause", lic(allow=("X11", "BSD-3-Clause")), None),
        ("X11 AND BSD-3-Clause", lic(allow=("BSD-3-Clause",)), "license-allow"),
        ("MIT OR GPL-3.0-only", lic(deny=("GPL-3.0-only",)), None),
        ("MIT OR GPL-3.0-only", lic(allow=("GPL-3.0-only",)), None),
        ("LGPL-2.1 and GPL-2.0", lic(deny=("GPL-2.0-only",)), "license-deny"),
        ("LicenseRef-Public-Domain", lic(allow=("LicenseRef-*",)), None),
        ("PSF", lic(allow=("MIT",)), "license-unknown"),
        ("PSF", lic(allow=("PSF",)), None),
        ("Public-Domain (http://www.sqlite.org/copyright.html)", lic(), "license-unknown"),
        (None, lic(), "license-unknown"),
        ("None", lic(unknown="ignore"), None),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_license_judgement(licence: str | None, rule: LicenseRule, expected: str | None) -> None:
    finding = judge_license(licence, rule)
    assert (finding.rule if finding else None) == expected


# --- checking real records ----------------------------------------------------------------


def test_real_conda_forge_records_against_a_licence_deny_list() -> None:
    solved = {
        "linux-64": [
            r
            for r in records("conda-forge-py312-deps")
            if r.name.normalized in {"readline", "libgcc", "openssl", "_libgcc_mutex"}
        ]
    }
    found = check_policy(solved, rules("licenses: {deny: ['GPL-3.0-only'], unknown: warning}"))
    lines = sorted(f"{v.level} {v.rule} {v.package}" for v in found)
    assert lines == [
        "error license-deny readline 8.2 h8c095d6_2",
        "warning license-unknown _libgcc_mutex 0.1 conda_forge",
    ]
    assert summary(found).startswith("condaops-policy.yaml: license-deny: readline 8.2 h8c095d6_2: licence")
    assert report_from_json(report_json(found)) == found


def test_denied_versions_required_pins_channels_and_size() -> None:
    linux = list(records("conda-forge-py312-deps"))
    text = (
        "channels: {allowed: [pkgs/main]}\n"
        "packages:\n  deny: [{spec: 'openssl <3.4', reason: 'CVE-2024-0001', level: warning}]\n"
        "  require: ['openssl >=3.5', {spec: tzdata, reason: 'time zones'}]\n"
        "size: {max: 1 MB}\n"
    )
    found = check_policy({"linux-64": linux}, rules(text))
    by_rule = {}
    for v in found:
        by_rule.setdefault(v.rule, []).append(v)
    assert len(by_rule["channels"]) == len(linux)
    assert by_rule["deny"][0].level == "warning" and "CVE-2024-0001" in by_rule["deny"][0].message
    assert [v.message for v in by_rule["require"]] == [
        "the environment has openssl 3.3.1 h4ab18f5_1, not required 'openssl >=3.5'",
        "the environment has no package matching required 'tzdata' (time zones)",
    ]
    assert by_rule["max-size"][0].message.startswith("packages total ")


@pytest.mark.parametrize(
    "text",
    [
        "channels: {allowed: [conda-forge]}\nsize: {max: 1 MB}\n",
        "packages:\n  deny: ['openssl <3.4', 'conda-forge::readline', 'ncurses[build_number=0]',\n"
        "         'zlib[subdir=linux-64]']\n",
        "packages:\n  require: ['openssl >=3.5', 'python[subdir=linux-64]', tzdata]\n",
        "licenses: {allow: ['BSD-*', MIT], deny: ['GPL-*'], unknown: warning}\n",
    ],
    ids=["channels-size", "deny", "require", "licences"],
)
def test_checked_records_give_the_findings_of_rattlers_records(text: str) -> None:
    """What a review's solve cache keeps of each record checks exactly as the record does."""
    real = {"linux-64": list(records("conda-forge-py312-deps"))}
    kept = {p: [checked_record(r) for r in recs] for p, recs in real.items()}
    assert all(isinstance(r, CheckedRecord) for r in kept["linux-64"])
    found = check_policy(real, rules(text))
    assert found and check_policy(kept, rules(text)) == found


def test_old_defaults_records_with_free_text_licences() -> None:
    old = records("defaults-2021-py27-flask", canonical="https://repo.anaconda.com/pkgs/main")
    found = check_policy({"linux-64": old}, rules("licenses: {allow: ['BSD-*', MIT, ISC, PSF], unknown: error}"))
    unknown = sorted(v.package.split()[0] for v in found if v.rule == "license-unknown")
    assert "libstdcxx-ng" in unknown and "python" not in unknown  # PSF is allowed by its text
    assert all(v.level == "error" for v in found)


def test_invalid_policy_is_a_blocking_finding() -> None:
    found = check_policy({}, replace(Rules(), invalid=("science/condaops-policy.yaml: key 'bogus': unknown key",)))
    assert [(v.rule, v.origin, v.blocking) for v in found] == [("invalid", "science/condaops-policy.yaml", True)]
