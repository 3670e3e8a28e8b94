"""`reds`: train nested submodel families, inspect them, export them, time them on boards.

User mistakes (a missing folder, a corrupt file, a budget nothing fits) print one line
`reds: error: ...` and exit 2; Ctrl-C exits 130. Anything else is a bug and keeps its
traceback.
"""
from __future__ import annotations

import sys

from ..errors import RedsError
from .commands import COMMANDS
from .parser import build_parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        COMMANDS[args.command](args)
    except RedsError as e:
        print(f"reds: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("reds: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `reds ... | head`: the reader left; not an error
        sys.stderr.close()
        return 0
    return 0


