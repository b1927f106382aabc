"""Loading and validating the Settings tree: files, environment variables, rules, reference."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from rattler import Subdir

from condaops.config import ConfigError, Settings, load_settings
from condaops.config.checks import format_duration, parse_duration
from condaops.config.load import environment_variables
from condaops.config.reference import render_reference

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"

WriteConfig = Callable[..., Path]


@pytest.fixture
def write_config(tmp_path: Path) -> WriteConfig:
    """Factory: write a (dedented) config file under tmp_path and return its path."""

    def write(text: str, name: str = "condaops.yaml") -> Path:
        file = tmp_path / name
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(textwrap.dedent(text), encoding="utf-8")
        return file

    return write


def load(tmp_path: Path, text: str | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Load ``text`` written to tmp_path/condaops.yaml (or no file) with only ``env`` set."""
    file = None
    if text is not None:
        file = tmp_path / "condaops.yaml"
        file.write_text(textwrap.dedent(text), encoding="utf-8")
    return load_settings(file, environ=dict(env or {}), cwd=tmp_path)


def load_error(tmp_path: Path, text: str | None = None, env: Mapping[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text, env)
    return caught.value


# --- defaults and lookup ------------------------------------------------------------------


def test_defaults_without_a_file(tmp_path: Path) -> None:
    settings = load_settings(environ={}, cwd=tmp_path)

    assert settings.config_file is None
    assert settings.store == tmp_path / ".condaops"
    assert settings.platforms == (str(Subdir.current()),)
    assert settings.build.concurrency == 2
    assert settings.channels.default == ("conda-forge",)
    assert settings.sources == ()


def test_environ_defaults_to_the_process_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONDAOPS_PRUNE", "true")

    assert load_settings(cwd=tmp_path).prune is True
    assert load_settings(environ={}, cwd=tmp_path).prune is False


@pytest.mark.parametrize(
    ("given", "variable", "in_cwd", "expected"),
    [
        ("given.yaml", "named.yaml", True, "given.yaml"),
        (None, "named.yaml", True, "named.yaml"),
        (None, "", True, "condaops.yaml"),
        (None, None, True, "condaops.yaml"),
        (None, None, False, None),
        (None, "sub/../named.yaml", False, "named.yaml"),
    ],
    ids=[
        "path-beats-variable",
        "variable-beats-cwd",
        "empty-variable-ignored",
        "cwd-file",
        "none",
        "variable-relative-to-cwd",
    ],
)
def test_lookup_order(
    tmp_path: Path,
    write_config: WriteConfig,
    given: str | None,
    variable: str | None,
    in_cwd: bool,
    expected: str | None,
) -> None:
    for name in ("given.yaml", "named.yaml") + (("condaops.yaml",) if in_cwd else ()):
        write_config("prune: true\n", name)
    env = {} if variable is None else {"CONDAOPS_CONFIG": variable}

    settings = load_settings(Path(given) if given else None, environ=env, cwd=tmp_path)

    assert settings.config_file == (tmp_path / expected if expected else None)


@pytest.mark.parametrize(
    ("given", "env", "named", "fragment"),
    [
        ("missing.yaml", {}, "missing.yaml", "the configuration file given does not exist; fix the path"),
        (
            None,
            {"CONDAOPS_CONFIG": "sub/missing.yaml"},
            "sub/missing.yaml",
            "the configuration file named by CONDAOPS_CONFIG does not exist",
        ),
        ("conf", {}, "conf", "the configuration file given is a folder, not a file"),
    ],
    ids=["given", "variable", "folder"],
)
def test_named_file_must_exist(
    tmp_path: Path, given: str | None, env: dict[str, str], named: str, fragment: str
) -> None:
    (tmp_path / "conf").mkdir()

    with pytest.raises(ConfigError) as caught:
        load_settings(Path(given) if given else None, environ=env, cwd=tmp_path)

    assert caught.value.file == str(tmp_path / named)
    assert str(caught.value).startswith(f"{tmp_path / named}: {fragment}")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("build:\n  concurrency: 2\n concurrency: 3\n", "invalid YAML: line 3, column"),
        ("web: {listen: [::1]:8080}\n", "invalid YAML: line 1, column"),
        ("build:\n  retries: 1\n  retries: 2\n", "line 3, column 3: duplicate key 'retries' (first on line 2)"),
        ("prune: true\nprune: false\n", "line 2, column 1: duplicate key 'prune' (first on line 1)"),
        ("- store: x\n", "the top level must be a mapping of keys such as 'store:', got a list"),
        ("just text\n", "the top level must be a mapping of keys such as 'store:', got string 'just text'"),
    ],
    ids=["bad-indent", "unquoted-ipv6", "duplicate-nested", "duplicate-top", "top-level-list", "top-level-scalar"],
)
def test_unusable_file(tmp_path: Path, text: str, fragment: str) -> None:
    error = load_error(tmp_path, text)

    assert error.file == str(tmp_path / "condaops.yaml")
    assert error.key is None
    assert str(error).startswith(f"{tmp_path / 'condaops.yaml'}: ")
    assert fragment in str(error)


