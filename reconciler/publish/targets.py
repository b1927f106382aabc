"""Where published builds go: the built-in registry and external OCI registries.

Both kinds of target have one small interface (``Target``): put a blob, put a manifest
with tags, read a manifest back. The built-in registry is reached through its Python API
(``registry/api.py``: no HTTP, no token); an external registry over HTTP(S) with oras-py,
with the target's credentials (basic, exchanged for a bearer token when the registry's
challenge asks for one, or a bare bearer token when no user name is set).

Manifests are sent as the exact bytes that were built (oras-py's ``upload_manifest``
re-serializes a dict, which would change the digest), so an image has the same digest in
every target. Artifacts attached with ``subject`` are found through the referrers API; a
registry without one (no ``OCI-Subject`` header in the answer, e.g. distribution 2.8)
gets the OCI 1.1 fallback instead: an image index tagged ``sha256-<hex of the subject>``
that lists the artifacts, which ``oras discover`` and other OCI 1.1 clients read.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO, Protocol
from urllib.parse import urlsplit

from condaops.config.settings import PushTargetSettings, Settings
from condaops.reconciler.errors import CondaopsError, StalledError, TransientError
from condaops.reconciler.reasons import Reason
from condaops.reconciler.secrets import read_secret
from condaops.registry.api import Descriptor, Registry

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    OCI_INDEX,
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
CHUNK = 16 * 1024 * 1024  # blobs larger than this are uploaded in chunks (never read whole)
TIMEOUT = 60.0  # seconds per HTTP request
log = logging.getLogger("condaops.publish.targets")


class PushError(CondaopsError):
    """A target refused or failed a push; the message names the target."""

    reason = Reason.PUSH_FAILED


class PushRefusedError(PushError, StalledError):
    """The registry refused the credentials or the content: a human must act."""

    reason = Reason.PUSH_REFUSED


class PushUnreachableError(PushError, TransientError):
    """The registry did not answer (network, timeout, server error); a later publish may work."""

    reason = Reason.REGISTRY_UNREACHABLE


class Target(Protocol):
    """One registry a build is pushed to."""

    name: str

    def repository(self, name: str) -> str:
        """The repository ``<ns>/<env>`` is pushed to in this target."""
        ...

    def put_blob(
        self, repository: str, data: bytes | Path, media_type: str, *, digest: str | None = None
    ) -> Descriptor:
        """Store a blob; ``digest``, when the caller knows it, lets a target skip one it has."""
        ...

    def put_manifest(self, repository: str, body: bytes, *, media_type: str, tags: Sequence[str] = ()) -> Descriptor:
        """Store ``body`` (exact bytes) by digest and under each tag."""
        ...

    def get_manifest(self, repository: str, reference: str) -> tuple[bytes, str] | None:
        """A manifest's bytes and media type, or None when there is none."""
        ...

    def close(self) -> None: ...


class BuiltinTarget:
    """The built-in registry, through its Python API."""

    def __init__(self, registry: Registry, name: str = "builtin") -> None:
        self.registry = registry
        self.name = name

    def repository(self, name: str) -> str:
        return name

    def put_blob(
        self, repository: str, data: bytes | Path, media_type: str, *, digest: str | None = None
    ) -> Descriptor:
        return self.registry.put_blob(data, media_type, digest=digest)

    def put_manifest(self, repository: str, body: bytes, *, media_type: str, tags: Sequence[str] = ()) -> Descriptor:
        return self.registry.put_manifest(repository, body, media_type=media_type, tags=list(tags))

    def get_manifest(self, repository: str, reference: str) -> tuple[bytes, str] | None:
        from condaops.registry.errors import RegistryError
        from condaops.registry.store import RegistryStore

        try:
            found = RegistryStore(self.registry.storage).manifest(repository, reference)
        except RegistryError:
            return None
        return found.body, found.media_type

    def close(self) -> None:
        self.registry.close()


def _client_class() -> type:
    """oras-py's client with two changes a service needs, built on first use (oras is
    imported only by builds that push to an external registry):

    * one attempt per request: oras-py retries every failed request five times with sleeps
      (about two minutes for an unreachable host); a failed publish is recorded instead;
    * a 401 while holding a bearer token asks for a new token: registries scope tokens by
      action, and the token got for a pull (HEAD of a blob) does not allow the push after it.
    """
    from oras.client import OrasClient
    from oras.provider import Registry as OrasRegistry

    once = OrasRegistry.do_request.__wrapped__  # undecorated: no retries

    class Client(OrasClient):
        def do_request(
            self,
            url: str,
            method: str = "GET",
            data: Any = None,
            headers: dict | None = None,
            json: dict | None = None,
            stream: bool = False,
        ) -> Any:
            headers = dict(headers or {})
            response = once(self, url, method, data, headers, json, stream)
            if response.status_code == 401 and getattr(self.auth, "token", None):
                self.auth.token = None
                headers.pop("Authorization", None)
                response = once(self, url, method, data, headers, json, stream)
            return response

    return Client


