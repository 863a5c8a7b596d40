"""The errors a user can fix: bad data, bad settings, a missing or unfinished model.

Every one derives from `TfpRealnvpError` and from the builtin type that says what happened
(`ValueError`, `FileNotFoundError`, `FileExistsError`, `FloatingPointError`), so callers may
catch either. The CLI reports exactly these as one-line messages; anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations


class TfpRealnvpError(Exception):
    """Base of the errors that mean bad input or state; the message says what to change."""


class ConfigError(TfpRealnvpError, ValueError):
    """A setting out of range, unknown, or not changeable (e.g. the architecture on resume)."""


class DataError(TfpRealnvpError, ValueError):
    """User data that cannot be used; the message names the file, row or column and the fix."""


class DataFileNotFoundError(DataError, FileNotFoundError):
    """A data file that does not exist (or is a directory)."""


class ModelNotFoundError(TfpRealnvpError, FileNotFoundError):
    """A path that holds neither a finished run nor a complete export."""


class RunExistsError(TfpRealnvpError, FileExistsError):
    """A run directory or export version that is already there: never overwritten."""


class TrainingDivergedError(TfpRealnvpError, FloatingPointError):
    """The loss became NaN or infinite; the last good weights are kept."""


class TrainingInterruptedError(TfpRealnvpError):
    """Training was stopped by SIGINT (Ctrl-C) or SIGTERM; a checkpoint was written at the
    last finished epoch, so the run resumes from there."""

    def __init__(self, message: str, signal_number: int) -> None:
        super().__init__(message)
        self.signal_number = signal_number


class RunLockedError(TfpRealnvpError):
    """Another live process is training this run directory."""
