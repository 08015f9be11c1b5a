"""UserError: the one base class of every mistake in what the user asked for (compression and profiling share it)."""

from __future__ import annotations


class UserError(ValueError):
    """A mistake in what the user asked for; the UI and the CLI show its message, never a traceback.

    It lives in ``compression`` (the lowest layer) so that compression's and profiling's error classes can both
    derive from it with imports pointing downward only. It stays a ValueError so existing ``except ValueError``
    handlers keep working."""
