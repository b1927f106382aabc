"""The built-in OCI registry: distribution API on Litestar, content on a filesystem or S3.

Public surface: ``condaops.registry.app`` (``registry_router``, ``create_registry_app``),
``condaops.registry.api`` (``Registry``, ``open_registry``) and
``condaops.registry.storage`` (``Storage``, ``open_storage``).
"""
