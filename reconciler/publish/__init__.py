"""Publishing builds: conda-pack tarballs, OCI images, pushes to every registry target.

``job.PublishJob`` is the scheduler's publish job (after a build is recorded); it calls
``build.publish_build``, which runs the build's outputs behind one interface
(``outputs``: each writes its files and offers attachments the image pushes as referrers).
The modules below have one job each: ``archive`` (deterministic tars), ``pack``
(conda-pack), ``layers`` (package → layer plan), ``relocate`` (moving the prefix to the
image path), ``image`` (layers, config, manifest), ``assemble`` (one build's image: base,
layers, activation, labels, whether it runs), ``base`` (choosing the base; bases from
registries, cached by digest), ``hostbase`` (the built-in base from this host's C
library), ``glibc`` (can the programs run on the base), ``activation`` (variables of an
activated environment), ``naming`` (repository names, tags, labels), ``targets`` (the
built-in registry and external ones through oras), ``push`` (image and artifacts to one
target), ``latest`` (moving ``latest`` on rollback).
"""