class OrasTarget:
    """An external OCI registry over HTTP(S), with oras-py."""

    def __init__(self, settings: PushTargetSettings, environ: Mapping[str, str] | None = None) -> None:
        assert settings.url is not None
        self.settings = settings
        self.name = settings.name
        url = settings.url if "://" in settings.url else f"{'http' if settings.insecure else 'https'}://{settings.url}"
        parts = urlsplit(url)
        self.host = parts.netloc
        self.insecure = settings.insecure or parts.scheme == "http"
        self.environ = os.environ if environ is None else environ
        self._client: Any = None
        self._scratch: Path | None = None

    def __repr__(self) -> str:  # never the credentials
        return f"OrasTarget({self.name!r}, {self.host!r})"

    def repository(self, name: str) -> str:
        return f"{self.settings.repository.strip('/')}/{name}" if self.settings.repository else name

    # --- the client ---------------------------------------------------------------------

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = self._connect()
        return self._client

    def _connect(self) -> Any:
        """Ask ``/v2/`` which authentication the registry wants, then make the client."""
        import requests

        scheme = "http" if self.insecure else "https"
        try:
            probe = requests.get(f"{scheme}://{self.host}/v2/", timeout=TIMEOUT)
        except requests.RequestException as exc:
            raise PushUnreachableError(f"push target '{self.name}' ({self.host}) is unreachable: {exc}") from exc
        challenge = probe.headers.get("Www-Authenticate", "")
        backend = "token" if challenge.lower().startswith("bearer") else "basic"
        client = _client_class()(hostname=self.host, insecure=self.insecure, auth_backend=backend)
        client.session.request = partial(client.session.request, timeout=TIMEOUT)
        secret = read_secret(
            self.name,
            "password",
            env=self.settings.password_env,
            file=self.settings.password_file,
            environ=self.environ,
        )
        if secret and self.settings.username:
            client.auth.set_basic_auth(self.settings.username, secret)
        elif secret:
            client.auth.set_token_auth(secret)
        elif backend == "basic" and probe.status_code == 401:
            raise PushRefusedError(
                f"push target '{self.name}' ({self.host}) requires credentials; set username "
                f"and password_env or password_file of registry.push '{self.name}'"
            )
        self._client = client
        if probe.status_code == 401:  # check the credentials once, for a clear error before any upload
            self._check(self._request("GET", f"{scheme}://{self.host}/v2/", "signing in"), "signing in")
        return client

    def _url(self, repository: str, path: str) -> str:
        return f"{self.client.prefix}://{self.host}/v2/{repository}/{path}"

    def _request(self, method: str, url: str, what: str, **kwargs: Any) -> Any:
        import requests

        try:
            return self.client.do_request(url, method, **kwargs)
        except (requests.RequestException, ValueError) as exc:
            raise PushUnreachableError(f"push target '{self.name}' ({self.host}): {what} failed: {exc}") from exc

    def _check(self, response: Any, what: str) -> Any:
        """``response`` if it is a success; else the error that names the target and why."""
        if response.status_code < 300:
            return response
        detail = _registry_message(response)
        if response.status_code == 401:
            raise PushRefusedError(
                f"push target '{self.name}' ({self.host}) refused the credentials ({what}: {detail}); "
                f"check registry.push '{self.name}' username and password_env/password_file"
            )
        if response.status_code == 403:
            raise PushRefusedError(
                f"push target '{self.name}' ({self.host}) denied {what}: {detail}; "
                "the account may not push to this repository"
            )
        error = PushUnreachableError if response.status_code >= 500 else PushRefusedError
        raise error(f"push target '{self.name}' ({self.host}): {what} answered {response.status_code}: {detail}")

    # --- Target -------------------------------------------------------------------------

    def put_blob(
        self, repository: str, data: bytes | Path, media_type: str, *, digest: str | None = None
    ) -> Descriptor:
        path = data if isinstance(data, Path) else self._scratch_file(data)
        digest, size = _file_digest(path)  # the digest of what is sent, whatever the caller believes
        layer = {"mediaType": media_type, "digest": digest, "size": size}
        container = self.client.get_container(f"{self.host}/{repository}")
        import requests

        try:
            response = self.client.upload_blob(str(path), container, layer, do_chunked=size > CHUNK, chunk_size=CHUNK)
        except (requests.RequestException, ValueError) as exc:
            raise PushUnreachableError(
                f"push target '{self.name}' ({self.host}): uploading {digest} to {repository} failed: {exc}"
            ) from exc
        self._check(response, f"uploading {digest} to {repository}")
        return Descriptor(media_type, digest, size)

    def put_manifest(self, repository: str, body: bytes, *, media_type: str, tags: Sequence[str] = ()) -> Descriptor:
        digest = f"sha256:{hashlib.sha256(body).hexdigest()}"
        subject_seen = False
        for reference in (digest, *tags):
            what = f"pushing manifest {repository}:{reference}"
            response = self._check(
                self._request(
                    "PUT",
                    self._url(repository, f"manifests/{reference}"),
                    what,
                    data=body,
                    headers={"Content-Type": media_type},
                ),
                what,
            )
            subject_seen = subject_seen or bool(response.headers.get("OCI-Subject"))
        descriptor = Descriptor(media_type, digest, len(body))
        manifest = json.loads(body)
        if manifest.get("subject") and not subject_seen:
            self._add_referrer(repository, manifest, descriptor)
        return descriptor

    def get_manifest(self, repository: str, reference: str) -> tuple[bytes, str] | None:
        what = f"reading manifest {repository}:{reference}"
        response = self._request(
            "GET", self._url(repository, f"manifests/{reference}"), what, headers={"Accept": ", ".join(MANIFEST_TYPES)}
        )
        if response.status_code == 404:
            return None
        self._check(response, what)
        return response.content, response.headers.get("Content-Type", "").split(";")[0].strip()

    def fetch_blob(self, repository: str, digest: str, out: BinaryIO) -> str:
        """Stream a blob into ``out``; returns the digest of what arrived."""
        what = f"downloading {digest} from {repository}"
        response = self._check(self._request("GET", self._url(repository, f"blobs/{digest}"), what, stream=True), what)
        sha = hashlib.sha256()
        with response:
            for chunk in response.iter_content(chunk_size=1 << 20):
                sha.update(chunk)
                out.write(chunk)
        return f"sha256:{sha.hexdigest()}"

    def close(self) -> None:
        if self._client is not None:
            self._client.session.close()
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)

    # --- helpers ------------------------------------------------------------------------

    def _add_referrer(self, repository: str, manifest: dict[str, Any], referrer: Descriptor) -> None:
        """The OCI 1.1 referrers tag schema: ``sha256-<hex>`` tags an index of the subject's
        referrers. Adding one already listed changes nothing (publishing twice is safe)."""
        tag = manifest["subject"]["digest"].replace(":", "-")
        found = self.get_manifest(repository, tag)
        index: dict[str, Any] = (
            json.loads(found[0]) if found else {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
        )
        if any(m.get("digest") == referrer.digest for m in index.get("manifests", [])):
            return
        entry: dict[str, Any] = {"mediaType": referrer.media_type, "digest": referrer.digest, "size": referrer.size}
        if manifest.get("artifactType"):
            entry["artifactType"] = manifest["artifactType"]
        if manifest.get("annotations"):
            entry["annotations"] = manifest["annotations"]
        index["manifests"].append(entry)
        body = json.dumps(index, sort_keys=True, separators=(",", ":")).encode()
        what = f"pushing the referrers index {repository}:{tag}"
        self._check(
            self._request(
                "PUT", self._url(repository, f"manifests/{tag}"), what, data=body, headers={"Content-Type": OCI_INDEX}
            ),
            what,
        )

    def _scratch_file(self, data: bytes) -> Path:
        if self._scratch is None:
            self._scratch = Path(tempfile.mkdtemp(prefix="condaops-push-"))
        path = self._scratch / hashlib.sha256(data).hexdigest()
        path.write_bytes(data)
        return path


def _file_digest(path: Path) -> tuple[str, int]:
    sha, size = hashlib.sha256(), 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            sha.update(chunk)
            size += len(chunk)
    return f"sha256:{sha.hexdigest()}", size


def _registry_message(response: Any) -> str:
    """The registry's own words (OCI error JSON), else the HTTP reason."""
    try:
        errors = response.json().get("errors") or []
        text = "; ".join(str(e.get("message") or e.get("code")) for e in errors if isinstance(e, dict))
    except ValueError:
        text = ""
    return text or f"{response.status_code} {response.reason}"


def open_targets(settings: Settings, environ: Mapping[str, str] | None = None) -> list[Target]:
    """One ``Target`` per ``registry.push`` entry, in order. Nothing connects yet."""
    from condaops.registry.api import open_registry

    targets: list[Target] = []
    for target in settings.registry.push:
        if target.builtin:
            targets.append(BuiltinTarget(open_registry(settings), target.name))
        else:
            targets.append(OrasTarget(target, environ))
    return targets