def test_empty_file_means_defaults(tmp_path: Path) -> None:
    settings = load(tmp_path, "# nothing set yet\n")

    assert settings.config_file == tmp_path / "condaops.yaml"
    assert settings.build.concurrency == 2


def test_merge_key_may_be_overridden(tmp_path: Path) -> None:
    text = """\
        sources:
          - &team {git: https://example.org/team.git, branch: dev}
          - <<: *team
            name: team-prod
            branch: prod
    """
    settings = load(tmp_path, text)

    assert [(s.name, s.branch) for s in settings.sources] == [("team", "dev"), ("team-prod", "prod")]


# --- accepted values ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "read", "expected"),
    [
        (
            "build: {backoff: 30s, backoff_max: 1h30m, timeout: 5m}",
            lambda s: (s.build.backoff, s.build.backoff_max, s.build.timeout),
            (30.0, 5400.0, 300.0),
        ),
        (
            "build: {backoff: 1.5, backoff_max: '90', timeout: 2h}",
            lambda s: (s.build.backoff, s.build.backoff_max, s.build.timeout),
            (1.5, 90.0, 7200.0),
        ),
        ("build: {concurrency: 1, retries: 0}", lambda s: (s.build.concurrency, s.build.retries), (1, 0)),
        ("build: {backoff: 5m, backoff_max: 5m}", lambda s: s.build.backoff_max, 300.0),
        ("build:\nweb: ~", lambda s: (s.build.concurrency, s.web.listen), (2, "127.0.0.1:8080")),
        ("web: {listen: '[::1]:8080'}", lambda s: s.web.listen, "[::1]:8080"),
        ("web: {listen: 0.0.0.0:65535}", lambda s: s.web.listen, "0.0.0.0:65535"),
        ("web: {listen: condaops.internal:1}", lambda s: s.web.listen, "condaops.internal:1"),
        ("platforms: [linux-64, osx-arm64, win-64]", lambda s: s.platforms, ("linux-64", "osx-arm64", "win-64")),
        ("prune: true", lambda s: s.prune, True),
        (
            "channels: {default: [conda-forge, bioconda], allowed: [conda-forge]}",
            lambda s: (s.channels.default, s.channels.allowed),
            (("conda-forge", "bioconda"), ("conda-forge",)),
        ),
        (
            "channels:\n  mirrors:\n    https://conda.anaconda.org/conda-forge/: https://mirror.example/cf/",
            lambda s: s.channels.mirrors,
            {"https://conda.anaconda.org/conda-forge": ("https://mirror.example/cf",)},
        ),
        (
            "channels:\n  mirrors:\n    https://repo.example/main: [http://a.example/main/, https://b.example/main]",
            lambda s: s.channels.mirrors,
            {"https://repo.example/main": ("http://a.example/main", "https://b.example/main")},
        ),
        (
            "pip: {index_url: https://pypi.example/simple, extra_index_urls: [https://x.example]}",
            lambda s: (s.pip.index_url, s.pip.extra_index_urls),
            ("https://pypi.example/simple", ("https://x.example",)),
        ),
        (
            "database: postgresql+psycopg://user:pw@db.example/condaops",
            lambda s: s.database,
            "postgresql+psycopg://user:pw@db.example/condaops",
        ),
        ("database: sqlite:////srv/state.db", lambda s: s.database, "sqlite:////srv/state.db"),
        ("database: 'sqlite://'", lambda s: s.database, "sqlite://"),
        ("sources: [{directory: envs/team-a/}]", lambda s: s.sources[0].name, "team-a"),
        ("sources: [{git: https://github.com/org/envs.git}]", lambda s: s.sources[0].name, "envs"),
        ("sources: [{git: 'git@github.com:org/data-envs.git'}]", lambda s: s.sources[0].name, "data-envs"),
        ("sources: [{git: https://example.org/repo/, name: mine}]", lambda s: s.sources[0].name, "mine"),
        (
            "sources: [{directory: a, interval: 2m, polling: false, default_namespace: shared, branch: x}]",
            lambda s: (s.sources[0].interval, s.sources[0].polling, s.sources[0].default_namespace),
            (120.0, False, "shared"),
        ),
        ("sources: [{directory: a}, {directory: b/a, name: a2}]", lambda s: [x.name for x in s.sources], ["a", "a2"]),
    ],
    ids=[
        "duration-text",
        "duration-numbers",
        "lowest-counts",
        "backoff-max-equal",
        "null-sections",
        "listen-ipv6",
        "listen-ipv4",
        "listen-hostname",
        "platforms",
        "prune",
        "channels",
        "mirror-single-string",
        "mirror-list",
        "pip",
        "database-postgres",
        "database-sqlite-absolute",
        "database-sqlite-memory",
        "source-name-from-directory",
        "source-name-from-git-url",
        "source-name-from-scp",
        "source-name-explicit",
        "source-options",
        "source-names-unique",
    ],
)
def test_accepted_values(tmp_path: Path, text: str, read: Callable[[Settings], Any], expected: Any) -> None:
    assert read(load(tmp_path, text + "\n")) == expected


