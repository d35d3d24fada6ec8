"""The one base of every failure a user can act on.

Library code raises a :class:`HallpassError` (a subclass) whose message says what is wrong
and what to do; the ``hallpass`` group renders it once, as one ``Error: ...`` line with exit
status 1 and no traceback (``streams.cli.HallpassGroup``). Library code never raises click's
exceptions: only the commands speak click. Pure: imports nothing, so the policy core may use
it.
"""

from __future__ import annotations


class HallpassError(Exception):
    """A failure the user can act on; the message says what to do."""
