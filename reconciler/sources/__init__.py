"""Sources of desired state.

* ``layout``    — pure rules: relative path → ``<namespace>/<name>`` (shared by every source);
* ``directory`` — ``read_directory(settings, cache=...)`` → ``SourceSnapshot`` of a folder tree;
* ``watch``     — ``DirectoryWatcher``: settled, relevant changes under a directory source;
* ``fstype``    — which filesystem a path is on, and whether inotify can be trusted there.

Nothing is imported here, so importing one source does not load the others' dependencies
(watchfiles, dulwich).
"""
