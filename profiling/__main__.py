"""``python -m profiling``: the command line (see profiling/cli.py)."""

import sys

from profiling.cli import main

sys.exit(main())
