"""Real Git repositories and servers for tests, all on 127.0.0.1 and stopping themselves.

* ``require_git()`` — the git binary, or skip the test (fail instead when ``CI=true``);
* ``GitRepo`` — a work tree made and changed with the git CLI (fixed identity and dates);
* ``serve_git_daemon(root)`` — ``git daemon`` exporting every repository under ``root``;
* ``serve_git_http(root, auth=None)`` — smart HTTP: ``git http-backend`` run as a CGI
  behind a threaded HTTP server, optionally requiring basic auth, with a request log;
* ``serve_git_ssh(workdir)`` — ``sshd`` with throwaway host and client keys (skips when
  ``sshd`` is missing or cannot start).

Servers yield their base URL; a repository at ``root/<name>`` is ``<url>/<name>``.
"""

from __future__ import annotations

import base64
import contextlib
import getpass
import http.server
import os
import shutil
import socket
import subprocess
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.channels import LoggedRequest, RequestLog, ServedURL
from tests.support.ci import on_ci, skip_or_fail
from tests.support.loopback import serve_http

FileContent = str | bytes | None  # None deletes the file
_EPOCH = 1_700_000_000  # commit dates count up from here, so SHAs are reproducible


def require_git() -> str:
    """The git executable; skip the test when it is missing, fail instead on CI."""
    found = shutil.which("git")
    if found:
        return found
    skip_or_fail("the git command-line tool is not installed; Git source tests need it to make repositories")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (for servers without port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"{what} exited with status {proc.returncode}: {err}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.02)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout}s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


# --- repositories -------------------------------------------------------------------------


class GitRepo:
    """A non-bare repository changed only through the git CLI."""

    def __init__(self, path: Path, *, branch: str = "main") -> None:
        self.path = path
        self.branch = branch
        self._ticks = 0
        path.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", branch)

    def git(self, *args: str, input: bytes | None = None) -> str:
        """Run git in the repository with a fixed identity; return stdout stripped."""
        self._ticks += 1
        date = f"@{_EPOCH + self._ticks} +0000"
        env = {
            **os.environ,
            "GIT_AUTHOR_NAME": "Test",
            "GIT_AUTHOR_EMAIL": "test@example.org",
            "GIT_AUTHOR_DATE": date,
            "GIT_COMMITTER_NAME": "Test",
            "GIT_COMMITTER_EMAIL": "test@example.org",
            "GIT_COMMITTER_DATE": date,
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
        }
        done = subprocess.run(
            [require_git(), *args], cwd=self.path, env=env, input=input, capture_output=True, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"git {' '.join(args)} failed: {done.stderr.decode(errors='replace')}")
        return done.stdout.decode().strip()

    def write(self, files: Mapping[str, FileContent]) -> None:
        for rel, content in files.items():
            target = self.path / rel
            if content is None:
                if target.is_symlink() or target.is_file():
                    target.unlink()
                elif target.is_dir():
                    shutil.rmtree(target)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_symlink():
                target.unlink()
            elif target.is_dir():
                shutil.rmtree(target)
            target.write_bytes(content.encode() if isinstance(content, str) else content)

    def commit(
        self,
        files: Mapping[str, FileContent] | None = None,
        message: str = "change",
        *,
        symlinks: Mapping[str, str] | None = None,
    ) -> str:
        """Write ``files`` (None deletes), add ``symlinks`` (path -> target), commit everything."""
        self.write(files or {})
        for rel, target in (symlinks or {}).items():
            link = self.path / rel
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(target)
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.head()

    def head(self, ref: str = "HEAD") -> str:
        return self.git("rev-parse", ref)

    def update_ref(self, ref: str, sha: str) -> None:
        self.git("update-ref", ref, sha)

    def reset_hard(self, sha: str) -> None:
        """Move the branch to ``sha`` (a force-push, as the remote sees it)."""
        self.git("reset", "-q", "--hard", sha)

    def orphan_commit(self, files: Mapping[str, FileContent], message: str = "rewritten") -> str:
        """Replace the branch with a new root commit holding exactly ``files``."""
        self.git("checkout", "-q", "--orphan", "rewrite-tmp")
        self.git("rm", "-rqf", "--ignore-unmatch", ".")
        self.write(files)
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)
        sha = self.head()
        self.git("branch", "-qf", self.branch, sha)
        self.git("checkout", "-q", self.branch)
        self.git("branch", "-qD", "rewrite-tmp")
        return sha

    def blob(self, content: bytes) -> str:
        return self.git("hash-object", "-w", "--stdin", input=content)

    def raw_tree(self, entries: list[tuple[str, bytes, str]]) -> str:
        """Write a tree with entries (octal mode, name, sha) as given: no name checks."""
        body = b"".join(mode.encode() + b" " + name + b"\0" + bytes.fromhex(sha) for mode, name, sha in entries)
        return self.git("hash-object", "-t", "tree", "-w", "--literally", "--stdin", input=body)

    def commit_tree(self, tree: str, message: str = "raw tree") -> str:
        """Commit ``tree`` on top of the branch and move the branch there."""
        sha = self.git("commit-tree", tree, "-p", "HEAD", "-m", message)
        self.update_ref(f"refs/heads/{self.branch}", sha)
        return sha


