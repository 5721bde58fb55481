"""The values File Orbit takes and returns: transfer specs, filters, retry policies,
templates, progress, jobs, events, stored sources' status, notifications and their outbox
messages, agents and their enrolments, diagnoses. Plain frozen dataclasses; each converts to or from the core's JSON
form and does nothing else.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, Literal

from ._endpoints import Endpoint, Placement
from ._notifications import MessageState, NotifyEvent, RateLimit

__all__ = [
    "AgentInfo",
    "AgentStatus",
    "AuditRecord",
    "Conflict",
    "Diagnosis",
    "EndpointInfo",
    "Enrolment",
    "Event",
    "Filters",
    "JobInfo",
    "JobState",
    "Mode",
    "NotificationInfo",
    "OutboxMessage",
    "Progress",
    "RcloneInfo",
    "RetryPolicy",
    "Scope",
    "SourceCounters",
    "SourceState",
    "SourceStatus",
    "Template",
    "TransferSpec",
    "SqsStats",
    "WatchStats",
]

Mode = Literal["copy", "move", "sync"]
"""copy leaves the source; move deletes each source file once it arrived; sync makes the
destination tree equal the source (deleting extras)."""

Scope = Literal["tree", "file"]
"""Whether ``source_path`` names a directory tree or one file."""

Conflict = Literal["overwrite", "skip_existing", "newer_only"]
"""What happens to a destination file of the same name."""

JobState = Literal["queued", "leased", "succeeded", "dead", "cancelled"]
"""Where a durable job is: waiting, held by a worker, or finished one of three ways."""

AgentStatus = Literal["pending", "online", "offline", "revoked"]
"""Where an agent is: created but not enrolled yet, heard from within three leases, not
heard from since, or revoked."""

SourceState = Literal["starting", "running", "failing", "paused"]
"""What a stored source is doing: waiting for a node to take it (or being started),
running, enabled but not working (see its ``last_error``; retried), or paused."""


def _ms_to_datetime(ms: int | None) -> _dt.datetime | None:
    if ms is None:
        return None
    return _dt.datetime.fromtimestamp(ms / 1000, tz=_dt.timezone.utc)


def _endpoint_name(endpoint: str | Endpoint) -> str:
    return endpoint.name if isinstance(endpoint, Endpoint) else endpoint


def _size(value: int | str | None) -> str | None:
    # rclone reads a bare number as KiB: an int here means bytes.
    return f"{value}B" if isinstance(value, int) else value


def _age(value: float | _dt.timedelta | str | None) -> str | None:
    if isinstance(value, _dt.timedelta):
        value = value.total_seconds()
    return f"{value}s" if isinstance(value, (int, float)) else value


@dataclass(frozen=True)
class Filters:
    """Which files of a tree transfer take part.

    Globs apply to the path relative to the source (``"*.csv"``, ``"logs/**"``); an
    exclude beats an include; with includes, everything else is left out.

    Args:
        include: Globs of files to transfer.
        exclude: Globs of files to leave out.
        min_age: Only files older than this (seconds, a ``timedelta``, or rclone's
            ``"10m"``, ``"2d"``).
        max_age: Only files younger than this.
        min_size: Only files at least this big (bytes as ``int``, or rclone's ``"1k"``, ``"20M"``).
        max_size: Only files at most this big.
    """

    include: Sequence[str] = ()
    exclude: Sequence[str] = ()
    min_age: float | _dt.timedelta | str | None = None
    max_age: float | _dt.timedelta | str | None = None
    min_size: int | str | None = None
    max_size: int | str | None = None

    def _to_core(self) -> dict[str, Any]:
        return {
            "include": list(self.include),
            "exclude": list(self.exclude),
            "min_age": _age(self.min_age),
            "max_age": _age(self.max_age),
            "min_size": _size(self.min_size),
            "max_size": _size(self.max_size),
        }

    @classmethod
    def _from_core(cls, data: Mapping[str, Any]) -> Filters:
        return cls(
            include=tuple(data.get("include", ())),
            exclude=tuple(data.get("exclude", ())),
            min_age=data.get("min_age"),
            max_age=data.get("max_age"),
            min_size=data.get("min_size"),
            max_size=data.get("max_size"),
        )


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a durable job is retried after retryable failures.

    Args:
        max_attempts: Attempts in all, the first included.
        base_delay: Seconds before the second attempt; each later delay doubles (with
            jitter) up to ``max_delay``.
        max_delay: The longest delay, in seconds.
    """

    max_attempts: int = 5
    base_delay: float = 2.0
    max_delay: float = 300.0

    def _to_core(self) -> dict[str, Any]:
        return {
            "max_attempts": self.max_attempts,
            "base_delay_ms": round(self.base_delay * 1000),
            "max_delay_ms": round(self.max_delay * 1000),
        }

    @classmethod
    def _from_core(cls, data: Mapping[str, Any]) -> RetryPolicy:
        return cls(data["max_attempts"], data["base_delay_ms"] / 1000, data["max_delay_ms"] / 1000)


@dataclass(frozen=True)
class TransferSpec:
    """What to move where, and how.

    Args:
        source: The source endpoint (its name, or the endpoint itself).
        destination: The destination endpoint (its name, or the endpoint itself).
        destination_path: Destination path template: the file's new path (scope
            ``"file"``) or the directory the tree goes into, e.g.
            ``"archive/{year}/{month}/{filename}"``. Required: the core refuses an empty
            template (and so cannot name the endpoint's root itself).
        source_path: Path inside the source: the file (scope ``"file"``) or directory
            (default: the endpoint's root).
        mode: ``"copy"``, ``"move"`` or ``"sync"``.
        scope: ``"tree"`` (a directory) or ``"file"``.
        filters: Which files of a tree take part.
        conflict: ``"overwrite"`` (unless it already matches), ``"skip_existing"`` or
            ``"newer_only"``.
        verify: Compare source and destination afterwards (hash, or bytes); a difference
            fails the transfer.
        parallelism: Files transferred at once (None: a default for the endpoints' backends).
    """

    source: str | Endpoint
    destination: str | Endpoint
    _: KW_ONLY
    destination_path: str
    source_path: str = ""
    mode: Mode = "copy"
    scope: Scope = "tree"
    filters: Filters | None = None
    conflict: Conflict = "overwrite"
    verify: bool = False
    parallelism: int | None = None

    def _to_core(self) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "source": _endpoint_name(self.source),
            "source_path": self.source_path,
            "destination": _endpoint_name(self.destination),
            "destination_path": self.destination_path,
            "mode": self.mode,
            "scope": self.scope,
            "conflict": self.conflict,
            "verify": self.verify,
            "parallelism": self.parallelism,
        }
        if self.filters is not None:
            spec["filters"] = self.filters._to_core()
        return spec

    @classmethod
    def _from_core(cls, data: Mapping[str, Any]) -> TransferSpec:
        return cls(
            data["source"],
            data["destination"],
            source_path=data.get("source_path", ""),
            destination_path=data["destination_path"],
            mode=data.get("mode", "copy"),
            scope=data.get("scope", "tree"),
            # The core always has filters; empty ones are "no filters".
            filters=Filters._from_core(data["filters"]) if any((data.get("filters") or {}).values()) else None,
            conflict=data.get("conflict", "overwrite"),
            verify=data.get("verify", False),
            parallelism=data.get("parallelism"),
        )


