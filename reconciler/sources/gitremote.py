"""Talking to a Git remote with dulwich: credentials, listing refs, fetching, failures.

No git binary is used. Transports: ``https://``/``http://`` (urllib3, ``NETWORK_TIMEOUT``
per request), ``git://`` (no timeout in dulwich: a server that stalls mid-answer blocks
the read), ``ssh://`` and scp-like ``user@host:path`` (the ``ssh`` client in batch mode,
with connect and keep-alive timeouts; host keys checked strictly against
``ssh_known_hosts`` when set), and local paths (objects borrowed, not copied: ``_borrow``).

Credentials for http(s) come from the source settings — ``username`` plus a password or
access token read from ``password_env`` or ``password_file`` at every connection, so
rotated secrets are picked up — or from user info embedded in the URL. They are passed to
dulwich separately from the URL, and every message that leaves this module is passed
through ``gitrules.redact``: secrets never reach logs, errors or the status site.

Failures raise ``RemoteError`` (a transient ``SourceError``) with a reason:

* ``SourceUnreachable`` — network errors, timeouts, HTTP 5xx, a path that is not a Git
  repository, a server that hung up;
* ``SourceAuthFailed`` — credentials refused (HTTP 401/403, ssh "Permission denied",
  host key mismatch) or not available (variable unset, file missing);
* ``PushRejected`` — ``push`` found a ref elsewhere than expected (someone else pushed),
  or the server refused the update (a protected branch, a hook).

``push`` sends with the same credentials and transports (update pull requests): each ref
is compared with the commit the caller expects and set only if all match.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

from dulwich.client import (
    GitClient,
    HTTPProxyUnauthorized,
    HTTPUnauthorized,
    SSHVendor,
    SubprocessWrapper,
    default_urllib3_manager,
    get_transport_and_path,
)
from dulwich.errors import GitProtocolError, NotGitRepository
from dulwich.object_store import DiskObjectStore
from dulwich.objects import ZERO_SHA
from dulwich.repo import Repo

from condaops.config.settings import SourceSettings
from condaops.reconciler.errors import SourceError
from condaops.reconciler.reasons import Reason
from condaops.reconciler.sources.gitrules import redact, split_userinfo

log = logging.getLogger("condaops.sources.git")

SOURCE_UNREACHABLE = Reason.SOURCE_UNREACHABLE
SOURCE_AUTH_FAILED = Reason.SOURCE_AUTH_FAILED
PUSH_REJECTED = Reason.PUSH_REJECTED  # a ref moved since it was read, or the server refused the update
NETWORK_TIMEOUT = 60.0  # seconds per connection attempt / read; dulwich has no total deadline
_STDERR_LIMIT = 4096  # bytes of ssh's complaints kept for the message
DEFAULT_USERNAME = "git"  # when only a token is configured: most forges ignore the name
_AUTH_HINTS = (
    "Permission denied",
    "Host key verification failed",
    "REMOTE HOST IDENTIFICATION",
    "Authentication failed",
    "http resp 403",
)

T = TypeVar("T")


class RemoteError(SourceError):
    """The remote could not be listed or fetched; the message holds no credentials."""

    reason = SOURCE_UNREACHABLE


@dataclass(frozen=True, slots=True, repr=False)
class _Credentials:
    username: str | None
    password: str | None

    def secrets(self) -> tuple[str, ...]:
        if not self.password:
            return ()
        pair = f"{self.username or ''}:{self.password}".encode()
        return (self.password, base64.b64encode(pair).decode())


class Remote:
    """One Git remote, as a source's settings describe it."""

    def __init__(self, settings: SourceSettings, *, environ: Mapping[str, str] | None = None) -> None:
        if settings.git is None:
            raise ValueError(f"source '{settings.name}' is not a Git source")
        self._settings = settings
        self._environ = os.environ if environ is None else environ
        self._location, self._url_user, self._url_password = split_userinfo(settings.git)
        self.display = redact(settings.git, [self._url_password or ""])

    # --- public ---------------------------------------------------------------------------

    def list_refs(self, prefixes: Iterable[str] = ()) -> dict[str, str]:
        """``ls-remote``: ref name -> commit SHA (hex); peeled tags and HEAD are left out.
        ``prefixes`` lets servers that can filter send less; the result is not filtered."""
        wanted = [p.encode() for p in prefixes] or None
        result = self._call(
            "list refs",
            lambda client, path: client.get_refs(path, ref_prefix=wanted),  # type: ignore[arg-type]  # str path: see _call
        )
        # dulwich <0.23 returned a plain dict
        refs = cast("Mapping[bytes, bytes | None]", getattr(result, "refs", result))
        return {
            name.decode("utf-8", "replace"): sha.decode("ascii")
            for name, sha in refs.items()
            if sha is not None and name.startswith(b"refs/") and not name.endswith(b"^{}")
        }

    def fetch(self, mirror: Repo, refs: Iterable[str]) -> dict[str, str]:
        """Fetch the commits ``refs`` point at into ``mirror`` and set those refs there
        (dulwich's fetch does not write refs). Returns ref -> SHA for the refs the remote
        still has; objects already in the mirror are not fetched again."""
        wanted = sorted(set(refs))
        if self.is_local:
            return self._borrow(mirror, wanted)
        found: dict[str, str] = {}

        def determine_wants(advertised: Mapping[bytes, bytes | None], depth: int | None = None) -> list[bytes]:
            # The advertisement of this very connection: a ref that moved since the
            # caller's ls-remote is fetched where it is now, not where it was.
            for ref in wanted:
                sha = advertised.get(ref.encode())
                if sha is not None:
                    found[ref] = sha.decode("ascii")
            return sorted({s.encode() for s in found.values() if s.encode() not in mirror.object_store})

        prefixes = [r.encode() for r in wanted]
        self._call(
            "fetch",
            lambda client, path: client.fetch(
                path,  # type: ignore[arg-type]  # a str path: see _call
                mirror,
                determine_wants=determine_wants,  # type: ignore[arg-type]  # dulwich calls it (refs, depth)
                ref_prefix=prefixes,
            ),
        )
        for ref, sha in found.items():
            mirror.refs[ref.encode()] = sha.encode()
        return found

    def push(self, repo: Repo, updates: Mapping[str, tuple[str | None, str | None]]) -> None:
        """Set remote refs from ``repo``'s objects: ref -> (the commit it must be at now, or
        None for "must not exist"; the new commit, or None to delete it). Nothing is changed
        unless every ref is where the caller expects (compare-and-swap against the very
        advertisement of this push); raises ``RemoteError`` with ``PushRejected`` otherwise."""
        moved: list[str] = []

        def update_refs(advertised: dict[bytes, bytes]) -> dict[bytes, bytes]:
            wanted = dict(advertised)
            for ref, (expected, new) in updates.items():
                have = advertised.get(ref.encode())
                current = have.decode("ascii") if have is not None and have != ZERO_SHA else None
                if current != expected:
                    moved.append(f"{ref} is at {current or 'nothing'}, not {expected or 'nothing'}")
                wanted[ref.encode()] = new.encode() if new else ZERO_SHA
            return dict(advertised) if moved else wanted

        def generate(
            have: Iterable[bytes], want: Iterable[bytes], *, ofs_delta: bool = False, progress: Any = None
        ) -> Any:
            return repo.generate_pack_data(set(have), set(want), progress=progress, ofs_delta=ofs_delta)

        def send(client: GitClient, path: str) -> object:
            target = path.encode() if isinstance(path, str) else path
            return client.send_pack(target, update_refs, generate_pack_data=generate)

        result = self._call("push", send)
        if moved:
            raise RemoteError(f"{self.display}: not pushed: {'; '.join(moved)}", reason=PUSH_REJECTED)
        refused = {ref.decode(): why for ref, why in (getattr(result, "ref_status", None) or {}).items() if why}
        if refused:
            shown = "; ".join(f"{ref}: {why}" for ref, why in sorted(refused.items()))
            message = f"{self.display}: the server refused the push: {self.redact(shown)}"
            raise RemoteError(message, reason=PUSH_REJECTED)

    @property
    def is_local(self) -> bool:
        """A repository on this machine (a path or ``file://``), read without a server."""
        return self._location.startswith("file://") or "://" not in self._location and not _is_ssh(self._location)

    def _borrow(self, mirror: Repo, wanted: list[str]) -> dict[str, str]:
        """For a local repository, the mirror borrows its objects (git's alternates, as
        ``git clone --shared`` does) instead of copying them: dulwich's in-process copy
        walks both trees in Python, ~150 ms for 10,000 files. Objects the repository
        later prunes show up as missing, and the reader re-creates the mirror."""
        refs = self.list_refs(wanted)
        path = self._location.removeprefix("file://")
        try:
            with contextlib.closing(Repo(path)) as source:
                objects = os.path.realpath(source.object_store.path)
        except (NotGitRepository, OSError) as exc:
            raise self._error("fetch", "no Git repository there", str(exc), self._credentials()) from None
        store = mirror.object_store  # a mirror's store is on disk, and so are its alternates
        if objects not in {os.path.realpath(cast(DiskObjectStore, alt).path) for alt in store.alternates}:
            store.add_alternate_path(objects)
        found = {ref: refs[ref] for ref in wanted if ref in refs}
        for ref, sha in found.items():
            mirror.refs[ref.encode()] = sha.encode()
        return found

    def redact(self, text: str) -> str:
        """``text`` without any credential this remote knows of."""
        return redact(text, self._known_secrets())

    # --- clients --------------------------------------------------------------------------

    def _call(self, what: str, operation: Callable[[GitClient, str], T]) -> T:
        # dulwich's clients take the path get_transport_and_path gives (a str) although
        # 0.24 annotates their path parameters as bytes: the calls ignore that arg-type.
        credentials = self._credentials()
        ssh = _SshVendor(self._ssh_args()) if _is_ssh(self._location) else None
        try:
            client, path = self._client(credentials, ssh)
            return operation(client, path)
        except (HTTPUnauthorized, HTTPProxyUnauthorized) as exc:
            raise self._error(
                what, "the server refused the credentials", str(exc), credentials, SOURCE_AUTH_FAILED
            ) from None
        except NotGitRepository as exc:
            raise self._error(what, "no Git repository there", str(exc), credentials) from None
        except (GitProtocolError, OSError, ValueError) as exc:
            if self._is_mirror_problem(exc):
                raise
            # ssh explains itself on stderr only ("Permission denied", "Host key ...").
            detail = (ssh.stderr_text() if ssh else "") or str(exc)
            if any(hint in detail for hint in _AUTH_HINTS):
                raise self._error(what, "authentication failed", detail, credentials, SOURCE_AUTH_FAILED) from None
            raise self._error(what, "cannot reach the remote", detail, credentials) from None
        except Exception as exc:
            if type(exc).__module__.startswith("urllib3"):  # connection errors, timeouts
                raise self._error(what, "cannot reach the remote", str(exc), credentials) from None
            raise
        finally:
            if ssh:
                ssh.close()

    def _is_mirror_problem(self, exc: Exception) -> bool:
        """An OSError about a file other than the remote's own: the mirror's, reported by the
        caller as a local problem rather than as an unreachable remote."""
        filename = getattr(exc, "filename", None)
        if not isinstance(exc, OSError) or not filename:
            return False
        return not (self.is_local and os.fsdecode(filename).startswith(self._location.removeprefix("file://")))

    def _client(self, credentials: _Credentials, ssh: _SshVendor | None) -> tuple[GitClient, str]:
        location = self._location
        if location.startswith(("http://", "https://")):
            pool = default_urllib3_manager(None, base_url=location, timeout=NETWORK_TIMEOUT)
            return get_transport_and_path(
                location, username=credentials.username, password=credentials.password, pool_manager=pool
            )
        client, path = get_transport_and_path(location)
        if ssh is not None:
            client.ssh_vendor = ssh  # type: ignore[attr-defined]  # dulwich sets ssh_vendor only on its SSH client class
        return client, path

    def _ssh_args(self) -> list[str]:
        # BatchMode: a service must fail, never wait for a passphrase or a host key prompt.
        args = [
            "ssh",
            "-x",
            "-o",
            "BatchMode=yes",
            "-o",
            f"ConnectTimeout={int(NETWORK_TIMEOUT)}",
            "-o",
            "ServerAliveInterval=15",
            "-o",
            "ServerAliveCountMax=4",
        ]
        if self._settings.ssh_known_hosts is not None:
            args += ["-o", f"UserKnownHostsFile={self._settings.ssh_known_hosts}", "-o", "StrictHostKeyChecking=yes"]
        if self._settings.ssh_key_file is not None:
            args += ["-o", "IdentitiesOnly=yes", "-i", str(self._settings.ssh_key_file)]
        return args

    # --- credentials ----------------------------------------------------------------------

    def _credentials(self) -> _Credentials:
        password = self._configured_secret()
        if password is None:
            password = self._url_password
        username = self._settings.username or self._url_user
        if password is not None and username is None:
            username = DEFAULT_USERNAME
        return _Credentials(username, password)

    def _configured_secret(self) -> str | None:
        settings = self._settings
        if settings.password_env:
            value = self._environ.get(settings.password_env)
            if not value:
                raise RemoteError(
                    f"{self.display}: the environment variable {settings.password_env} named by "
                    "'password_env' is not set; set it or fix the key",
                    reason=SOURCE_AUTH_FAILED,
                )
            return value
        if settings.password_file:
            return _read_secret_file(settings.password_file, self.display)
        return None

    def _known_secrets(self) -> list[str]:
        # A URL user without password may be a token (https://<token>@github.com/...).
        token_user = self._url_user if self._url_password is None else None
        from_env = self._environ.get(self._settings.password_env or "", "")
        return [s for s in (self._url_password, token_user, from_env) if s]

    def _error(
        self, what: str, summary: str, detail: str, credentials: _Credentials, reason: str = SOURCE_UNREACHABLE
    ) -> RemoteError:
        detail = redact(" ".join(detail.split()), [*credentials.secrets(), *self._known_secrets()])
        if reason != SOURCE_AUTH_FAILED:
            hint = "check the URL and the network"
        elif _is_ssh(self._location):
            hint = "check 'ssh_key_file', 'ssh_known_hosts' and the user in the URL"
        else:
            hint = "check 'username' and the password or token"
        detail = f" ({detail})" if detail else ""
        return RemoteError(f"{self.display}: cannot {what}: {summary}{detail}; {hint}", reason=reason)