# --- rejected values ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key", "message"),
    [
        ("stor: x", "stor", "unknown key; did you mean 'store'?"),
        ("build: {concurency: 2}", "build.concurency", "unknown key; did you mean 'build.concurrency'?"),
        ("web: {port: 80}", "web.port", "unknown key; the keys of 'web' are: listen"),
        ("zzz: 1", "zzz", "unknown key; the keys of the top level are: store, database, sources"),
        ("build: {concurrency: four}", "build.concurrency", "expected an integer, got string 'four'"),
        ("build: {concurrency: true}", "build.concurrency", "expected an integer, got boolean true"),
        ("build: {retries: 1.5}", "build.retries", "expected an integer, got number 1.5"),
        ("prune: maybe", "prune", "expected a boolean, got string 'maybe'"),
        ("build: 3", "build", "expected a mapping of build keys, got integer 3"),
        ("store: ''", "store", "expected a path, got an empty string"),
        ("store: 5", "store", "expected a path, got integer 5"),
        ("build: {concurrency: 0}", "build.concurrency", "must be between 1 and 1024, got 0"),
        ("build: {retries: -1}", "build.retries", "must be between 0 and 100, got -1"),
        ("web: {page_cache: -1}", "web.page_cache", "must be between 0 and 1000000, got -1"),
        ("build: {backoff: 0}", "build.backoff", "must be between 0.1s and 24h, got 0s"),
        (
            "build: {backoff: soon}",
            "build.backoff",
            "expected a duration, got string 'soon'; use seconds or text such as 30s, 5m, 1h30m",
        ),
        ("build: {backoff: 5m, backoff_max: 30s}", "build.backoff_max", "must be at least build.backoff (5m), got 30s"),
        ("build: {backoff_max: 10}", "build.backoff_max", "must be at least build.backoff (30s), got 10s"),
        ("build: {timeout: 0}", "build.timeout", "must be between 1s and 168h, got 0s"),
        ("build: {timeout: '-5'}", "build.timeout", "must be between 1s and 168h, got -5"),
        ("build: {timeout: .inf}", "build.timeout", "expected a duration, got number inf"),
        ("build: {timeout: 1w}", "build.timeout", "expected a duration, got string '1w'"),
        ("web: {listen: localhost}", "web.listen", "'localhost' is not host:port"),
        ("web: {listen: ':8080'}", "web.listen", "':8080' is not host:port"),
        ("web: {listen: 'localhost:0'}", "web.listen", "port '0' must be a number from 1 to 65535"),
        ("web: {listen: 'localhost:65536'}", "web.listen", "port '65536' must be a number from 1 to 65535"),
        ("web: {listen: 'localhost:http'}", "web.listen", "port 'http' must be a number from 1 to 65535"),
        ("web: {listen: '::1:8080'}", "web.listen", "put the IPv6 address in brackets, like [::1]:8080"),
        ("web: {listen: '[nope]:8080'}", "web.listen", "'[nope]' is not an IPv6 address"),
        ("web: {listen: '300.0.0.1:80'}", "web.listen", "'300.0.0.1' is not an IPv4 address"),
        ("web: {listen: 'bad_host:80'}", "web.listen", "'bad_host' is not a host name or IP address"),
        ("web: {listen: 8080}", "web.listen", "expected a string, got integer 8080"),
        ("platforms: [linux-64, linux-65]", "platforms[1]", "unknown platform 'linux-65'; did you mean 'linux-64'?"),
        ("platforms: [noarch]", "platforms[0]", "'noarch' cannot be locked for"),
        ("platforms: []", "platforms", "must list at least one entry"),
        ("platforms: linux-64", "platforms", "expected a list of platforms, got string 'linux-64'"),
        ("database: not a url", "database", "is not a SQLAlchemy URL"),
        ("database: postgres://u@h/db", "database", "unknown database kind 'postgres'"),
        ("channels: {default: []}", "channels.default", "must list at least one entry"),
        (
            "channels: {default: conda-forge}",
            "channels.default",
            "expected a list of strings, got string 'conda-forge'",
        ),
        ("channels: {allowed: [conda-forge, 1]}", "channels.allowed[1]", "expected a string, got integer 1"),
        (
            "channels: {mirrors: [https://m.example]}",
            "channels.mirrors",
            "expected a mapping of channel URL to list of mirror URLs, got a list",
        ),
        (
            "channels: {mirrors: {conda-forge: https://m.example/cf}}",
            'channels.mirrors["conda-forge"]',
            "must be a channel URL, such as https://conda.anaconda.org/conda-forge",
        ),
        (
            "channels: {mirrors: {'https://c.example/x': 'file:///srv/mirror'}}",
            'channels.mirrors["https://c.example/x"]',
            "mirror 'file:///srv/mirror' must be an http:// or https:// URL",
        ),
        (
            "channels: {mirrors: {'https://c.example/x': []}}",
            'channels.mirrors["https://c.example/x"]',
            "expected a mirror URL or a non-empty list of them, got a list",
        ),
        (
            "channels: {mirrors: {'https://c.example/x': [3]}}",
            'channels.mirrors["https://c.example/x"]',
            "expected a mirror URL or a non-empty list of them",
        ),
        (
            "channels: {mirrors: {'https://c.example/x': 'https://m.example',\n"
            "                      'https://c.example/x/': 'https://n.example'}}",
            'channels.mirrors["https://c.example/x/"]',
            "'https://c.example/x' is listed twice",
        ),
        ("sources: {directory: envs}", "sources", "expected a list of sources, got a mapping"),
        ("sources: [envs]", "sources[0]", "expected a mapping with 'directory' or 'git', got string 'envs'"),
        (
            "sources: [{directory: a, git: https://x.example/b.git}]",
            "sources[0]",
            "set exactly one of 'directory' and 'git'; both are set",
        ),
        ("sources: [{branch: main}]", "sources[0]", "set exactly one of 'directory' and 'git'"),
        (
            "sources: [{directory: a}, {directory: b/a}]",
            "sources[1].name",
            "'a' is already the name of sources[0]; give each source its own 'name'",
        ),
        ("sources: [{directory: a, branches: x}]", "sources[0].branches", "did you mean 'sources[0].branch'?"),
        (
            "sources: [{directory: a, default_namespace: team/x}]",
            "sources[0].default_namespace",
            "'team/x' contains a slash",
        ),
        ("sources: [{directory: a, name: 'my envs'}]", "sources[0].name", "'my envs' is not a valid name"),
        ("sources: [{directory: /}]", "sources[0].name", "(derived from 'directory'); set 'name'"),
        ("sources: [{directory: a, interval: 0}]", "sources[0].interval", "must be between 0.1s and 168h, got 0s"),
        (
            "sources: [{directory: a, polling: sometimes}]",
            "sources[0].polling",
            "expected a boolean or null, got string 'sometimes'",
        ),
    ],
    ids=[
        "unknown-top",
        "unknown-nested",
        "unknown-no-match",
        "unknown-top-no-match",
        "int-from-string",
        "int-from-bool",
        "int-from-float",
        "bool-from-string",
        "section-not-mapping",
        "store-empty",
        "store-int",
        "concurrency-0",
        "retries-negative",
        "page-cache-negative",
        "backoff-0",
        "backoff-text",
        "backoff-max-below-backoff",
        "backoff-max-below-default",
        "timeout-0",
        "timeout-negative-text",
        "timeout-inf",
        "timeout-weeks",
        "listen-no-port",
        "listen-no-host",
        "listen-port-0",
        "listen-port-high",
        "listen-port-name",
        "listen-ipv6-bare",
        "listen-ipv6-bad",
        "listen-ipv4-bad",
        "listen-host-bad",
        "listen-int",
        "platform-unknown",
        "platform-noarch",
        "platforms-empty",
        "platforms-string",
        "database-garbage",
        "database-dialect",
        "channels-default-empty",
        "channels-default-string",
        "channels-allowed-item",
        "mirrors-list",
        "mirrors-key-name",
        "mirrors-file-url",
        "mirrors-empty",
        "mirrors-not-str",
        "mirrors-duplicate",
        "sources-mapping",
        "source-string",
        "source-both",
        "source-neither",
        "source-duplicate-name",
        "source-unknown-key",
        "source-namespace",
        "source-name-invalid",
        "source-name-derived-invalid",
        "source-interval",
        "source-polling",
    ],
)
def test_rejected_values(tmp_path: Path, text: str, key: str, message: str) -> None:
    error = load_error(tmp_path, text + "\n")

    assert error.key == key
    assert error.file == str(tmp_path / "condaops.yaml")
    assert str(error).startswith(f"{tmp_path / 'condaops.yaml'}: key '{key}': ")
    assert message in str(error)