# --- git daemon ---------------------------------------------------------------------------


@contextlib.contextmanager
def serve_git_daemon(root: Path, *, port: int | None = None, receive_pack: bool = False) -> Iterator[str]:
    """``git daemon`` exporting every repository under ``root``; yields ``git://127.0.0.1:<port>``.
    ``port``: listen there (a test's remote that comes back); default a free one.
    ``receive_pack``: accept pushes (``--enable=receive-pack``)."""
    port = port or free_port()  # git daemon has no port 0
    proc = subprocess.Popen(
        [
            require_git(),
            "daemon",
            "--reuseaddr",
            "--listen=127.0.0.1",
            f"--port={port}",
            f"--base-path={root}",
            "--export-all",
            "--informative-errors",
            *(["--enable=receive-pack"] if receive_pack else []),
            str(root),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_for_port(port, proc, "git daemon")
        yield f"git://127.0.0.1:{port}"
    finally:
        _stop(proc)


# --- smart HTTP ---------------------------------------------------------------------------


class _GitHttpHandler(http.server.BaseHTTPRequestHandler):
    """Runs ``git http-backend`` per request, as a web server runs a CGI program."""

    root: Path
    log: RequestLog
    auth: str | None  # the expected Authorization header, or None for no auth

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _handle(self) -> None:
        if self.auth is not None and self.headers.get("Authorization") != self.auth:
            self._answer(401, {"WWW-Authenticate": 'Basic realm="git"'}, b"authentication required\n")
            return
        status, headers, body = self._run_backend(self._body())
        self._answer(status, headers, body)

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0], 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _run_backend(self, body: bytes) -> tuple[int, dict[str, str], bytes]:
        url = urllib.parse.urlsplit(self.path)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": str(self.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "REQUEST_METHOD": self.command,
            "PATH_INFO": urllib.parse.unquote(url.path),
            "QUERY_STRING": url.query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_ADDR": self.client_address[0],
            "REMOTE_USER": "test" if self.auth else "",
        }
        for header in ("Content-Encoding", "Git-Protocol"):
            if value := self.headers.get(header):
                env["HTTP_" + header.upper().replace("-", "_")] = value
        if "HTTP_GIT_PROTOCOL" in env:
            env["GIT_PROTOCOL"] = env["HTTP_GIT_PROTOCOL"]
        done = subprocess.run([require_git(), "http-backend"], input=body, env=env, capture_output=True, check=False)
        head, _, payload = done.stdout.partition(b"\r\n\r\n")
        status, headers = 200, {}
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.split()[0])
            elif name:
                headers[name] = value.strip()
        return status, headers, payload

    def _answer(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        self.log.add(LoggedRequest(self.command, self.path, status))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # the RequestLog is the record


def basic_auth_header(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


@contextlib.contextmanager
def serve_git_http(root: Path, *, auth: tuple[str, str] | None = None) -> Iterator[ServedURL]:
    """Smart HTTP for every repository under ``root``; ``auth`` = (user, password) to require."""
    log = RequestLog()
    expected = basic_auth_header(*auth) if auth else None
    handler = type("GitHttpHandler", (_GitHttpHandler,), {"root": root, "log": log, "auth": expected})
    with serve_http(handler, name="git-http") as url:
        yield ServedURL(url, log)


# --- ssh ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SshServer:
    """An sshd on 127.0.0.1 that accepts ``key`` for ``user``; ``known_hosts`` lists its key."""

    port: int
    user: str
    key: Path
    known_hosts: Path

    def url(self, repo: Path) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}{repo}"


def _sshd_or_skip() -> str:
    sshd = shutil.which("sshd") or ("/usr/sbin/sshd" if os.path.exists("/usr/sbin/sshd") else None)
    if sshd is None or shutil.which("ssh") is None or shutil.which("ssh-keygen") is None:
        skip_or_fail(
            "openssh-server and openssh-client are needed for the ssh:// test (apt-get install openssh-server)"
        )
    return sshd


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


@contextlib.contextmanager
def serve_git_ssh(workdir: Path) -> Iterator[SshServer]:
    """sshd on 127.0.0.1 with throwaway keys; repositories are reached by absolute path."""
    sshd = _sshd_or_skip()
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation dir
    workdir.mkdir(parents=True, exist_ok=True)
    host_key, client_key = workdir / "host_key", workdir / "client_key"
    _keygen(host_key)
    _keygen(client_key)
    port, user = free_port(), getpass.getuser()
    config = workdir / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\nPidFile {workdir / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {client_key}.pub\nAllowUsers {user}\nStrictModes no\nUsePAM no\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n"
        "AcceptEnv GIT_PROTOCOL\nLogLevel ERROR\n"
    )
    proc = subprocess.Popen(
        [sshd, "-D", "-e", "-f", str(config)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    known_hosts = workdir / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {(workdir / 'host_key.pub').read_text()}")
    try:
        try:
            _wait_for_port(port, proc, "sshd")
        except RuntimeError as exc:
            if on_ci():
                raise
            pytest.skip(f"sshd could not start here: {exc}")
        yield SshServer(port, user, client_key, known_hosts)
    finally:
        _stop(proc)
