"""The one kind of error a user can cause and fix: its message is one sentence that says how."""


class UserError(Exception):
    """Bad input, a damaged or busy file, a setting that cannot work; the command line prints the message
    as one line and exits with 1, never a traceback."""
