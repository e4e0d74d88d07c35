"""What every command shares about failure: the exit codes, and an exception said in one line."""

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0  # every file colourised or skipped; the command did its job
    FAILED = 1  # some files failed, or stdout or the report could not be written
    USAGE = 2  # bad option, OUTPUT unusable, missing or damaged weights, nothing to train or evaluate on
    LOCKED = 3  # OUTPUT is in use by another colorize batch run


def first_line(exc: BaseException, limit: int = 200) -> str:
    """An exception's message, first line only, at most `limit` characters; its type if it has no message."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:limit]


class CommandError(Exception):
    """A command cannot start or cannot finish; `code` is the exit code it gives."""

    def __init__(self, message: str, code: int = ExitCode.USAGE):
        super().__init__(message)
        self.code = code
