"""The one exception type for mistakes a user can fix (bad path, bad file, bad flag).

The CLI prints its message as a single line and exits non-zero, without a traceback.
Anything else that escapes is a bug in reds and keeps its traceback.
"""


class RedsError(Exception):
    """A user-facing error: the message says what is wrong and how to fix it."""