def test_database_password_is_not_repeated(tmp_path: Path) -> None:
    error = load_error(tmp_path, "database: postgresql://user:s3cret@db:notaport/condaops\n")

    assert error.key == "database"
    assert "s3cret" not in str(error)


def test_all_problems_are_reported_at_once(tmp_path: Path) -> None:
    text = "build: {concurrency: 0, timeout: never}\nweb: {listen: nowhere}\n"

    error = load_error(tmp_path, text, {"CONDAOPS_PRUNE": "maybe", "CONDAOPS_WEBB__LISTEN": "x"})

    assert error.file == str(tmp_path / "condaops.yaml")
    assert error.key is None  # several keys: each is named on its own line
    assert str(error).splitlines() == [
        f"{tmp_path / 'condaops.yaml'}: 5 problems in the configuration; fix each:",
        "  unknown environment variable CONDAOPS_WEBB__LISTEN; did you mean CONDAOPS_WEB__LISTEN?",
        "  key 'build.concurrency': must be between 1 and 1024, got 0",
        "  key 'build.timeout': expected a duration, got string 'never'; use seconds or text such as 30s, 5m, 1h30m",
        "  key 'prune': expected a boolean, got string 'maybe' (set by CONDAOPS_PRUNE)",
        "  key 'web.listen': 'nowhere' is not host:port, such as 127.0.0.1:8080 or [::1]:8080",
    ]


