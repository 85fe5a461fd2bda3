"""`python -m vocalsep.cli ...`: the `vocalsep` command."""

import sys

from vocalsep.cli.main import main

sys.exit(main())
