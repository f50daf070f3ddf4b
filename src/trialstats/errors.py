"""The one user-facing error class."""


class TrialstatsError(Exception):
    """A problem the user can fix (bad input, bad config, impossible request).

    The command-line interface prints the message as one paragraph and exits
    with status 2; library callers can catch it like any exception.
    """
