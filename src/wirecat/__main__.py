"""``python -m wirecat``: the same as the ``wirecat`` command."""

import sys

from wirecat.cli import main

sys.exit(main())