@dataclass(frozen=True)
class Template:
    """A rule that turns file events into durable jobs (and, with a schedule, cron runs).

    A file event on ``spec.source`` whose path matches ``path_glob`` (and the size and age
    limits) becomes a job running ``spec`` for that one file: the spec's ``source_path``
    is the event's path and its scope ``"file"``; ``destination_path`` is a template such
    as ``"archive/{year}/{filename}"``.

    Args:
        name: The template's name.
        spec: The transfer; its source is the endpoint whose events are matched.
        path_glob: Glob on the path relative to the endpoint (``"incoming/**/*.csv"``;
            ``*`` stays within a directory, ``**`` crosses them).
        min_size: Only files at least this many bytes.
        max_size: Only files at most this many bytes.
        min_age: Only files modified at least this many seconds ago.
        content_type: Only files whose media type matches this glob (``"text/*"``;
            case-insensitive; read from the endpoint when the event does not say).
        metadata: Only files carrying each key with a value matching its glob
            (``{"dept": "fin*"}``: S3 user metadata, system keys; read from the endpoint
            when the event does not say).
        priority: Higher runs first.
        retry: Retry policy of the jobs.
        next_hops: Transfers to run one after another once a job succeeded.
        enabled: A disabled template matches nothing.
        schedule: Also run ``spec`` as it is on this cron schedule
            (``"sec min hour day month weekday"``, seconds optional, UTC).
        missed_ticks: ``"skip"`` or ``"run_once"``: ticks missed while no engine ran.
    """

    name: str
    spec: TransferSpec
    _: KW_ONLY
    path_glob: str = "**"
    min_size: int | None = None
    max_size: int | None = None
    min_age: float | None = None
    content_type: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    priority: int = 0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    next_hops: Sequence[TransferSpec] = ()
    enabled: bool = True
    schedule: str | None = None
    missed_ticks: Literal["skip", "run_once"] = "skip"

    def _to_core(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "matcher": {
                "source": _endpoint_name(self.spec.source),
                "path_glob": self.path_glob,
                "min_size": self.min_size,
                "max_size": self.max_size,
                "min_age_seconds": None if self.min_age is None else round(self.min_age),
                "content_type": self.content_type,
                "metadata": dict(self.metadata),
            },
            "spec": self.spec._to_core(),
            "priority": self.priority,
            "retry": self.retry._to_core(),
            "next_hops": [hop._to_core() for hop in self.next_hops],
            "enabled": self.enabled,
            "schedule": None
            if self.schedule is None
            else {"cron": self.schedule, "missed": self.missed_ticks},
        }

    @classmethod
    def _from_core(cls, data: Mapping[str, Any]) -> Template:
        matcher = data["matcher"]
        schedule = data.get("schedule")
        return cls(
            data["name"],
            TransferSpec._from_core(data["spec"]),
            path_glob=matcher["path_glob"],
            min_size=matcher.get("min_size"),
            max_size=matcher.get("max_size"),
            min_age=matcher.get("min_age_seconds"),
            content_type=matcher.get("content_type"),
            metadata=dict(matcher.get("metadata") or {}),
            priority=data.get("priority", 0),
            retry=RetryPolicy._from_core(data["retry"]),
            next_hops=tuple(TransferSpec._from_core(hop) for hop in data.get("next_hops", ())),
            enabled=data.get("enabled", True),
            schedule=schedule["cron"] if schedule else None,
            missed_ticks=schedule["missed"] if schedule else "skip",
        )


