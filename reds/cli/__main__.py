"""`python -m reds.cli ...`: the same as the `reds` command."""
import sys

from . import main

sys.exit(main())
