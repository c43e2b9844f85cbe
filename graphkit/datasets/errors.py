"""Errors raised by the dataset registry."""
from __future__ import annotations

__all__ = ["DatasetNotFoundError", "ChecksumError", "UnsafeArchiveError"]


class DatasetNotFoundError(FileNotFoundError):
    """A dataset name is unknown, or one of its files is in none of the searched places."""


class ChecksumError(ValueError):
    """A dataset file exists but its size or sha256 differs from the one in its card."""


class UnsafeArchiveError(ValueError):
    """An archive holds a member that would be written outside the extraction folder."""
