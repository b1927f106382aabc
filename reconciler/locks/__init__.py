"""Committed lockfiles: environments locked in Git, and the pull requests that update them.

* ``reasons`` — the CamelCase reasons lock problems carry (no imports: sources use them);
* ``read`` — conda-lock.yml and pixi.lock bytes → locked records per platform;
* ``check`` — whether a lock still matches its spec (``LockStale``) and can be installed here;
* ``desired`` — a desired environment with a lockfile becomes a *locked spec* or a rejection;
* ``write`` and ``relock`` — ``condaops lock``: solve and write the lockfiles of a working tree.

Nothing is imported here, so importing the reasons does not load conda-lock or rattler.
"""
