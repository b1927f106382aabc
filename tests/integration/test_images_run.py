"""Images that run: real environments from ../shared/realdata, published with default
settings (the built-in base from this host's C library), on a base from another registry,
and built on request (dynamic), pulled and run with podman (runc); their labels read with
skopeo; the lockfiles fetched with the oras command the environment page shows (oras-py);
an image whose packages need a C library its base lacks reported and not offered.

Nothing here reaches a public registry: every image and base comes from registries on
127.0.0.1, and containers run with ``--network=none``.
"""

from __future__ import annotations

import contextlib
import html
import io
import json
import shlex
import tarfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from condaops.config import load_settings
from condaops.config.settings import ChannelSettings, DynamicSettings, PublishSettings, RegistrySettings, Settings
from condaops.reconciler.dynamic_builder import DynamicImageBuilder
from condaops.reconciler.publish.archive import Entry, Written, write_archive
from condaops.reconciler.publish.image import OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST, canonical_json, sha256_digest
from condaops.reconciler.state.db import make_engine
from condaops.registry.api import Registry
from condaops.registry.app import create_registry_app, registry_router
from condaops.registry.backends import open_storage
from condaops.web.app import create_app
from tests.integration.conftest import ALIAS, Project
from tests.integration.test_pipeline import FLASK_ENV, MAIN, R
from tests.integration.test_publish import image_record, publish
from tests.support.channels import PackageSpec
from tests.support.registry_clients import (
    Podman,
    docker_registry,
    oras_client,
    podman_client,
    require_tool,
    serve_asgi,
    skopeo,
)

pytestmark = pytest.mark.integration

CONDA_FORGE = "https://conda.anaconda.org/conda-forge"
CRYPTO_ENV = "channels: [conda-forge]\ndependencies:\n  - openssl\nvariables:\n  GREETING: hello\n"
OCI = "org.opencontainers.image."


def build_and_publish(p: Project, ref: str, text: str) -> dict:
    p.write_env(f"{ref}.yaml", text)
    code, _, err = p.cli("reconcile", "--once", "--wait")
    assert code == 0, err
    item = p.status()[ref]
    assert item["state"] == "ready", item
    publish(p, item["build_id"])
    return p.status()[ref]


@contextlib.contextmanager
def served_store(p: Project) -> Iterator[str]:
    """The project's registry (and site) on 127.0.0.1, as ``condaops serve`` serves them."""
    settings = load_settings(p.config_file, environ={})
    engine = make_engine(settings.database_url)
    storage = open_storage(settings)
    try:
        with serve_asgi(create_app(settings, engine, routers=[registry_router(settings, storage)])) as host:
            yield host
    finally:
        storage.close()
        engine.dispose()


def run_in(pm: Podman, image: str, *command: str) -> str:
    runc = require_tool("runc", "runc")
    pm("pull", "--tls-verify=false", image)
    return pm("--runtime", runc, "run", "--rm", "--network=none", image, *command).stdout.strip()


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as answer:
        return json.loads(answer.read())


@pytest.fixture
def crypto(project, realdata_channel) -> Project:  # type: ignore[no-untyped-def]
    """Default settings but for the mirror: conda-forge served from realdata."""
    served = realdata_channel("conda-forge-py312-deps")
    return project({CONDA_FORGE: served}, channels={"default": ["conda-forge"]}, publish={"enabled": False})


@pytest.fixture
def flask(project, realdata_channel, empty_channel) -> Project:  # type: ignore[no-untyped-def]
    served = realdata_channel("defaults-2021-py27-flask")
    return project({MAIN: served, R: empty_channel}, channels={"default": ["defaults"]}, publish={"enabled": False})


