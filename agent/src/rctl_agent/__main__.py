"""``python -m rctl_agent``: same as the ``rctl-agent`` console script."""

import sys

from .cli import main

sys.exit(main())
