"""Errors of the environment intento works in, as opposed to bad input or bugs.

Input: none. Output: `OperationalError`, the base of the errors a command reports in one line
with exit code 1 and no traceback: a store or an audit log that cannot be read or written (a
full disk, a read-only or corrupted file), a run another process is driving. Kept in a module of
its own so that the command line can catch them without importing the engine.
"""


class OperationalError(Exception):
    """Something outside intento's input stopped the command; the message names it and its cause."""