def test_a_default_image_runs_openssl_offline_and_shows_its_labels(crypto: Project, tmp_path: Path) -> None:
    item = build_and_publish(crypto, "tools/crypto", CRYPTO_ENV)
    record = image_record(item)
    assert record["runnable"] is True and record["base"]["reference"] == "builtin"
    assert record["base"]["glibc"] and "libc6" in record["base"]["packages"]
    with served_store(crypto) as host, podman_client(tmp_path / "pm") as pm:
        image = f"{host}/tools/crypto:latest"
        version = run_in(pm, image, "openssl", "version")
        info = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{image}").stdout)
        raw = json.loads(skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{image}").stdout)
    assert version.startswith("OpenSSL 3.3.1")
    labels = info["Labels"]
    assert labels[OCI + "title"] == "tools/crypto"
    assert labels[OCI + "version"] == f"build-{item['build_id']}"
    assert labels[OCI + "source"].startswith("file://") and labels[OCI + "revision"].startswith("dir:")
    assert labels[OCI + "created"].endswith("Z") and "openssl 3.3.1" in labels[OCI + "description"]
    assert labels["io.condaops.base.glibc"] == record["base"]["glibc"]
    assert {k: v for k, v in raw["annotations"].items() if k.startswith(OCI)} == {
        k: v for k, v in labels.items() if k.startswith(OCI)
    }
    assert info["Digest"] == record["manifest_digest"]


def test_a_default_image_runs_python_2_7_with_flask(flask: Project, tmp_path: Path) -> None:
    item = build_and_publish(flask, "web/flask", FLASK_ENV)
    with served_store(flask) as host, podman_client(tmp_path / "pm") as pm:
        image = f"{host}/web/flask:latest"
        out = run_in(pm, image, "python", "-c", "import flask, sys; print(flask.__version__ + ' ' + sys.prefix)")
        entry = run_in(pm, image, "flask", "--version")
    assert out == "1.1.2 /opt/env"
    assert "Flask 1.1.2" in entry  # an entry point: its shebang was moved to /opt/env
    assert image_record(item)["runnable"] is True


# --- a base from another registry ------------------------------------------------------------

GLIBC_FILES = ("libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "librt.so.1", "libutil.so.1")


def push_image(host: str, name: str, layers: list[Written], config: dict, tmp_path: Path) -> None:
    """An OCI layout of ``layers`` and ``config``, copied to ``host`` with skopeo."""
    layout = tmp_path / f"layout-{name.replace('/', '-')}"
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    for layer in layers:
        (blobs / layer.sha256).write_bytes(layer.path.read_bytes())
    config = {**config, "rootfs": {"type": "layers", "diff_ids": [f"sha256:{w.tar_sha256}" for w in layers]}}
    body = canonical_json(config)
    (blobs / sha256_digest(body).split(":")[1]).write_bytes(body)
    manifest = canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha256_digest(body), "size": len(body)},
            "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": f"sha256:{w.sha256}", "size": w.size} for w in layers],
        }
    )
    (blobs / sha256_digest(manifest).split(":")[1]).write_bytes(manifest)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    entry = {"mediaType": OCI_MANIFEST, "digest": sha256_digest(manifest), "size": len(manifest)}
    entry["annotations"] = {"org.opencontainers.image.ref.name": "1"}
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [entry]}))
    skopeo("copy", "--dest-tls-verify=false", f"oci:{layout}:1", f"docker://{host}/{name}:1")


def busybox_layer(tmp_path: Path) -> Written:
    busybox = Path(require_tool("busybox", "busybox-static"))
    entries = [Entry("bin/"), *(Entry(f"bin/{n}", busybox, mode=0o755) for n in ("busybox", "sh", "echo"))]
    return write_archive(tmp_path / "busybox.tar.gz", entries)


def glibc_layer(tmp_path: Path) -> Written:
    """The host's loader and core glibc libraries, as a site might put them in a base."""
    libdir = next(d for d in ("lib/x86_64-linux-gnu", "lib64", "usr/lib64") if Path(f"/{d}/libc.so.6").is_file())
    files = [Entry(f"{libdir}/{n}", Path(f"/{libdir}/{n}").resolve(), mode=0o755) for n in GLIBC_FILES]
    loader = Entry("lib64/ld-linux-x86-64.so.2", Path("/lib64/ld-linux-x86-64.so.2").resolve(), mode=0o755)
    dirs = sorted({"lib64/", *(f"{'/'.join(libdir.split('/')[:i])}/" for i in range(1, len(libdir.split("/")) + 1))})
    return write_archive(tmp_path / "glibc.tar.gz", sorted([*map(Entry, dirs), loader, *files], key=lambda e: e.name))


