"""Publishing builds: conda-pack tarballs, OCI images, pushes to every registry target.

``job.PublishJob`` is the scheduler's publish job (after a build is recorded); it calls
``build.publish_build``, which runs the build's outputs behind one interface
(``outputs``: each writes its files and offers attachments the image pushes as referrers).
The modules below have one job each: ``archive`` (deterministic
tars), ``pack`` (conda-pack), ``layers`` (package → layer plan), ``image`` (staging, layers,
config, manifest), ``base`` (base images, cached by digest), ``naming`` (repository names,
tags, annotations), ``targets`` (the built-in registry and external ones through oras),
``push`` (image and artifacts to one target), ``latest`` (moving ``latest`` on rollback).
"""