def test_bad_list_items_are_each_reported(tmp_path: Path) -> None:
    error = load_error(tmp_path, "platforms: [linux-65, noarch]\n")

    lines = str(error).splitlines()
    assert len(lines) == 3
    assert lines[1].startswith("  key 'platforms[0]': unknown platform 'linux-65'")
    assert lines[2].startswith("  key 'platforms[1]': 'noarch' cannot be locked for")


# --- environment variables ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "read", "expected"),
    [
        ({"CONDAOPS_STORE": "/srv/condaops"}, lambda s: s.store, Path("/srv/condaops")),
        (
            {"CONDAOPS_DATABASE": "postgresql+psycopg://u:p#1@db/condaops"},
            lambda s: s.database,
            "postgresql+psycopg://u:p#1@db/condaops",
        ),
        ({"CONDAOPS_PRUNE": "true"}, lambda s: s.prune, True),
        ({"CONDAOPS_PRUNE": "false"}, lambda s: s.prune, False),
        ({"CONDAOPS_BUILD__CONCURRENCY": "4"}, lambda s: s.build.concurrency, 4),
        ({"CONDAOPS_BUILD__BACKOFF": "2m"}, lambda s: s.build.backoff, 120.0),
        ({"CONDAOPS_BUILD__TIMEOUT": "90"}, lambda s: s.build.timeout, 90.0),
        ({"CONDAOPS_WEB__LISTEN": "0.0.0.0:9000"}, lambda s: s.web.listen, "0.0.0.0:9000"),
        ({"CONDAOPS_WEB__LISTEN": "[::]:9000"}, lambda s: s.web.listen, "[::]:9000"),
        (
            {"CONDAOPS_CHANNELS__DEFAULT": "conda-forge,bioconda"},
            lambda s: s.channels.default,
            ("conda-forge", "bioconda"),
        ),
        (
            {"CONDAOPS_CHANNELS__DEFAULT": " conda-forge , bioconda ,"},
            lambda s: s.channels.default,
            ("conda-forge", "bioconda"),
        ),
        (
            {"CONDAOPS_CHANNELS__DEFAULT": "[conda-forge, bioconda]"},
            lambda s: s.channels.default,
            ("conda-forge", "bioconda"),
        ),
        ({"CONDAOPS_CHANNELS__ALLOWED": "conda-forge"}, lambda s: s.channels.allowed, ("conda-forge",)),
        (
            {"CONDAOPS_CHANNELS__MIRRORS": '{"https://c.example/cf/": "https://m.example/cf/"}'},
            lambda s: s.channels.mirrors,
            {"https://c.example/cf": ("https://m.example/cf",)},
        ),
        ({"CONDAOPS_PLATFORMS": "linux-64,osx-arm64"}, lambda s: s.platforms, ("linux-64", "osx-arm64")),
        (
            {"CONDAOPS_PIP__INDEX_URL": "https://pypi.example/simple"},
            lambda s: s.pip.index_url,
            "https://pypi.example/simple",
        ),
        (
            {"CONDAOPS_SOURCES": '[{"directory": "/srv/envs", "branch": "x"}]'},
            lambda s: (s.sources[0].name, s.sources[0].directory),
            ("envs", Path("/srv/envs")),
        ),
        (
            {"CONDAOPS_SOURCES": "- git: https://example.org/team.git\n  branch: prod\n"},
            lambda s: (s.sources[0].name, s.sources[0].branch),
            ("team", "prod"),
        ),
        ({"CONDAOPS_CONFIG": ""}, lambda s: s.config_file, None),
    ],
    ids=[
        "store",
        "database-verbatim",
        "bool-true",
        "bool-false",
        "int",
        "duration",
        "duration-seconds",
        "listen",
        "listen-ipv6-unquoted",
        "list-comma",
        "list-comma-spaces",
        "list-yaml",
        "list-one",
        "mirrors-json",
        "platforms",
        "optional-string",
        "sources-json",
        "sources-yaml",
        "config-variable-empty",
    ],
)
def test_environment_values(
    tmp_path: Path, env: dict[str, str], read: Callable[[Settings], Any], expected: Any
) -> None:
    assert read(load(tmp_path, env=env)) == expected


