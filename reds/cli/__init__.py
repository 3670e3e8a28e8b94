"""`reds`: train nested submodel families, inspect them, export them, time them on boards.

User mistakes (a missing folder, a corrupt file, a budget nothing fits) and the system's
refusals (a read-only or full disk, a missing permission) print one line
`reds: error: ...` and exit 2; Ctrl-C exits 130. Anything else is a bug and keeps its
traceback.
"""
from __future__ import annotations

import errno
import os
import sys

from ..errors import RedsError
from .commands import COMMANDS
from .parser import build_parser


# OpenMP threads that wait by sleeping, not spinning: on a shared machine (two trainings on
# two cores) spinning threads steal each other's cores; tried here, both jobs stepped
# faster with it and one alone no slower. Read once, when torch starts its thread pool, so
# it must be set before torch is imported; a user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


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
    except OSError as e:  # read-only, full, not permitted, a file where a folder should be, ...
        print(f"reds: error: {os_error(e)}", file=sys.stderr)
        return 2
    return 0


def os_error(e: OSError) -> str:
    """An OSError as one line naming the path and what the system said."""
    where = " -> ".join(str(f) for f in (e.filename, e.filename2) if f is not None)
    what = e.strerror or str(e) or type(e).__name__
    hint = {errno.ENOSPC: "; free some space", errno.EROFS: "; choose a writable folder",
            errno.EACCES: "; check its permissions", errno.EPERM: "; check its permissions"}.get(e.errno, "")
    return f"{where}: {what}{hint}" if where else f"{what}{hint}"


