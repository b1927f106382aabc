"""Policy as code: rules IT writes in Git (``condaops-policy.yaml``) and in settings,
checked against the solved packages of every platform for builds, reviews and the CI check.

* ``rules``    — the rules as data: parse one file, merge the layers of an environment (pure);
* ``licenses`` — judge one licence field against a licence rule (pure);
* ``check``    — ``check_policy(records_by_platform, rules) -> [Violation]`` (pure);
* ``load``     — read the site's and a source's policy files, give each environment its rules.
"""
