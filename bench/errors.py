"""Which exceptions are the user's to fix (printed as one clear line) rather than bugs (traceback)."""

from __future__ import annotations


def user_error_types() -> tuple[type[BaseException], ...]:
    from bench.cli import UsageError
    from bench.codec import CodecError
    from bench.datasets import DatasetError
    from bench.envelope import EnvelopeError
    from bench.images import ImageError
    from bench.pyramid import PyramidError
    from bench.registry import UnknownCodecError
    from bench.store import StoreError

    return (UsageError, CodecError, DatasetError, EnvelopeError, ImageError, PyramidError,
            UnknownCodecError, StoreError, FileNotFoundError, PermissionError, FileExistsError,
            IsADirectoryError, NotADirectoryError)


def is_user_error(error: BaseException) -> bool:
    return isinstance(error, user_error_types())