@dataclass(frozen=True)
class Progress:
    """A snapshot of a running transfer.

    Attributes:
        bytes: Bytes transferred so far.
        total_bytes: Bytes to transfer, as far as known yet.
        files: Files transferred so far.
        total_files: Files to transfer, as far as known yet.
        checks: Files compared (and found equal or not needing a transfer).
        errors: Errors so far (rclone retries some of them).
        speed: Bytes per second.
        eta: Seconds left, when rclone can tell.
        elapsed: Seconds since the transfer started.
    """

    bytes: int = 0
    total_bytes: int = 0
    files: int = 0
    total_files: int = 0
    checks: int = 0
    errors: int = 0
    speed: float = 0.0
    eta: float | None = None
    elapsed: float = 0.0


@dataclass(frozen=True)
class JobInfo:
    """A durable job as stored.

    Attributes:
        id: The job's id.
        state: ``"queued"``, ``"leased"``, ``"succeeded"``, ``"dead"`` or ``"cancelled"``.
        spec: The transfer.
        priority: Higher runs first (waiting jobs gain a point per aging interval).
        attempts: Attempts started so far.
        max_attempts: Attempts allowed.
        last_error: Why the last attempt failed (secrets redacted).
        last_error_kind: The error's kind, e.g. ``"Authentication"``.
        bytes: Bytes transferred (while running, as its worker last reported).
        files: Files transferred (while running, as its worker last reported).
        template: The template that made the job, if any.
        chain_id: The first job of the chain this job belongs to.
        parent_id: The job before this one in its chain.
        next_hops: Transfers still to run after this one.
        idempotency_key: The key that makes submitting twice harmless.
        cancel_requested: Cancellation was asked for and the worker is stopping.
        lease_owner: The worker holding the job.
        created_at: When it was submitted.
        updated_at: When it last changed.
        run_after: Not before this time (backoff after a failure).
        finished_at: When it succeeded, died or was cancelled.
        progress: The running attempt's progress as its worker last reported it (about once
            a second, seen from any process sharing the store); None when not running.
        warnings: What to know although it succeeded, e.g. names an SMB share renamed.
        lost_attempts: How often the worker running it was lost (crashed, killed, cut off).
        source_name: The stored source whose event made it (or its chain's first job), if any.
    """

    id: int
    state: JobState
    spec: TransferSpec
    priority: int
    attempts: int
    max_attempts: int
    last_error: str | None
    last_error_kind: str | None
    bytes: int
    files: int
    template: str | None
    chain_id: int
    parent_id: int | None
    next_hops: tuple[TransferSpec, ...]
    idempotency_key: str | None
    cancel_requested: bool
    lease_owner: str | None
    created_at: _dt.datetime
    updated_at: _dt.datetime
    run_after: _dt.datetime
    finished_at: _dt.datetime | None
    progress: Progress | None = None
    warnings: tuple[str, ...] = ()
    lost_attempts: int = 0
    source_name: str | None = None

    @property
    def done(self) -> bool:
        """Whether the job finished (succeeded, dead or cancelled)."""
        return self.state in ("succeeded", "dead", "cancelled")

    @classmethod
    def _from_core(cls, data: Mapping[str, Any]) -> JobInfo:
        return cls(
            id=data["id"],
            state=data["state"],
            spec=TransferSpec._from_core(data["spec"]),
            priority=data["priority"],
            attempts=data["attempts"],
            max_attempts=data["max_attempts"],
            last_error=data["last_error"],
            last_error_kind=data["last_error_kind"],
            bytes=data["bytes"],
            files=data["files"],
            template=data["template"],
            chain_id=data["chain_id"],
            parent_id=data["parent_id"],
            next_hops=tuple(TransferSpec._from_core(hop) for hop in data["next_hops"]),
            idempotency_key=data["idempotency_key"],
            cancel_requested=data["cancel_requested"],
            lease_owner=data["lease_owner"],
            created_at=_ms_to_datetime(data["created_at"]),  # type: ignore[arg-type]
            updated_at=_ms_to_datetime(data["updated_at"]),  # type: ignore[arg-type]
            run_after=_ms_to_datetime(data["run_after"]),  # type: ignore[arg-type]
            finished_at=_ms_to_datetime(data["finished_at"]),
            progress=_stored_progress(data.get("progress")),
            warnings=tuple(data.get("warnings") or ()),
            lost_attempts=data.get("lost_attempts", 0),
            source_name=data.get("source_name"),
        )


