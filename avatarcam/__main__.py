"""`python -m avatarcam`: the command line."""

import sys

from avatarcam.cli import main

sys.exit(main())
