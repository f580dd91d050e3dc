"""`python -m vae_core ...`: see vae_core.cli."""

import sys

from vae_core.cli import main

sys.exit(main())