def _stored_progress(data: Mapping[str, Any] | None) -> Progress | None:
    """A job's stored progress (bytes, files, totals, speed, eta in seconds)."""
    if data is None:
        return None
    return Progress(
        bytes=data["bytes"],
        total_bytes=data["total_bytes"],
        files=data["files"],
        total_files=data["total_files"],
        speed=data["speed"],
        eta=data["eta_secs"],
    )


@dataclass(frozen=True)
class Event:
    """A stored event and what it became.

    Attributes:
        id: The event's id.
        source: Which kind of source saw it: ``"manual"``, ``"local-watch"``, ``"poll"``...
        dedup_key: Events with the same key are one event.
        payload: What the source said (never secrets), with the file and template.
        matched_templates: Templates the event matched.
        job_ids: The jobs it made.
        state: ``"received"``, ``"processed"`` or ``"dead"``.
        error: Why a dead event could not be used.
        created_at: When it was stored.
        duplicate: True when ``ingest`` found it stored already (nothing new was submitted).
        source_name: The stored source that produced it (see :meth:`Orbit.put_source`);
            None for a direct call, a schedule or a replay.
    """

    id: int
    source: str
    dedup_key: str | None
    payload: Any
    matched_templates: tuple[str, ...]
    job_ids: tuple[int, ...]
    state: Literal["received", "processed", "dead"]
    error: str | None
    created_at: _dt.datetime
    duplicate: bool = False
    source_name: str | None = None

    @classmethod
    def _from_core(cls, data: Mapping[str, Any], duplicate: bool = False) -> Event:
        return cls(
            id=data["id"],
            source=data["source"],
            dedup_key=data["dedup_key"],
            payload=data["payload"],
            matched_templates=tuple(data["matched_templates"]),
            job_ids=tuple(data["job_ids"]),
            state=data["state"],
            error=data["error"],
            created_at=_ms_to_datetime(data["created_at"]),  # type: ignore[arg-type]
            duplicate=duplicate,
            source_name=data["source_name"],
        )


