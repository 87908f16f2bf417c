"""bench's one error hierarchy: every error that is the user's to fix is a ``BenchError``.

Library code raises these; only ``bench.cli`` turns them into a one-line message and an exit status
(``BenchError.exit_status``). Anything else that escapes is a bug and keeps its traceback.

The classes live here, below every other bench module, so that any module can raise them without
importing the command line. The modules that raise them also re-export them under their old names
(``bench.codec.CodecError``, ``bench.storage.store.StoreError``, …), so ``from bench.codec import CodecError``
keeps working. Some also derive from the builtin type that callers caught before the hierarchy
existed (``PyramidError`` is a ``ValueError``, ``UnknownCodecError`` a ``KeyError``).
"""

from __future__ import annotations


class BenchError(Exception):
    """Something the user can fix (bad arguments, missing data, a damaged file): printed as one line."""

    exit_status: int = 2


class UsageError(BenchError):
    """Bad arguments or a request that cannot be served as asked."""


class ConfigError(UsageError):
    """A run configuration (``bench.running.config.RunConfig``) is invalid; raised before anything loads."""


class CodecError(BenchError):
    """A codec could not do what was asked: bad input, a damaged bitstream, a failing binary."""


class BitstreamError(CodecError):
    """The bytes handed to ``decode`` are truncated, corrupted or not this codec's format."""


class UnknownCodecError(BenchError, KeyError):
    """No codec is registered under the name a spec asks for."""

    def __str__(self) -> str:  # KeyError quotes its message; say it plainly
        return str(self.args[0]) if self.args else ""


class DatasetError(BenchError):
    """A dataset is missing, incomplete, or does not match its checksums."""


class ImageError(BenchError):
    """An input image cannot be read or is not something bench codes (e.g. 16-bit, real alpha)."""


class PyramidError(BenchError, ValueError):
    """A scale combination or anchoring is invalid, or the image is too small for it."""


class EnvelopeError(BenchError):
    """The file is not a bench bitstream, or it is truncated or corrupted."""


class StoreError(BenchError):
    """The run directory cannot be written or its files are not bench's."""


class RunFolderBusyError(StoreError):
    """Another ``bench run`` is writing to the same run directory."""


class ReportError(BenchError, ValueError):
    """Run directories cannot be turned into a report (no records, records missing fields)."""


class CheckError(BenchError):
    """``bench check`` cannot run or compare (no baseline, other configuration, unusable output folder)."""


class FuzzError(BenchError):
    """The fuzz run itself cannot go on (unknown decoder, a target that cannot be set up)."""


class DistributedError(BenchError):
    """The cluster cannot be reached or cannot run this sweep (no workers, other bench code)."""


class TrainingError(BenchError):
    """A training command cannot start or resume as asked (conflicting options, unusable checkpoint)."""


# OS errors that name a path the user gave (a missing file, a folder where a file was expected):
# as much the user's to fix as a BenchError.
USER_OS_ERRORS: tuple[type[OSError], ...] = (FileNotFoundError, PermissionError, FileExistsError,
                                             IsADirectoryError, NotADirectoryError)


def is_user_error(error: BaseException) -> bool:
    """True for errors printed as one line (the user's to fix), False for bugs (traceback)."""
    return isinstance(error, (BenchError, *USER_OS_ERRORS))


def exit_status(error: BaseException) -> int:
    """The exit status ``bench`` ends with after a user error."""
    return getattr(error, "exit_status", 2)