def test_environment_wins_over_file_and_keeps_its_siblings(tmp_path: Path) -> None:
    text = "build: {concurrency: 2, retries: 7}\nprune: true\nweb: {listen: 'a:1'}\n"
    env = {"CONDAOPS_BUILD__CONCURRENCY": "5", "CONDAOPS_PRUNE": "false", "CONDAOPS_WEB__LISTEN": ""}

    settings = load(tmp_path, text, env)

    assert (settings.build.concurrency, settings.build.retries) == (5, 7)
    assert settings.prune is False
    assert settings.web.listen == "a:1"  # an empty variable is ignored


def test_environment_fills_a_section_the_file_left_null(tmp_path: Path) -> None:
    settings = load(tmp_path, "build:\n", {"CONDAOPS_BUILD__RETRIES": "0"})

    assert settings.build.retries == 0


@pytest.mark.parametrize(
    ("env", "key", "message"),
    [
        (
            {"CONDAOPS_BUILD__CONCURENCY": "2"},
            None,
            "unknown environment variable CONDAOPS_BUILD__CONCURENCY; did you mean CONDAOPS_BUILD__CONCURRENCY?",
        ),
        ({"CONDAOPS_BUILD_CONCURRENCY": "2"}, None, "did you mean CONDAOPS_BUILD__CONCURRENCY?"),
        ({"CONDAOPS_ZZZ": "2"}, None, "unknown environment variable CONDAOPS_ZZZ; unset it or see"),
        (
            {"CONDAOPS_BUILD": "{concurrency: 2}"},
            None,
            "CONDAOPS_BUILD names a section; set its keys one by one, like CONDAOPS_BUILD__<KEY>",
        ),
        ({"CONDAOPS_SOURCES__NAME": "x"}, None, "unknown environment variable CONDAOPS_SOURCES__NAME"),
        ({"CONDAOPS_CONFIG_FILE": "x"}, None, "unknown environment variable CONDAOPS_CONFIG_FILE"),
        (
            {"CONDAOPS_BUILD__CONCURRENCY": "0"},
            "build.concurrency",
            "must be between 1 and 1024, got 0 (set by CONDAOPS_BUILD__CONCURRENCY)",
        ),
        (
            {"CONDAOPS_BUILD__CONCURRENCY": "many"},
            "build.concurrency",
            "expected an integer, got string 'many' (set by CONDAOPS_BUILD__CONCURRENCY)",
        ),
        ({"CONDAOPS_PRUNE": "maybe"}, "prune", "expected a boolean, got string 'maybe' (set by CONDAOPS_PRUNE)"),
        ({"CONDAOPS_WEB__LISTEN": "localhost"}, "web.listen", "(set by CONDAOPS_WEB__LISTEN)"),
        ({"CONDAOPS_PLATFORMS": "linux-64,noarch"}, "platforms[1]", "(set by CONDAOPS_PLATFORMS)"),
        ({"CONDAOPS_SOURCES": "[{directory: a"}, "sources", "invalid YAML: line 1"),
        (
            {"CONDAOPS_SOURCES": "[{directory: a}, {directory: b/a}]"},
            "sources[1].name",
            "is already the name of sources[0]; give each source its own 'name' (set by CONDAOPS_SOURCES)",
        ),
        (
            {"CONDAOPS_BUILD__BACKOFF_MAX": "1s"},
            "build.backoff_max",
            "must be at least build.backoff (30s), got 1s (set by CONDAOPS_BUILD__BACKOFF_MAX)",
        ),
    ],
    ids=[
        "unknown-typo",
        "unknown-single-underscore",
        "unknown-no-match",
        "section-as-a-whole",
        "sources-nested",
        "config-file-not-a-key",
        "rule",
        "type",
        "bool",
        "listen",
        "list-item",
        "sources-yaml",
        "sources-duplicate",
        "cross-check",
    ],
)
def test_environment_problems(tmp_path: Path, env: dict[str, str], key: str | None, message: str) -> None:
    error = load_error(tmp_path, "prune: false\n", env)

    assert error.key == key
    assert error.file is None  # the file is fine; the variable is named instead
    if key:
        assert str(error).startswith(f"key '{key}': ")
    else:
        assert next(iter(env)) in str(error)
    assert message in str(error)