@dataclass(frozen=True)
class SourceCounters:
    """What a stored source has done, summed over every node that ran it.

    Attributes:
        received: Notifications or files seen (SQS messages, redeliveries included;
            hand-overs of a watch; stable files of a poll).
        ingested: Events stored as new.
        duplicates: Events the store already had (redeliveries, rescans, other nodes).
        dead: Unusable messages stored as dead events.
        errors: Receives, hand-overs or polls that failed (retried).
    """

    received: int
    ingested: int
    duplicates: int
    dead: int
    errors: int


@dataclass(frozen=True)
class SourceStatus:
    """A stored source as listed (:meth:`Orbit.sources`): its definition, secrets shown as
    ``***``, and what the node running it last reported.

    Attributes:
        name: The source's name.
        kind: ``"sqs"``, ``"local_watch"`` or ``"remote_poll"``.
        spec: The kind's fields in the core's form (durations in milliseconds), secrets
            as ``"***"``.
        enabled: False while paused.
        placement: Where it may run: ``{"node": name}`` and/or ``{"labels": {...}}``;
            empty: on any node.
        revision: Bumped by every edit; the node running it restarts it on a change.
        state: See :data:`SourceState`.
        owner_node: The node running it, while its lease lasts.
        owner: The process holding the lease (``node/pid/n``).
        lease_until: When the lease runs out unless renewed.
        counters: Its :class:`SourceCounters`.
        last_event_at: When it last saw something.
        last_error: The last failure (never a secret).
        created_at: When it was first stored.
        updated_at: When it was last edited, paused or resumed.
    """

    name: str
    kind: Literal["sqs", "local_watch", "remote_poll"]
    spec: Mapping[str, Any]
    enabled: bool
    placement: Mapping[str, Any]
    revision: int
    state: SourceState
    owner_node: str | None
    owner: str | None
    lease_until: _dt.datetime | None
    counters: SourceCounters
    last_event_at: _dt.datetime | None
    last_error: str | None
    created_at: _dt.datetime
    updated_at: _dt.datetime

    @classmethod
    def _from_core(cls, data: Mapping[str, Any]) -> SourceStatus:
        return cls(
            **{
                **data,
                "counters": SourceCounters(**data["counters"]),
                "lease_until": _ms_to_datetime(data["lease_until"]),
                "last_event_at": _ms_to_datetime(data["last_event_at"]),
                "created_at": _ms_to_datetime(data["created_at"]),
                "updated_at": _ms_to_datetime(data["updated_at"]),
            }
        )


