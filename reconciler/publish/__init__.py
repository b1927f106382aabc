"""Publishing builds: conda-pack tarballs, OCI images, pushes to the built-in registry.

``publish_build`` is the entry point of the runner's ``publish`` step; the modules below
it have one job each: ``archive`` (deterministic tars), ``pack`` (conda-pack), ``layers``
(package → layer plan), ``image`` (staging, layers, config, manifest), ``naming``
(repository names, tags, annotations), ``push`` (registry API).
"""
