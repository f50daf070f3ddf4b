"""``python -m trialstats``."""

import sys

from trialstats.cli import main

sys.exit(main())