@dataclass(frozen=True)
class NotificationInfo:
    """A stored notification as listed (:meth:`Orbit.notifications`): its rule, its
    channel with secrets shown as ``***``, and its outbox messages counted by state.

    Attributes:
        name: The notification's name.
        kind: The channel's type: ``"webhook"``, ``"email"``, ``"slack"`` or ``"teams"``.
        channel: The channel's fields in the core's form (an email's sender as ``from``),
            secrets as ``"***"``.
        events: The events it reports (see :data:`NotifyEvent`).
        templates: Only jobs made from (or events matched by) these templates; empty: any.
        endpoints: Only jobs from or to (endpoint tests of) these endpoints; empty: any.
        sources: Only events, jobs and failures of these stored sources; empty: any.
        rate_limit: Its :class:`RateLimit`.
        max_attempts: Tries of one message before it is dead.
        enabled: False: stored, but nothing is sent.
        key_id: The id of the master key that sealed its channel.
        pending: Messages waiting (queued, collecting a digest, or being sent).
        sent: Messages sent.
        dead: Messages dead after their last try.
        last_sent_at: When the last message went out.
        created_at: When it was first stored.
        updated_at: When it was last stored.
    """

    name: str
    kind: Literal["webhook", "email", "slack", "teams"]
    channel: Mapping[str, Any]
    events: tuple[NotifyEvent, ...]
    templates: tuple[str, ...]
    endpoints: tuple[str, ...]
    sources: tuple[str, ...]
    rate_limit: RateLimit
    max_attempts: int
    enabled: bool
    key_id: str
    pending: int
    sent: int
    dead: int
    last_sent_at: _dt.datetime | None
    created_at: _dt.datetime
    updated_at: _dt.datetime

    @classmethod
    def _from_core(cls, data: Mapping[str, Any]) -> NotificationInfo:
        rule = data["rule"]
        given = rule.get("filter") or {}
        limit = rule.get("rate_limit") or {}
        default = RateLimit()
        return cls(
            name=data["name"],
            kind=data["kind"],
            channel=data["channel"],
            events=tuple(rule["events"]),
            templates=tuple(given.get("templates", ())),
            endpoints=tuple(given.get("endpoints", ())),
            sources=tuple(given.get("sources", ())),
            rate_limit=RateLimit(
                limit.get("messages", default.messages), limit.get("per_secs", default.per_seconds)
            ),
            max_attempts=rule["max_attempts"],
            enabled=data["enabled"],
            key_id=data["key_id"],
            pending=data["pending"],
            sent=data["sent"],
            dead=data["dead"],
            last_sent_at=_ms_to_datetime(data["last_sent_at"]),
            created_at=_ms_to_datetime(data["created_at"]),  # type: ignore[arg-type]
            updated_at=_ms_to_datetime(data["updated_at"]),  # type: ignore[arg-type]
        )


@dataclass(frozen=True)
class OutboxMessage:
    """One message of the notifications' outbox (:meth:`Orbit.outbox`).

    Attributes:
        id: The outbox row (for :meth:`Orbit.retry_notification_message` and paging).
        notification: The notification it belongs to.
        channel: The channel's type.
        message_id: The stable id receivers see (the webhook's ``X-File-Orbit-Id``, the
            mail's Message-ID), the same on every try.
        event: The event's name (see :data:`NotifyEvent`), or ``"digest"``.
        body: The message as JSON (schema ``file-orbit.notification/v1``: the job ids,
            endpoints, paths, error kind and message; never a secret).
        item_count: The events it tells of (more than one for a digest).
        state: See :data:`MessageState`.
        attempts: Tries so far.
        max_attempts: Tries before it is dead.
        run_after: When it is (next) due.
        last_error: Why the last try failed (never a secret).
        answer: What the channel answered to the send that worked (``"HTTP 200 OK"``,
            ``"SMTP 250 ..."``).
        created_at: When it was made.
        updated_at: When its state last changed.
        sent_at: When it was sent.
    """

    id: int
    notification: str
    channel: str
    message_id: str
    event: str
    body: Mapping[str, Any]
    item_count: int
    state: MessageState
    attempts: int
    max_attempts: int
    run_after: _dt.datetime
    last_error: str | None
    answer: str | None
    created_at: _dt.datetime
    updated_at: _dt.datetime
    sent_at: _dt.datetime | None

    @classmethod
    def _from_core(cls, data: Mapping[str, Any]) -> OutboxMessage:
        return cls(
            **{
                **data,
                "run_after": _ms_to_datetime(data["run_after"]),
                "created_at": _ms_to_datetime(data["created_at"]),
                "updated_at": _ms_to_datetime(data["updated_at"]),
                "sent_at": _ms_to_datetime(data["sent_at"]),
            }
        )


@dataclass(frozen=True)
class Diagnosis:
    """The outcome of :meth:`Orbit.test_endpoint`.

    Attributes:
        endpoint: The endpoint's name.
        problem: None when it works, else ``"dns"``, ``"connection_refused"``,
            ``"timeout"``, ``"tls"``, ``"authentication"``, ``"host_key_mismatch"``,
            ``"permission_denied"``, ``"not_found"``, ``"invalid_config"`` or ``"other"``.
        message: A sentence for a person: what is wrong, where, and what to check.
        warning: None, or what to know about an endpoint that works: its root does not
            exist yet (the first transfer to it creates it), or the probe file could not
            be removed.
    """

    endpoint: str
    problem: str | None
    message: str
    warning: str | None = None

    @property
    def ok(self) -> bool:
        """True when the endpoint was reached, its root listed and (unless skipped) written."""
        return self.problem is None


