"""The one client for forges (GitHub, GitLab, Gitea/Forgejo): commit statuses, review
comments edited in place, pull/merge request details, and the links to them.

* ``api`` — pure: the HTTP request each operation is, per forge, and what answers mean;
* ``client`` — sending: timeouts, retries with backoff, rate limits, token redaction;
* ``links`` — pure: a repository's web address and the pages of its PRs, commits, files;
* ``settings`` — which forge a source's settings describe, and its token.
"""