def test_every_key_has_one_variable() -> None:
    variables = environment_variables()

    assert variables["CONDAOPS_STORE"][0] == "store"
    assert variables["CONDAOPS_BUILD__BACKOFF_MAX"][0] == "build.backoff_max"
    assert variables["CONDAOPS_SOURCES"][0] == "sources"
    assert "CONDAOPS_CONFIG_FILE" not in variables
    assert not any(name.startswith("CONDAOPS_SOURCES__") for name in variables)


# --- paths --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "read", "expected"),
    [
        ("", lambda s: s.store, lambda t: t / "conf/.condaops"),
        ("store: data", lambda s: s.store, lambda t: t / "conf/data"),
        ("store: ../data", lambda s: s.store, lambda t: t / "data"),
        ("store: /srv/condaops", lambda s: s.store, lambda t: Path("/srv/condaops")),
        ("store: ~/condaops", lambda s: s.store, lambda t: t / "home/condaops"),
        ("sources: [{directory: envs}]", lambda s: s.sources[0].directory, lambda t: t / "conf/envs"),
        (
            "sources: [{directory: .}]",
            lambda s: (s.sources[0].directory, s.sources[0].name),
            lambda t: (t / "conf", "conf"),
        ),
        (
            "sources: [{git: ../repo.git}]",
            lambda s: (s.sources[0].git, s.sources[0].name),
            lambda t: (str(t / "repo.git"), "repo"),
        ),
        ("sources: [{git: 'file:///srv/repo.git'}]", lambda s: s.sources[0].git, lambda t: "file:///srv/repo.git"),
        (
            "database: sqlite:///state/condaops.db",
            lambda s: s.database,
            lambda t: f"sqlite:///{t}/conf/state/condaops.db",
        ),
    ],
    ids=[
        "default-store",
        "store-relative",
        "store-parent",
        "store-absolute",
        "store-home",
        "directory-relative",
        "directory-dot",
        "git-local-relative",
        "git-url-untouched",
        "sqlite-relative",
    ],
)
def test_relative_paths_follow_the_config_file(
    tmp_path: Path,
    write_config: WriteConfig,
    monkeypatch: pytest.MonkeyPatch,
    text: str,
    read: Callable[[Settings], Any],
    expected: Callable[[Path], Any],
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # for `~`
    file = write_config(text + "\n", "conf/condaops.yaml")
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()

    assert read(load_settings(file, environ={}, cwd=cwd)) == expected(tmp_path)


def test_without_a_file_paths_follow_cwd(tmp_path: Path) -> None:
    settings = load_settings(
        environ={"CONDAOPS_STORE": "data", "CONDAOPS_SOURCES": "[{directory: envs}]"}, cwd=tmp_path
    )

    assert settings.store == tmp_path / "data"
    assert settings.sources[0].directory == tmp_path / "envs"


def test_relative_config_path_is_made_absolute(tmp_path: Path, write_config: WriteConfig) -> None:
    write_config("store: data\n", "conf/condaops.yaml")

    settings = load_settings(Path("conf/condaops.yaml"), environ={}, cwd=tmp_path)

    assert settings.config_file == tmp_path / "conf" / "condaops.yaml"
    assert settings.store == tmp_path / "conf" / "data"


def test_symlinked_config_keeps_its_folder(tmp_path: Path, write_config: WriteConfig) -> None:
    real = write_config("store: data\n", "real/condaops.yaml")
    (tmp_path / "mounted").mkdir()
    (tmp_path / "mounted" / "condaops.yaml").symlink_to(real)

    settings = load_settings(environ={"CONDAOPS_CONFIG": "mounted/condaops.yaml"}, cwd=tmp_path)

    assert settings.config_file == tmp_path / "mounted" / "condaops.yaml"
    assert settings.store == tmp_path / "mounted" / "data"


# --- durations and the reference ----------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (90, 90.0),
        (1.5, 1.5),
        ("45", 45.0),
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("1h", 3600.0),
        ("2m30s", 150.0),
        ("0.5s", 0.5),
        ("1h0m1s", 3601.0),
        ("", None),
        ("m", None),
        ("5 m", None),
        ("1d", 86400.0),
        ("30m1h", None),
        (True, None),
        (None, None),
        (float("nan"), None),
    ],
    ids=[
        "int",
        "float",
        "numeric-text",
        "seconds",
        "minutes",
        "hours-minutes",
        "hours",
        "minutes-seconds",
        "fraction",
        "all-units",
        "empty",
        "unit-only",
        "space",
        "days",
        "wrong-order",
        "bool",
        "null",
        "nan",
    ],
)
def test_parse_duration(value: object, seconds: float | None) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("seconds", [0.0, 0.5, 30.0, 60.0, 90.0, 3600.0, 5400.0, 3601.0], ids=str)
def test_format_duration_round_trips(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


def test_reference_is_up_to_date() -> None:
    assert REFERENCE.read_text(encoding="utf-8") == render_reference(), (
        "docs/configuration.md is stale: run `.venv/bin/python -m condaops.config.reference > docs/configuration.md`"
    )


def test_reference_names_every_key_and_variable() -> None:
    reference = render_reference()

    for name, (key, _) in environment_variables().items():
        assert f"`{key}`" in reference
        assert f"`{name}`" in reference
    for key in ("sources[].name", "sources[].interval", "sources[].default_namespace"):
        assert f"`{key}`" in reference


@pytest.mark.parametrize(
    ("text", "key", "message"),
    [
        ("policy: {site_file: missing.yaml}", "policy.site_file", "is not a file"),
        ("publish: {signing: {key_file: missing.key}}", "publish.signing.key_file", "is not a file"),
        ("publish: {signing: {password_env: 'X Y'}}", "publish.signing.password_env", ""),
        ("publish: {signing: {registry_host: r.example}}", "publish.signing.registry_host", "without 'key_file'"),
    ],
    ids=["site-file", "key-file", "password-env", "no-key"],
)
def test_supply_chain_settings_are_checked(tmp_path: Path, text: str, key: str, message: str) -> None:
    error = load_error(tmp_path, text + "\n")
    assert error.key == key and message in str(error)


def test_signing_password_from_one_place(tmp_path: Path) -> None:
    (tmp_path / "k.pem").write_text("x")
    (tmp_path / "pw").write_text("x")
    error = load_error(tmp_path, "publish: {signing: {key_file: k.pem, password_env: PW, password_file: pw}}\n")
    assert error.key == "publish.signing.password_file" and "only one" in str(error)
