"""`python -m reds ...`: the same as the `reds` command."""
import sys

from .cli import main

sys.exit(main())
