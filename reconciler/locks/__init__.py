"""Committed lockfiles: environments locked in Git, and the pull requests that update them.

* ``check`` — whether a lock still matches its spec (``LockStale``) and can be installed here;
* ``desired`` — a desired environment with a lockfile becomes a *locked spec* or a rejection;
* ``write`` and ``relock`` — solve again and write committed lockfiles (``condaops lock``,
  update pull requests).

Elsewhere: ``lockfiles`` (the reasons lock problems carry, with no imports: the sources use
them), ``build.locked`` (reading lock bytes into records: builds and reviews) and
``lockcommand`` (``condaops lock``).
"""
