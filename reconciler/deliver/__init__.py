"""Where users meet their environments: Jupyter kernels, environment modules, names.

The *delivery* outputs of an environment follow its link, not a build's publishing: they
are written when the link switches (a new build, a rollback, a repair), point through
the stable link (a rebuild is picked up at the next kernel start or ``module load``), keep
pinned variants for the kept builds, and go when ``gc`` collects a build or the
environment is retired. ``sync.Deliveries`` is the one entry point; ``plan`` decides (pure),
``kernels`` and ``modules`` render (pure), ``observe`` reads (with ``activate``: the
packages' activation hooks, evaluated once per build) and ``fs`` writes.
"""