@dataclass(frozen=True)
class ListEntry:
    """A file or folder in a :class:`Listing`.

    Attributes:
        name: Its name in the folder.
        path: Its path relative to the endpoint's root.
        is_dir: Whether it is a folder.
        size: Bytes; None for a folder.
        modified: Its modification time as the remote reports it (RFC 3339), if it does.
    """

    name: str
    path: str
    is_dir: bool
    size: int | None
    modified: str | None


@dataclass(frozen=True)
class Listing:
    """One folder of an endpoint, from :meth:`Orbit.list_files`.

    Attributes:
        path: The folder, normalised (``"a/b"``; ``""`` for the endpoint's root).
        entries: Its folders, then its files, each by name.
        truncated: Whether the folder holds more entries than the limit let through.
    """

    path: str
    entries: list[ListEntry]
    truncated: bool


@dataclass(frozen=True)
class EndpointInfo:
    """A stored endpoint as listed: its configuration with secrets shown as ``***``.

    Attributes:
        name: The endpoint's name.
        kind: ``"local"``, ``"s3"``, ``"sftp"`` or ``"smb"``.
        config: The configuration in the core's form, secrets as ``"***"``.
        max_concurrent: Transfers at once involving this endpoint.
        key_id: The id of the master key that sealed its credentials.
        bandwidth: Its bandwidth limit as written (``None``: no limit).
        bandwidth_now: The rates that limit sets now.
        bandwidth_next: When a timetable next changes the rates, and to what.
        placement: The agents that may run its transfers (``None``: anywhere).
    """

    name: str
    kind: str
    config: Mapping[str, Any]
    max_concurrent: int
    key_id: str
    bandwidth: str | None
    bandwidth_now: Rates
    bandwidth_next: tuple[_dt.datetime, Rates] | None
    placement: Placement | None


@dataclass(frozen=True)
class Rates:
    """Bandwidth rates in bytes per second; ``None`` is no limit.

    Attributes:
        upload: Bytes written to the endpoint.
        download: Bytes read from it.
    """

    upload: int | None
    download: int | None


@dataclass(frozen=True)
class AuditRecord:
    """One record of the tamper-evident audit log.

    Attributes:
        id: The record's id.
        at: When it happened.
        actor: Who did it.
        action: What was done, e.g. ``"job.submitted"``.
        subject: What it was done to, e.g. ``"job/12"``.
        outcome: ``"ok"`` or ``"failed"``.
        detail: More about it (never secrets).
        prev_hash: The hash of the record before.
        hash: This record's hash.
    """

    id: int
    at: _dt.datetime
    actor: str
    action: str
    subject: str
    outcome: str
    detail: Any
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class BandwidthUsage:
    """What one endpoint's transfers in this process are allowed and move now.

    Attributes:
        endpoint: The endpoint; ``None`` for the service-wide limit on remote endpoints.
        limit: The rates in force in this process (its share of the endpoint's cap).
        upload_rate: Bytes per second written to it over the last two seconds or so.
        download_rate: Bytes per second read from it, likewise.
        upload_bytes: Bytes written to it since the process started.
        download_bytes: Bytes read from it since the process started.
    """

    endpoint: str | None
    limit: Rates
    upload_rate: float
    download_rate: float
    upload_bytes: int
    download_bytes: int


@dataclass(frozen=True)
class WorkerInfo:
    """A worker process of the cluster, from the worker registry.

    Attributes:
        id: ``host-pid``; its slots hold leases as ``host-pid-wN``.
        host: The host it runs on.
        pid: Its process id.
        slots: Transfers it runs at once.
        running: Transfers it ran at its last renewal.
        started_at: When it started.
        last_seen: When it last renewed its entry.
        alive: Renewed in time and not stopped.
        stopped_at: When it stopped, if it stopped cleanly.
    """

    id: str
    host: str
    pid: int
    slots: int
    running: int
    started_at: _dt.datetime
    last_seen: _dt.datetime
    alive: bool
    stopped_at: _dt.datetime | None


