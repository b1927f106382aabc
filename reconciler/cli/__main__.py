"""``python -m condaops.reconciler.cli``: the same as the ``condaops`` command."""

import sys

from condaops.reconciler.cli import main

sys.exit(main())