def test_an_image_on_a_base_from_a_local_registry_runs_flask(flask: Project, tmp_path: Path) -> None:
    require_tool("runc", "runc")
    with docker_registry(tmp_path / "bases") as bases:
        config = {"architecture": "amd64", "os": "linux", "config": {"Env": ["PATH=/bin", "SITE=ours"]}}
        push_image(bases.host, "base/glibc", [glibc_layer(tmp_path), busybox_layer(tmp_path)], config, tmp_path)
        flask.write_config(publish={"enabled": False, "image_base": f"{bases.host}/base/glibc:1"})
        item = build_and_publish(flask, "web/flask", FLASK_ENV)
    record = image_record(item)
    assert record["runnable"] is True and record["base"]["reference"] == f"{bases.host}/base/glibc:1"
    assert record["base"]["glibc"] == _host_glibc()
    with served_store(flask) as host, podman_client(tmp_path / "pm") as pm:
        image = f"{host}/web/flask:latest"
        out = run_in(pm, image, "python", "-c", "import flask; print(flask.__version__)")
        env = run_in(pm, image, "sh", "-c", "echo $CONDA_PREFIX $SITE $PATH")
        raw = json.loads(skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{image}").stdout)
    assert out == "1.1.2"
    assert env.split() == ["/opt/env", "ours", "/opt/env/bin:/bin"]  # the base's shell and variables
    assert raw["annotations"]["org.opencontainers.image.base.name"] == f"{bases.host}/base/glibc:1"


def _host_glibc() -> str:
    import os

    return os.confstr("CS_GNU_LIBC_VERSION").split()[-1]  # type: ignore[union-attr]


def test_an_image_whose_c_library_is_missing_is_reported_not_offered(  # type: ignore[no-untyped-def]
    project, channel_factory, http_channel, tmp_path: Path
) -> None:
    """A package that needs glibc (as conda-forge's declare: ``__glibc >=2.17``) on a base
    with none (busybox-static): published, but not offered to run, and everyone says why."""
    needsc = PackageSpec("needsc", "1.0", depends=("__glibc >=2.17,<3.0.a0",), executables=("needsc",))
    channel = channel_factory([needsc])
    platform = {"architecture": "amd64", "os": "linux"}
    with docker_registry(tmp_path / "bases") as bases:
        push_image(bases.host, "base/busybox", [busybox_layer(tmp_path)], platform, tmp_path)
        p = project(
            {ALIAS + "testchan": http_channel(channel)},
            publish={"enabled": False, "image_base": f"{bases.host}/base/busybox:1"},
        )
        item = build_and_publish(p, "team/needsc", "channels: [testchan]\ndependencies:\n  - needsc\n")
    record = image_record(item)
    assert record["runnable"] is False
    assert "has no GNU C library" in record["not_runnable"]
    code, out, _ = p.cli("history", "team/needsc", "--json")
    error = json.loads(out)[0]["publish_error"]
    assert code == 0 and error.startswith("ImageNotRunnable: team/needsc: the base") and "docs/images.md" in error
    with served_store(p) as host:
        api = get_json(f"http://{host}/api/v1/environments/team/needsc")
        with urllib.request.urlopen(f"http://{host}/environments/team/needsc", timeout=30) as answer:
            page = answer.read().decode()
        build_page = urllib.request.urlopen(f"http://{host}/builds/{item['build_id']}", timeout=30).read().decode()
    assert api["image"]["runnable"] is False and "has no GNU C library" in api["image"]["not_runnable"]
    assert not any(text.startswith("docker") for text in api["commands"].values())
    assert "docker pull" not in page and "ImageNotRunnable" in page and "has no GNU C library" in page
    assert "ImageNotRunnable" in build_page


# --- artifacts, with the command the page shows ---------------------------------------------


def test_the_pages_oras_commands_fetch_the_builds_files(crypto: Project, tmp_path: Path) -> None:
    item = build_and_publish(crypto, "tools/crypto", CRYPTO_ENV)
    local = {Path(path).name: Path(path).read_bytes() for kind, path in item["artifacts"].items() if kind != "log"}
    with served_store(crypto) as host:
        commands = get_json(f"http://{host}/api/v1/environments/tools/crypto")["commands"]
        page = urllib.request.urlopen(f"http://{host}/environments/tools/crypto", timeout=30).read().decode()
        pulled: dict[str, bytes] = {}
        for label in ("Lockfiles and environment.yaml (oras)", "conda-pack tarball (oras)", "CycloneDX SBOM (oras)"):
            argv = shlex.split(commands[label])
            assert argv[:3] == ["oras", "pull", "--plain-http"] and len(argv) == 4  # oras CLI: pull [flags] <ref>
            assert f'<code tabindex="0">{html.escape(commands[label])}</code>' in page  # a scrollable, focusable box
            out = tmp_path / label.split()[0]
            for file in oras_client(host, token=None).pull(target=argv[3], outdir=str(out)):
                pulled[Path(file).name] = Path(file).read_bytes()
    assert commands["Container image"] == f"docker pull {host}/tools/crypto:latest"
    assert sorted(pulled) == sorted(n for n in local if n != "image.json")
    assert all(pulled[name] == local[name] for name in pulled)


# --- dynamic images ----------------------------------------------------------------------------


def test_a_dynamic_image_runs_openssl(realdata_channel, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    served = realdata_channel("conda-forge-py312-deps")
    channels = ChannelSettings(default=("conda-forge",), mirrors={CONDA_FORGE: (str(served),)})
    settings = Settings(
        store=tmp_path / "store",
        channels=channels,
        dynamic=DynamicSettings(enabled=True),
        registry=RegistrySettings(push_tokens=("t" * 32,)),
    )
    storage = open_storage(settings)
    builder = DynamicImageBuilder(settings, Registry(storage))  # what `condaops serve` hands the registry
    app = create_registry_app(settings, storage, dynamic_builder=builder)
    with serve_asgi(app) as host, podman_client(tmp_path / "pm") as pm:
        version = run_in(pm, f"{host}/dynamic/openssl:latest", "openssl", "version")
        config = json.loads(
            skopeo("inspect", "--config", "--tls-verify=false", f"docker://{host}/dynamic/openssl:latest").stdout
        )
    assert version.startswith("OpenSSL 3.3.1")
    assert config["history"][0]["created_by"].startswith("condaops: GNU C library")  # the published images' base


def test_a_dynamic_image_that_could_not_run_is_refused_saying_why(  # type: ignore[no-untyped-def]
    channel_factory, http_channel, tmp_path: Path
) -> None:
    """Dynamic images use the published images' base; when the packages need a C library
    that base lacks, the request is refused (MANIFEST_UNKNOWN, ImageNotRunnable) before
    anything is installed, rather than served as an image whose programs cannot start."""
    needsc = PackageSpec("needsc", "1.0", depends=("__glibc >=2.17,<3.0.a0",), executables=("needsc",))
    channel = http_channel(channel_factory([needsc]))
    platform = {"architecture": "amd64", "os": "linux"}
    with docker_registry(tmp_path / "bases") as bases:
        push_image(bases.host, "base/busybox", [busybox_layer(tmp_path)], platform, tmp_path)
        settings = Settings(
            store=tmp_path / "store",
            channels=ChannelSettings(default=("testchan",), mirrors={ALIAS + "testchan": (str(channel),)}),
            dynamic=DynamicSettings(enabled=True),
            registry=RegistrySettings(push_tokens=("t" * 32,)),
            publish=PublishSettings(image_base=f"{bases.host}/base/busybox:1"),
        )
        storage = open_storage(settings)
        app = create_registry_app(settings, storage, dynamic_builder=DynamicImageBuilder(settings, Registry(storage)))
        with serve_asgi(app) as host:
            request = urllib.request.Request(
                f"http://{host}/v2/dynamic/needsc/manifests/latest", headers={"Accept": OCI_MANIFEST}
            )
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request, timeout=120)
    body = json.loads(refused.value.read())
    assert refused.value.code == 404 and body["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    message = body["errors"][0]["message"]
    assert "would not run" in message, message
    assert "has no GNU C library" in message and "publish.image_base" in message
    left = tmp_path / "store" / "dynamic"
    assert not left.exists() or sorted(p.name for p in left.iterdir() if not p.name.endswith(".lock")) == [], list(
        left.iterdir()
    )


# --- activation without a shell --------------------------------------------------------------


def test_activation_scripts_and_env_vars_end_up_in_the_image(  # type: ignore[no-untyped-def]
    project, channel_factory, http_channel
) -> None:
    """What ``conda activate`` would set: ``env_vars.d`` as is, ``activate.d`` scripts run
    once at publish time (the build prefix moved to /opt/env), one that exits skipped."""
    scripts = {
        "etc/conda/activate.d/tool.sh": (
            'export TOOL_HOME="$CONDA_PREFIX/share/tool"\nexport PATH="$CONDA_PREFIX/opt:$PATH"\n'
        ),
        "etc/conda/activate.d/zz-broken.sh": "exit 3\n",
        "etc/conda/env_vars.d/tool.json": '{"TOOL_MODE": "fast"}',
    }
    channel = channel_factory([PackageSpec("tool", "1.0", files=scripts)])
    p = project({ALIAS + "testchan": http_channel(channel)}, publish={"enabled": False})
    item = build_and_publish(p, "team/tool", "channels: [testchan]\ndependencies:\n  - tool\nvariables:\n  A: b\n")
    record = image_record(item)
    assert record["activation_skipped"] == ["etc/conda/activate.d/zz-broken.sh"]
    with served_store(p) as host:
        config = json.loads(
            skopeo("inspect", "--config", "--tls-verify=false", f"docker://{host}/team/tool:latest").stdout
        )
    env = dict(item.split("=", 1) for item in config["config"]["Env"])
    assert env["TOOL_HOME"] == "/opt/env/share/tool" and env["TOOL_MODE"] == "fast" and env["A"] == "b"
    assert env["PATH"].startswith("/opt/env/opt:/opt/env/bin:") and env["CONDA_PREFIX"] == "/opt/env"
    assert str(p.store) not in json.dumps(config)  # nothing of the build host's store leaks


# --- relocation ---------------------------------------------------------------------------------


def test_layers_hold_what_rattler_installs_at_the_image_path(flask: Project, tmp_path: Path) -> None:
    """The layers are written from the built prefix, the files naming it rewritten for
    /opt/env (text and binary placeholders, entry points): the same bytes as installing
    the same packages for /opt/env directly, file by file."""
    import asyncio

    import zstandard
    from rattler import install

    from condaops.reconciler.publish.image import write_layers
    from condaops.reconciler.publish.job import prefix_records

    build_and_publish(flask, "web/flask", FLASK_ENV)
    prefix = flask.link("web/flask").resolve()
    layers = write_layers(prefix, "/opt/env", tmp_path / "layers", budget=80)
    written: dict[str, bytes] = {}
    for layer in layers:
        raw = zstandard.ZstdDecompressor().stream_reader(layer.file.open("rb")).read()
        with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
            for member in tar:
                if member.isfile():
                    written[member.name.removeprefix("opt/env/")] = tar.extractfile(member).read()  # type: ignore[union-attr]
    direct = tmp_path / "direct"
    records = prefix_records(prefix)
    cache = flask.store / ".cache" / "pkgs"
    asyncio.run(
        install(
            records,
            target_prefix=direct,
            alternative_target_prefix=Path("/opt/env"),
            cache_dir=cache,
            show_progress=False,
        )
    )
    compared = [f for f in written if not f.startswith("conda-meta/") and (direct / f).is_file()]
    assert len(compared) > 4000  # every file of the 18 packages
    assert [f for f in compared if written[f] != (direct / f).read_bytes()] == []
    assert any(str(prefix).encode() in (prefix / f).read_bytes() for f in compared)  # some did need rewriting
