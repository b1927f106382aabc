"""Settings of sources: where desired state comes from (a directory or a Git remote), with
the keys of commit statuses, webhooks, change requests and update pull requests.
Part of the frozen Settings tree (``settings.py``); nothing is read here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from condaops.config.fielddoc import doc as _doc


@dataclass(frozen=True)
class UpdateSettings:
    """Update pull requests: on a schedule, environments with a committed lockfile are solved
    again; a changed solution is committed on a branch of its own and proposed as a pull/merge
    request (the forge of the source's `status_*` keys). Environments without a lockfile get
    an "updates available" report instead."""

    schedule: str = field(
        default="24h",
        metadata=_doc(
            "When to look: an interval (`6h`, `1d`) or a cron expression of five fields "
            "(`0 6 * * 1-5`: 06:00 UTC on weekdays)."
        ),
    )
    environments: tuple[str, ...] = field(
        default=("*",),
        metadata=_doc("Environments to update, as `<ns>/<name>` globs (`team/*`, `*/python-*`); `*` for all."),
    )
    cooldown: float = field(
        default=0.0,
        metadata=_doc(
            "A new package version is proposed only once it is this old (`3d`, `12h`): from the "
            "time the channel indexed it, else its build time. 0 proposes versions as soon as they appear."
        ),
    )
    group: str = field(
        default="environment",
        metadata=_doc(
            "One branch and pull request per `environment` (`<prefix>/<ns>/<name>`) or per "
            "`namespace` (`<prefix>/<ns>`, every environment of the namespace together)."
        ),
    )
    branch_prefix: str = field(default="condaops/update", metadata=_doc("Prefix of the update branches."))
    labels: tuple[str, ...] = field(default=("dependencies",), metadata=_doc("Labels put on the update pull requests."))
    pull_requests: bool = field(
        default=True,
        metadata=_doc(
            "Open pull requests (needs a Git source with `status_api`, `status_repo` and a token); "
            "false: only report, on the site and in `status --json`, what an update would change."
        ),
    )
    author: str = field(
        default="condaops <condaops@localhost>",
        metadata=_doc("Author and committer of the update commits, as `Name <email>`."),
    )


@dataclass(frozen=True)
class SourceSettings:
    """One place desired state comes from: a directory tree or a Git remote."""

    name: str = field(metadata=_doc("Unique source name; defaults to the folder name or the repository name."))
    directory: Path | None = field(default=None, metadata=_doc("Folder of environment files (exclusive with `git`)."))
    git: str | None = field(default=None, metadata=_doc("Git URL or local path (exclusive with `directory`)."))
    branch: str = field(default="main", metadata=_doc("Git branch to build."))
    path: str = field(default="", metadata=_doc("Sub-folder of the repository or directory holding the environments."))
    default_namespace: str = field(default="default", metadata=_doc("Namespace for files directly in the source root."))
    polling: bool | None = field(
        default=None,
        metadata=_doc("Force polling (true) or inotify (false); unset = poll on network filesystems."),
    )
    interval: float = field(default=60.0, metadata=_doc("Seconds between polls of a Git remote / safety re-scans."))
    allow_empty: bool = field(
        default=False,
        metadata=_doc("Let a revision with no environments retire them (with `prune`); by default it retires nothing."),
    )
    username: str | None = field(
        default=None, metadata=_doc("Git over http(s): user name; default `git` when a password or token is set.")
    )
    password_env: str | None = field(
        default=None, metadata=_doc("Git over http(s): environment variable holding the password or access token.")
    )
    password_file: Path | None = field(
        default=None,
        metadata=_doc("Git over http(s): file holding the password or access token (read at each fetch)."),
    )
    ssh_key_file: Path | None = field(
        default=None, metadata=_doc("Git over ssh: private key to use; default: ssh's own configuration.")
    )
    ssh_known_hosts: Path | None = field(
        default=None, metadata=_doc("Git over ssh: known_hosts file the server key must be in; default: ssh's own.")
    )
    mirror_dir: Path | None = field(
        default=None, metadata=_doc("Git: folder holding the bare mirror `<name>.git`; default `<store>/.cache/git`.")
    )
    status_api: str | None = field(
        default=None,
        metadata=_doc(
            "Commit statuses: `github`, `gitlab` or `gitea` to post each build's state for its commit; unset = off."
        ),
    )
    status_url: str | None = field(
        default=None,
        metadata=_doc(
            "Commit statuses: the API's base URL; default `https://api.github.com` for `github` "
            "(GitHub Enterprise: `https://<host>/api/v3`); the server's URL for `gitlab` and `gitea`."
        ),
    )
    status_repo: str | None = field(
        default=None,
        metadata=_doc(
            "Commit statuses: the repository as `owner/name`; for `gitlab` a project id or `group/project` path."
        ),
    )
    status_token_env: str | None = field(
        default=None, metadata=_doc("Commit statuses: environment variable holding the API token.")
    )
    status_token_file: Path | None = field(
        default=None, metadata=_doc("Commit statuses: file holding the API token (read at each post).")
    )
    status_context: str = field(
        default="condaops",
        metadata=_doc("Commit statuses: context prefix; each environment reports as `<context>/<ns>/<name>`."),
    )
    status_target_url: str | None = field(
        default=None,
        metadata=_doc("Commit statuses: base URL of the status site; each status links to `<url>/builds/<id>`."),
    )
    webhook_secret_env: str | None = field(
        default=None,
        metadata=_doc(
            "Webhooks: environment variable holding the secret that signs `POST /hooks/git` calls "
            "for this source; unset (and no `webhook_secret_file`) = webhooks cannot refresh it."
        ),
    )
    webhook_secret_file: Path | None = field(
        default=None, metadata=_doc("Webhooks: file holding the webhook secret (read at each call).")
    )
    change_requests: bool = field(
        default=False,
        metadata=_doc(
            "Change requests: review every open pull/merge request ref against `branch` (which "
            "environments change, and each one's package diff)."
        ),
    )
    change_refspecs: tuple[str, ...] = field(
        default=("refs/pull/*/head", "refs/merge-requests/*/head"),
        metadata=_doc("Change requests: ref globs that name open pull/merge requests."),
    )
    change_grace: float = field(
        default=86400.0,
        metadata=_doc("Change requests: how long a closed request's review is kept after its ref disappears."),
    )
    web_url: str | None = field(
        default=None,
        metadata=_doc(
            "Git: the repository's web address, for links to its pull requests, commits and files; "
            "unset = guessed from `git` for http(s) and ssh URLs (`git@host:o/r.git` → `https://host/o/r`)."
        ),
    )
    updates: UpdateSettings | None = field(
        default=None,
        metadata=_doc("Update pull requests for locked environments, reports for the others; unset = off."),
    )