@dataclass(frozen=True)
class WatchStats:
    """Counters of a running local watch.

    Attributes:
        stored: Files handed over as new events.
        duplicates: Hand-overs the store already had (restarts, rescans).
        failed: Hand-overs that failed (they are retried).
        scans: Scans of the tree.
        watching: Whether the directory is being watched now.
        last_error: The last problem, if any.
    """

    stored: int
    duplicates: int
    failed: int
    scans: int
    watching: bool
    last_error: str | None


@dataclass(frozen=True)
class SqsStats:
    """Counters of a running SQS consumer since it started (counts of messages unless
    said).

    Attributes:
        received: Messages received, redeliveries included.
        ingested: Events stored as new (a message may hold several).
        duplicates: Events seen before (same dedup key): nothing new submitted.
        test_events: ``s3:TestEvent`` messages, deleted.
        dead: Messages stored as dead events (whole or some of their records unusable).
        deleted: Messages deleted from the queue.
        failed: Messages left on the queue because storing them failed (SQS redelivers
            them).
        receive_errors: Receives that failed (network, credentials, ...).
    """

    received: int
    ingested: int
    duplicates: int
    test_events: int
    dead: int
    deleted: int
    failed: int
    receive_errors: int


@dataclass(frozen=True)
class Enrolment:
    """A new agent and its one-time enrolment token (:meth:`Orbit.create_agent`): the
    agent exchanges the token for its own credential. The token is shown only here.

    Attributes:
        name: The agent's name.
        labels: Its labels (endpoints placed on one of them may run on it).
        enrolment_token: The one-time token (``foe_...``); never stored, only its SHA-256.
        expires_at: Until when the token may be used.
    """

    name: str
    labels: tuple[str, ...]
    enrolment_token: str = field(repr=False)
    expires_at: _dt.datetime

    @classmethod
    def _from_core(cls, data: Mapping[str, Any]) -> Enrolment:
        return cls(
            name=data["name"],
            labels=tuple(data["labels"]),
            enrolment_token=data["enrolment_token"],
            expires_at=_ms_to_datetime(data["expires_at"]),  # type: ignore[arg-type]
        )


@dataclass(frozen=True)
class AgentInfo:
    """An agent as listed (:meth:`Orbit.agents`): what it said of itself when it last
    called, its status, and the jobs it runs.

    Attributes:
        name: The agent's name.
        labels: Its labels.
        status: See :data:`AgentStatus`.
        host: The host it runs on (``None`` until it enrolled).
        version: Its File Orbit version (``None`` until it enrolled).
        slots: Transfers it runs at once (0 until it enrolled).
        backends: The rclone backends it has (``"local"``, ``"s3"``, ...).
        created_at: When an admin created it.
        enrolled_at: When it exchanged its enrolment token.
        last_contact: When it last called the control plane.
        revoked_at: When it was revoked.
        enrolment_expires_at: Until when its enrolment token may be used (pending agents
            only).
        running: The ids of the jobs it runs now.
    """

    name: str
    labels: tuple[str, ...]
    status: AgentStatus
    host: str | None
    version: str | None
    slots: int
    backends: tuple[str, ...]
    created_at: _dt.datetime
    enrolled_at: _dt.datetime | None
    last_contact: _dt.datetime | None
    revoked_at: _dt.datetime | None
    enrolment_expires_at: _dt.datetime | None
    running: tuple[int, ...]

    @classmethod
    def _from_core(cls, data: Mapping[str, Any]) -> AgentInfo:
        return cls(
            **{
                **data,
                "labels": tuple(data["labels"]),
                "backends": tuple(data["backends"]),
                "running": tuple(data["running"]),
                "created_at": _ms_to_datetime(data["created_at"]),
                "enrolled_at": _ms_to_datetime(data["enrolled_at"]),
                "last_contact": _ms_to_datetime(data["last_contact"]),
                "revoked_at": _ms_to_datetime(data["revoked_at"]),
                "enrolment_expires_at": _ms_to_datetime(data["enrolment_expires_at"]),
            }
        )


@dataclass(frozen=True)
class RcloneInfo:
    """The librclone File Orbit loaded.

    Attributes:
        library_path: The librclone.so in use.
        version: Its rclone version, e.g. ``"v1.76.0"``.
    """

    library_path: str
    version: str
