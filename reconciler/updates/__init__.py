"""Update pull requests for locked environments, reports for the others.

* ``plan`` — pure: which environments, which branch, what to do with a branch (push, keep,
  close, hold) from what the remote, the state DB and the new solution say;
* ``render`` — pure: the pull request's title, body and commit message;
* ``gitrepo`` — the update branches in Git: a mirror, commits of new locks, pushes;
* ``job`` — one scheduled run for one source: solve, commit, push, record;
* ``publish`` — the pull requests on the forge (a background thread, retried later).
"""
