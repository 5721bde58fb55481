"""File Orbit: managed file transfer with rclone embedded in-process.

One ``pip install`` gives the whole engine: typed endpoints (:class:`Local`, :class:`S3`,
:class:`Sftp`, :class:`Smb`), transfers with live progress and cancellation, durable jobs
with retries, chains, templates, events and an audit log, all with rclone running inside
this process (the wheel carries ``librclone.so``; no Go, no rclone binary). Events come
from local folder watches, remote polls, S3 notifications through SQS and cron schedules;
sources are stored objects (:meth:`Orbit.put_source` with :class:`SqsSource`,
:class:`LocalWatch` or :class:`RemotePoll`) that each run on one node at a time
(:meth:`Orbit.run_sources`), or run in this process alone (:meth:`Orbit.consume_sqs`,
:meth:`Orbit.watch_local`, :meth:`Orbit.poll_remote`). Notifications
(:meth:`Orbit.put_notification` with a :class:`Webhook`, :class:`Email`, :class:`Slack` or
:class:`Teams` channel) report job, source and endpoint events through a durable outbox
that :meth:`Orbit.run_notifier` sends. Agents on other hosts run transfers through the
control plane's API (:meth:`Orbit.create_agent` gives the enrolment token, :meth:`Orbit.agents`
lists them); an endpoint's :class:`Placement` pins its transfers to agents or labels.

Blocking API: :class:`Orbit`; asyncio API: :class:`AsyncOrbit`. Handles
(:class:`Transfer`, :class:`Job`) support ``wait(progress=callback)``, ``cancel()`` and
``await``. Errors are :class:`FileOrbitError` subclasses (see :mod:`file_orbit.errors`).
``python -m file_orbit worker --store URL`` runs workers as a service (see
:mod:`file_orbit.__main__`).

librclone is loaded from the package directory, unless ``$FILE_ORBIT_LIBRCLONE`` names
another ``librclone.so``. It starts a Go runtime in the process: use multiprocessing's
``spawn`` (or ``forkserver``) start method, never ``fork`` after File Orbit was used::

    multiprocessing.set_start_method("spawn")

Example::

    from file_orbit import Local, Orbit, Sftp

    orbit = Orbit("orbit.db")
    orbit.add_endpoint(Local("in", root="/data/in"))
    orbit.add_endpoint(Sftp("partner", host="sftp.example.com", user="acme", password="..."))
    transfer = orbit.copy("in", "partner", destination_path="inbox/{date:%Y-%m-%d}")
    transfer.wait(progress=lambda p: print(p.bytes, "of", p.total_bytes))
"""

from __future__ import annotations

import os as _os

from . import _native
from ._endpoints import Endpoint, Local, Placement, S3, Sftp, Smb
from ._handles import Job, Service, Transfer
from ._models import (
    AgentInfo,
    AgentStatus,
    AuditRecord,
    BandwidthUsage,
    Conflict,
    Diagnosis,
    EndpointInfo,
    Enrolment,
    Event,
    Filters,
    JobInfo,
    JobState,
    ListEntry,
    Listing,
    Mode,
    NotificationInfo,
    OutboxMessage,
    Progress,
    Rates,
    RcloneInfo,
    RetryPolicy,
    Scope,
    SourceCounters,
    SourceState,
    SourceStatus,
    SqsStats,
    Template,
    TransferSpec,
    WatchStats,
    WorkerInfo,
)
from ._notifications import (
    Channel,
    Email,
    MessageState,
    NotifyEvent,
    RateLimit,
    Slack,
    SmtpTls,
    Teams,
    Webhook,
)
from ._orbit import AsyncOrbit, Orbit
from ._sources import LocalWatch, RemotePoll, SourceSpec, SqsSource
from .errors import (
    AuthenticationError,
    CancelledError,
    ConfigError,
    ConnectionError,
    FileOrbitError,
    LibraryError,
    NotFoundError,
    PermissionDeniedError,
    ProtocolError,
    RemoteError,
    StoreError,
    WorkerLostError,
)

__all__ = [
    "AgentInfo",
    "AgentStatus",
    "AsyncOrbit",
    "AuditRecord",
    "BandwidthUsage",
    "AuthenticationError",
    "CancelledError",
    "Channel",
    "ConfigError",
    "Conflict",
    "ConnectionError",
    "Diagnosis",
    "Email",
    "Endpoint",
    "EndpointInfo",
    "Enrolment",
    "Event",
    "FileOrbitError",
    "Filters",
    "Job",
    "JobInfo",
    "JobState",
    "LibraryError",
    "ListEntry",
    "Listing",
    "Local",
    "LocalWatch",
    "MessageState",
    "Mode",
    "NotFoundError",
    "NotificationInfo",
    "NotifyEvent",
    "Orbit",
    "OutboxMessage",
    "PermissionDeniedError",
    "Placement",
    "Progress",
    "ProtocolError",
    "RateLimit",
    "Rates",
    "RcloneInfo",
    "RemoteError",
    "RemotePoll",
    "RetryPolicy",
    "S3",
    "Scope",
    "Service",
    "Sftp",
    "Slack",
    "Smb",
    "SmtpTls",
    "SourceCounters",
    "SourceSpec",
    "SourceState",
    "SourceStatus",
    "SqsSource",
    "SqsStats",
    "StoreError",
    "Teams",
    "Template",
    "Transfer",
    "TransferSpec",
    "WatchStats",
    "Webhook",
    "WorkerInfo",
    "WorkerLostError",
    "PINNED_RCLONE_VERSION",
    "rclone_info",
]

PINNED_RCLONE_VERSION: str = _native.PINNED_RCLONE_VERSION
"""The rclone release this File Orbit was built and tested with."""

# The librclone.so the wheel carries; the native module prefers $FILE_ORBIT_LIBRCLONE.
_PACKAGED_LIBRCLONE = _os.path.join(_os.path.dirname(_os.path.abspath(__file__)), "librclone.so")
_native.set_library_path(_PACKAGED_LIBRCLONE if _os.path.isfile(_PACKAGED_LIBRCLONE) else None)


def rclone_info() -> RcloneInfo:
    """Loads librclone (if not yet) and says which library and rclone version are in use."""
    path, version = _native.load_rclone()
    return RcloneInfo(path, version)