class _SshVendor(SSHVendor):
    """Runs the ``ssh`` client for dulwich, keeping its stderr (dulwich's default vendor
    drops it when the connection fails before Git speaks) for the error message."""

    def __init__(self, args: list[str]) -> None:
        self._args = args
        self._stderr = tempfile.TemporaryFile()

    def run_command(
        self,
        host: str,
        command: bytes,
        username: str | None = None,
        port: int | None = None,
        password: str | None = None,
        key_filename: str | None = None,
        ssh_command: str | None = None,
        protocol_version: int | None = None,
    ) -> SubprocessWrapper:
        if password is not None:
            raise ValueError("ssh passwords are not supported; use ssh_key_file")
        if host.startswith("-"):
            raise ValueError(f"refusing the host name {host!r}")  # would be read as an ssh option
        args = list(self._args)
        if port:
            args += ["-p", str(port)]
        if protocol_version is None or protocol_version > 0:
            args += ["-o", f"SetEnv GIT_PROTOCOL=version={protocol_version or 2}"]
        args.append(f"{username}@{host}" if username else host)
        proc = subprocess.Popen(
            [*args, command.decode()], bufsize=0, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr
        )
        return SubprocessWrapper(proc)

    def stderr_text(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read(_STDERR_LIMIT).decode("utf-8", "replace").strip()

    def close(self) -> None:
        self._stderr.close()


def _read_secret_file(path: Path, display: str) -> str:
    try:
        value = path.read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        problem = getattr(exc, "strerror", None) or "not UTF-8 text"
        raise RemoteError(
            f"{display}: cannot read the password file {path} named by 'password_file' "
            f"({problem}); fix the file or the key",
            reason=SOURCE_AUTH_FAILED,
        ) from None
    if not value:
        raise RemoteError(f"{display}: the password file {path} is empty", reason=SOURCE_AUTH_FAILED)
    return value


def _is_ssh(location: str) -> bool:
    if location.startswith(("ssh://", "git+ssh://")):
        return True
    # scp-like user@host:path (a local path never has ':' before its first '/')
    head = location.split("/", 1)[0]
    return "://" not in location and ":" in head and not os.path.isabs(location)
