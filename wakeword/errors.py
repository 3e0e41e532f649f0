"""The one exception type the CLI turns into a one-line message and an exit code."""


class WakewordError(Exception):
    """A user-facing error: bad input, missing file, missing dependency.

    The message is one line that says what is wrong and, where it helps, what to do.
    """

    exit_code = 2


class AudioError(WakewordError):
    """An audio file or buffer that cannot be used as 16 kHz mono speech."""


class ModelError(WakewordError):
    """A model or weight file that is missing, truncated or from another version."""
