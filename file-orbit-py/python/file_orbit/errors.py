"""File Orbit's exceptions, one class per kind of failure of the core.

Every exception raised by File Orbit is a :class:`FileOrbitError`. Where a builtin
exception means the same thing, the class is also a subclass of it, so ordinary
``except`` clauses work: :class:`ConfigError` is a :class:`ValueError`,
:class:`NotFoundError` a :class:`FileNotFoundError`, :class:`PermissionDeniedError` a
:class:`PermissionError` and :class:`ConnectionError` the builtin :class:`ConnectionError`.
Waiting longer than a ``timeout`` raises the builtin :class:`TimeoutError`.

Messages never contain a password, key or token: the core redacts them before they
reach Python.
"""

from __future__ import annotations

import builtins

__all__ = [
    "AuthenticationError",
    "CancelledError",
    "ConfigError",
    "ConnectionError",
    "FileOrbitError",
    "LibraryError",
    "NotFoundError",
    "PermissionDeniedError",
    "ProtocolError",
    "RemoteError",
    "StoreError",
    "WorkerLostError",
]


class FileOrbitError(Exception):
    """Base class of every File Orbit error.

    Attributes:
        kind: The core's error kind, e.g. ``"Authentication"`` or ``"NotFound"``.
        retryable: True when the same request may succeed later (network trouble).
        context: What was being done, e.g. ``"rclone operations/copyfile"``.
        message: What went wrong, with secrets redacted.
        field: The input field at fault, as a path (``"spec.parallelism"``,
            ``"next_hops[0].filters.include[1]"``), or None when the error is not about
            one field. ``str(error)`` reads ``"context: field: message"``.
    """

    kind: str = ""
    retryable: bool = False
    context: str = ""
    message: str = ""
    field: str | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class LibraryError(FileOrbitError):
    """librclone could not be loaded or initialised."""


class ConfigError(FileOrbitError, ValueError):
    """A configuration or request is invalid; the message names the field and value."""


class NotFoundError(FileOrbitError, FileNotFoundError):
    """A file, directory, bucket, share, endpoint, template, job or event does not exist."""


class CancelledError(FileOrbitError):
    """The transfer or job was cancelled on request."""


class AuthenticationError(FileOrbitError):
    """The server refused the credentials (for SFTP also: its host key did not match)."""


class PermissionDeniedError(FileOrbitError, PermissionError):
    """The credentials were accepted but the action is not allowed."""


class ConnectionError(FileOrbitError, builtins.ConnectionError):
    """The server could not be reached (DNS, refused, timeout, TLS, reset). Retryable."""


class RemoteError(FileOrbitError):
    """rclone failed while doing the work (network, remote or disk trouble)."""


class ProtocolError(FileOrbitError):
    """rclone (or the native module) answered something File Orbit did not understand."""


class StoreError(FileOrbitError):
    """The store (SQLite or PostgreSQL) refused or failed an operation; ``retryable`` when
    it did not answer (network or database server down)."""


class WorkerLostError(FileOrbitError):
    """The worker running a job was lost during its last allowed attempt."""


# The one table from the core's error kinds to the classes above.
_BY_KIND: dict[str, type[FileOrbitError]] = {
    "Library": LibraryError,
    "InvalidInput": ConfigError,
    "NotFound": NotFoundError,
    "Cancelled": CancelledError,
    "Authentication": AuthenticationError,
    "PermissionDenied": PermissionDeniedError,
    "Connection": ConnectionError,
    "Remote": RemoteError,
    "Protocol": ProtocolError,
    "Store": StoreError,
    "WorkerLost": WorkerLostError,
}


def _from_kind(
    kind: str, retryable: bool, context: str, message: str, field: str | None = None
) -> FileOrbitError:
    """The exception for a core error of ``kind`` (the native module calls this)."""
    cls = _BY_KIND.get(kind, FileOrbitError)
    detail = f"{field}: {message}" if field else message
    error = cls(f"{context}: {detail}" if context else detail)
    error.kind = kind
    error.retryable = retryable
    error.context = context
    error.message = message
    error.field = field
    return error
