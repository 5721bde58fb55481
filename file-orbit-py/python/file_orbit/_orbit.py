"""`Orbit` (blocking) and `AsyncOrbit` (asyncio): File Orbit's engine on one store.

Both are thin: each method builds the core's request, hands it to the native module
(which releases the GIL, or returns an awaitable) and wraps the reply. Blocking methods
are safe to call from many threads at once.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

from . import _native
from ._calls import call, call_async
from ._endpoints import Endpoint, Placement
from ._handles import Job, Service, Transfer
from ._models import (
    AgentInfo,
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
    Rates,
    RetryPolicy,
    Scope,
    SourceStatus,
    Template,
    TransferSpec,
    WorkerInfo,
    _ms_to_datetime,
)
from ._notifications import Channel, MessageState, NotifyEvent, RateLimit
from ._sources import LocalWatch, RemotePoll, SourceSpec, SqsSource

__all__ = ["AsyncOrbit", "Orbit"]


def _open_options(
    store: str | os.PathLike[str],
    master_key: str | None,
    previous_keys: Sequence[str],
    lease: float | None,
    aging: float | None,
    poll_interval: float | None,
    actor: str | None,
    limits: Mapping[str, int] | None,
    node: str | None,
    labels: Mapping[str, str] | None,
    bandwidth: str | None,
    notify_allow: Sequence[str],
) -> str:
    url = os.fspath(store)
    if "://" not in url:
        url = "sqlite://" + os.path.abspath(url)

    def ms(seconds: float | None) -> int | None:
        return None if seconds is None else round(seconds * 1000)

    return json.dumps(
        {
            "store_url": url,
            "master_key": master_key,
            "previous_keys": list(previous_keys),
            "lease_ms": ms(lease),
            "aging_ms": ms(aging),
            "poll_interval_ms": ms(poll_interval),
            "actor": actor,
            "limits": dict(limits or {}),
            "node": node,
            "labels": dict(labels or {}),
            "bandwidth": bandwidth,
            "notify_allow": list(notify_allow),
        }
    )


def _endpoint_ref(endpoint: str | Endpoint) -> str:
    return json.dumps(endpoint._to_core() if isinstance(endpoint, Endpoint) else endpoint)


def _spec(
    mode: Mode,
    source: str | Endpoint,
    destination: str | Endpoint,
    source_path: str,
    destination_path: str,
    scope: Scope,
    filters: Filters | None,
    conflict: Conflict,
    verify: bool,
    parallelism: int | None,
) -> TransferSpec:
    return TransferSpec(
        source,
        destination,
        source_path=source_path,
        destination_path=destination_path,
        mode=mode,
        scope=scope,
        filters=filters,
        conflict=conflict,
        verify=verify,
        parallelism=parallelism,
    )


def _submit_request(
    spec: TransferSpec,
    priority: int,
    idempotency_key: str | None,
    retry: RetryPolicy | None,
    next_hops: Sequence[TransferSpec],
) -> dict[str, Any]:
    return {
        "spec": spec._to_core(),
        "priority": priority,
        "idempotency_key": idempotency_key,
        "retry": (retry or RetryPolicy())._to_core(),
        "next_hops": [hop._to_core() for hop in next_hops],
    }


def _ingest_event(
    endpoint: str | Endpoint | None,
    path: str | None,
    size: int | None,
    modified: _dt.datetime | None,
    template: str | None,
    source: str,
    dedup_key: str | None,
    payload: Any,
    content_type: str | None = None,
    metadata: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    file = None
    if path is not None:
        if endpoint is None:
            raise TypeError("ingest: a path needs its endpoint")
        file = {
            "endpoint": endpoint.name if isinstance(endpoint, Endpoint) else endpoint,
            "path": path,
            "size": size,
            "modified": None if modified is None else modified.astimezone(_dt.timezone.utc).isoformat(),
            "content_type": content_type,
            "metadata": dict(metadata or {}),
        }
    return {"source": source, "dedup_key": dedup_key, "file": file, "template": template, "payload": payload}


def _source_request(
    name: str, spec: SourceSpec, enabled: bool, node: str | None, labels: Mapping[str, str] | None
) -> dict[str, Any]:
    """A source as the core's ``Source::parse`` reads it."""
    placement: dict[str, Any] = {}
    if node is not None:
        placement["node"] = node
    if labels:
        placement["labels"] = dict(labels)
    return {"name": name, "kind": spec._kind, "spec": spec._to_core(), "enabled": enabled, "placement": placement}


def _notification_request(
    name: str,
    channel: Channel,
    events: NotifyEvent | Sequence[NotifyEvent],
    templates: Sequence[str],
    endpoints: Sequence[str],
    sources: Sequence[str],
    rate_limit: RateLimit | None,
    max_attempts: int,
    enabled: bool,
) -> dict[str, Any]:
    """A notification as the core's ``Notification::parse`` reads it."""
    if not isinstance(channel, Channel):
        raise TypeError(
            f"notification {name!r}: channel must be a Webhook, Email, Slack or Teams, not {type(channel).__name__}"
        )
    request: dict[str, Any] = {
        "name": name,
        "channel": channel._to_core(),
        "events": [events] if isinstance(events, str) else list(events),
        "filter": {"templates": list(templates), "endpoints": list(endpoints), "sources": list(sources)},
        "max_attempts": max_attempts,
        "enabled": enabled,
    }
    if rate_limit is not None:
        request["rate_limit"] = rate_limit._to_core()
    return request


def _outbox_request(
    notification: str | None, state: MessageState | None, limit: int, before_id: int | None
) -> dict[str, Any]:
    return {"notification": notification, "state": state, "limit": limit, "before_id": before_id}


def _endpoint_info(data: Mapping[str, Any]) -> EndpointInfo:
    return EndpointInfo(
        data["name"],
        data["kind"],
        data["config"],
        data["max_concurrent"],
        data["key_id"],
        data["bandwidth"],
        Rates(**data["bandwidth_now"]),
        None
        if data["bandwidth_next"] is None
        else (
            _dt.datetime.fromisoformat(data["bandwidth_next"]["at"]),
            Rates(**data["bandwidth_next"]["rates"]),
        ),
        None if "placement" not in data["config"] else Placement._from_core(data["config"]["placement"]),
    )


def _create_agent_request(name: str, labels: Sequence[str], ttl: float) -> dict[str, Any]:
    if isinstance(labels, str):
        raise TypeError(f"agent {name!r}: labels must be a sequence of labels, not the str {labels!r}")
    return {"name": name, "labels": list(labels), "ttl_ms": round(ttl * 1000)}


def _listing(data: Mapping[str, Any]) -> Listing:
    return Listing(data["path"], [ListEntry(**entry) for entry in data["entries"]], data["truncated"])


def _audit_record(data: Mapping[str, Any]) -> AuditRecord:
    return AuditRecord(**{**data, "at": _ms_to_datetime(data["at"])})


def _bandwidth_usage(data: Mapping[str, Any]) -> BandwidthUsage:
    return BandwidthUsage(**{**data, "limit": Rates(**data["limit"])})


def _worker_info(data: Mapping[str, Any]) -> WorkerInfo:
    stopped = data["stopped_at"]
    return WorkerInfo(
        **{
            **data,
            "started_at": _ms_to_datetime(data["started_at"]),
            "last_seen": _ms_to_datetime(data["last_seen"]),
            "stopped_at": None if stopped is None else _ms_to_datetime(stopped),
        }
    )


def _event(reply: Mapping[str, Any]) -> Event:
    return Event._from_core(reply["event"], duplicate=reply["duplicate"])


class Orbit:
    """File Orbit's engine on one store, blocking API.

    Opens (creating and migrating) the store and loads rclone in-process. Blocking calls
    release the GIL, so threads run in parallel; for asyncio use :class:`AsyncOrbit`.

    Args:
        store: ``"sqlite:///path/orbit.db"``, ``"postgres://user:pass@host/db"``, or a file
            path (a SQLite database).
        master_key: Base64 key (32 bytes) sealing endpoint credentials. Default:
            ``$FILE_ORBIT_MASTER_KEY``, else (SQLite) a key file ``<db>.key`` beside the
            database, created with mode 0600.
        previous_keys: Older keys still opening credentials sealed before a rotation.
        lease: Seconds a worker's lease on a job lasts without a heartbeat.
        aging: Seconds a waiting job takes to gain one priority point.
        poll_interval: Seconds idle workers wait before looking for work again.
        actor: Who this process is in the audit log.
        limits: Bounds on what jobs and templates may ask for, overriding the defaults:
            ``max_parallelism`` (64), ``max_priority`` (1,000,000), ``max_attempts`` (100),
            ``max_retry_delay_ms`` (one day), ``max_next_hops`` (32),
            ``max_lost_attempts`` (3: a job whose worker is lost that often is dead) and
            ``max_sources`` (256 stored sources).
        node: This node's name, for stored sources' placements (default: the host name).
        labels: This node's labels (e.g. ``{"site": "paris"}``): a source placed on labels
            runs only on nodes carrying all of them.
        bandwidth: The most this process's transfers to and from remote endpoints (S3,
            SFTP, SMB) may move together, on top of each endpoint's own ``bandwidth``: a
            rate (``"10M"``), ``"up:down"`` (``"10M:2M"``) or a weekly timetable
            (``"08:00,512k 19:00,off"``).
        notify_allow: The hosts notification channels may reach (webhook, Slack and
            Teams URLs, SMTP servers): names (``"hooks.slack.com"``, ``"*.example.com"``),
            addresses and networks (``"10.1.0.0/16"``), optionally with ``:port``.
            Loopback, private, link-local and metadata addresses are refused unless listed,
            also when a name resolves to one.

    Example::

        orbit = Orbit("orbit.db")
        orbit.add_endpoint(Local("in", root="/data/in"))
        orbit.add_endpoint(Sftp("partner", host="sftp.example.com", user="acme", password="..."))
        orbit.copy("in", "partner", destination_path="inbox").wait(progress=print)

    ``close()`` (or leaving a ``with Orbit(...) as orbit:`` block) stops what the orbit
    started: its transfers are cancelled, its workers put their running jobs back in the
    queue, its watches and schedulers stop, and the store's connections close.
    """

    _native: _native.NativeOrbit

    def __init__(
        self,
        store: str | os.PathLike[str] = "file-orbit.db",
        *,
        master_key: str | None = None,
        previous_keys: Sequence[str] = (),
        lease: float | None = None,
        aging: float | None = None,
        poll_interval: float | None = None,
        actor: str | None = None,
        limits: Mapping[str, int] | None = None,
        node: str | None = None,
        labels: Mapping[str, str] | None = None,
        bandwidth: str | None = None,
        notify_allow: Sequence[str] = (),
    ) -> None:
        options = _open_options(
            store,
            master_key,
            previous_keys,
            lease,
            aging,
            poll_interval,
            actor,
            limits,
            node,
            labels,
            bandwidth,
            notify_allow,
        )
        self._native = _native.NativeOrbit.open(options)

    def _call(self, op: str, **args: Any) -> Any:
        return call(self._native, op, **args)

    @property
    def aio(self) -> AsyncOrbit:
        """The same engine with the asyncio API."""
        return AsyncOrbit(self._native)

    def close(self) -> None:
        """Cancels this orbit's transfers, stops its workers (their running jobs go back to
        the queue), watches and schedulers, and closes the store. Later calls raise
        :class:`ConfigError` (a ``ValueError``). Calling it again does nothing."""
        self._native.close()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called (here or through :attr:`aio`)."""
        return self._native.closed

    def __enter__(self) -> Orbit:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # Endpoints

    def add_endpoint(self, endpoint: Endpoint, *, max_concurrent: int = 4) -> None:
        """Stores an endpoint (or replaces the one of the same name), credentials sealed.

        Args:
            endpoint: A :class:`Local`, :class:`S3`, :class:`Sftp` or :class:`Smb`.
            max_concurrent: Durable jobs running at once that involve this endpoint.
        """
        self._call("put_endpoint", endpoint=endpoint._to_core(), max_concurrent=max_concurrent)

    def endpoints(self) -> list[EndpointInfo]:
        """Every stored endpoint, by name, secrets shown as ``***``."""
        return [_endpoint_info(data) for data in self._call("endpoints")]

    def test_endpoint(self, endpoint: str | Endpoint, *, write_probe: bool = True) -> Diagnosis:
        """Checks an endpoint end to end (config, DNS, TCP, login, listing its root, and
        writing and removing a small hidden probe file there).

        Args:
            endpoint: A stored endpoint's name, or an endpoint (need not be stored).
            write_probe: False for an endpoint that is only read from: no probe file is
                written, and its root must exist.

        Returns:
            A :class:`Diagnosis`; ``diagnosis.ok`` when it works, else what is wrong;
            ``diagnosis.warning`` for what to know about one that works (e.g. its root
            does not exist yet and the first transfer creates it).
        """
        ref = endpoint._to_core() if isinstance(endpoint, Endpoint) else endpoint
        return Diagnosis(**self._call("test_endpoint", endpoint=ref, write_probe=write_probe))

    # Templates


    def list_files(self, endpoint: str, path: str = "", *, limit: int = 1000) -> Listing:
        """One folder of a stored endpoint, not recursive: its folders, then its files,
        each by name (it connects with the endpoint test's short timeouts).

        Args:
            endpoint: A stored endpoint's name.
            path: The folder, relative to the endpoint's root (``""``: the root); a ``..``
                segment, a leading ``/`` or a control character is refused.
            limit: At most this many entries (1 to 5000); ``truncated`` says when the
                folder holds more.

        Raises:
            ConfigError: A refused ``path`` or ``limit`` (``field`` names it).
            NotFoundError: No such endpoint or folder.
            AuthenticationError: The endpoint's credentials were refused (and the other
                remote errors as a transfer raises them).
        """
        return _listing(self._call("list_files", endpoint=endpoint, path=path, limit=limit))

    def preview_path(self, template: str, file: str = "example/report.csv", *, source: str = "source") -> str:
        """A destination path template rendered now for a sample source file, as a
        transfer would render it (``""`` is the destination's root).

        Args:
            template: The template, e.g. ``"archive/{year}/{filename}"``.
            file: The source file's path relative to the source root.
            source: The source endpoint's name, for ``{source}``.

        Raises:
            ConfigError: The template does not parse or leaves the destination (``field``
                is ``"template"``), or ``file`` is not a relative file path.
        """
        path: str = self._call("preview_path", template=template, file=file, source=source)
        return path
    def add_template(self, template: Template) -> None:
        """Stores a template (or replaces the one of the same name)."""
        self._call("put_template", template=template._to_core())

    def templates(self) -> list[Template]:
        """Every stored template, by name."""
        return [Template._from_core(data) for data in self._call("templates")]

    # Transfers now

    def run(self, spec: TransferSpec) -> Transfer:
        """Starts ``spec`` now, in this process; endpoints given as names must be stored.

        Returns:
            A :class:`Transfer`: ``wait(progress=...)``, ``cancel()``, or ``await`` it.
        """
        native = self._native.start_transfer(
            json.dumps(spec._to_core()), _endpoint_ref(spec.source), _endpoint_ref(spec.destination)
        )
        return Transfer(native)

    def copy(
        self,
        source: str | Endpoint,
        destination: str | Endpoint,
        *,
        destination_path: str,
        source_path: str = "",
        scope: Scope = "tree",
        filters: Filters | None = None,
        conflict: Conflict = "overwrite",
        verify: bool = False,
        parallelism: int | None = None,
    ) -> Transfer:
        """Starts copying now; the arguments are those of :class:`TransferSpec`.

        Example::

            orbit.copy("in", "s3", source_path="reports", destination_path="{year}/reports",
                       filters=Filters(include=["*.csv"])).wait(progress=print)
        """
        return self.run(
            _spec("copy", source, destination, source_path, destination_path, scope, filters, conflict, verify, parallelism)
        )

    def move(
        self,
        source: str | Endpoint,
        destination: str | Endpoint,
        *,
        destination_path: str,
        source_path: str = "",
        scope: Scope = "tree",
        filters: Filters | None = None,
        conflict: Conflict = "overwrite",
        verify: bool = False,
        parallelism: int | None = None,
    ) -> Transfer:
        """Starts moving now (each source file is deleted once it arrived); see :meth:`copy`."""
        return self.run(
            _spec("move", source, destination, source_path, destination_path, scope, filters, conflict, verify, parallelism)
        )

    def sync(
        self,
        source: str | Endpoint,
        destination: str | Endpoint,
        *,
        destination_path: str,
        source_path: str = "",
        filters: Filters | None = None,
        conflict: Conflict = "overwrite",
        verify: bool = False,
        parallelism: int | None = None,
    ) -> Transfer:
        """Starts making the destination tree equal the source now (deleting extras)."""
        return self.run(
            _spec("sync", source, destination, source_path, destination_path, "tree", filters, conflict, verify, parallelism)
        )

    # Durable jobs

    def submit(
        self,
        spec: TransferSpec,
        *,
        priority: int = 0,
        idempotency_key: str | None = None,
        retry: RetryPolicy | None = None,
        next_hops: Sequence[TransferSpec] = (),
    ) -> Job:
        """Stores a durable job for workers to run (see :meth:`start_workers`).

        Args:
            spec: The transfer; its endpoints must be stored.
            priority: Higher runs first.
            idempotency_key: Submitting the same key again returns the first job.
            retry: Retry policy (default :class:`RetryPolicy`).
            next_hops: Transfers to run one after another once this one succeeded (a chain).
        """
        request = _submit_request(spec, priority, idempotency_key, retry, next_hops)
        return Job(self, self._call("submit", request=request))

    def job(self, id: int) -> JobInfo:
        """The stored job ``id``."""
        return JobInfo._from_core(self._call("job", id=id))

    def jobs(
        self,
        state: JobState | None = None,
        *,
        limit: int = 100,
        offset: int = 0,
        before_id: int | None = None,
    ) -> list[JobInfo]:
        """Jobs, newest first, optionally only those in ``state``.

        ``before_id`` keeps only jobs with a smaller id: pass the last id of a page to get
        the next one (cheaper than a large ``offset``).
        """
        reply = self._call("jobs", state=state, limit=limit, offset=offset, before_id=before_id)
        return [JobInfo._from_core(data) for data in reply]

    def workers(self) -> list[WorkerInfo]:
        """The worker processes of the cluster seen in the last day, alive ones first."""
        return [_worker_info(data) for data in self._call("workers")]

    def bandwidth_usage(self) -> list[BandwidthUsage]:
        """Per endpoint (and ``endpoint=None``: the service-wide limit), the limit in force in
        this process and what its transfers move; empty until workers have started."""
        return [_bandwidth_usage(data) for data in self._call("bandwidth_usage")]

    def chain(self, id: int) -> list[JobInfo]:
        """Every job of the chain job ``id`` belongs to, in order."""
        return [JobInfo._from_core(data) for data in self._call("chain", id=id)]

    def cancel(self, id: int) -> str:
        """Cancels job ``id``; see :meth:`Job.cancel`."""
        state: str = self._call("cancel", id=id)
        return state

    def retry(self, id: int) -> None:
        """Runs a dead or cancelled job again from its first attempt."""
        self._call("retry", id=id)

    def start_workers(self, count: int = 4) -> Service:
        """Starts ``count`` workers in this process that run the queued jobs.

        Returns:
            A :class:`Service`; ``stop()`` (or leaving its ``with`` block) stops leasing
            and waits for running transfers.
        """
        return Service(self._native.start_workers(count), f"{count} workers")

    # Events

    def ingest(
        self,
        *,
        endpoint: str | Endpoint | None = None,
        path: str | None = None,
        size: int | None = None,
        modified: _dt.datetime | None = None,
        template: str | None = None,
        source: str = "manual",
        dedup_key: str | None = None,
        payload: Any = None,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> Event:
        """Stores an event and submits a job for each template it matches.

        Give ``endpoint`` and ``path`` for a file event (matched against every template),
        or ``template`` to run that template's transfer as it is.

        Args:
            endpoint: The endpoint the file is on.
            path: The file's path relative to the endpoint.
            size: The file's size in bytes (needed by templates with size limits).
            modified: When the file was modified (needed by templates with ``min_age``).
            template: Run this template instead of matching.
            source: What saw the event (``"manual"``, ``"api"``...).
            dedup_key: Events with the same key are one event: the second is a duplicate.
            payload: What the source said (JSON-able, never secrets), kept for audit.
            content_type: The file's media type, for templates matching on it (unset: read
                from the endpoint when a template asks).
            metadata: The file's metadata, for templates matching on it (unset: read from
                the endpoint when a template asks).

        Returns:
            The stored :class:`Event` with its ``job_ids``; ``duplicate`` when already seen.
        """
        event = _ingest_event(
            endpoint, path, size, modified, template, source, dedup_key, payload, content_type, metadata
        )
        return _event(self._call("ingest", event=event))

    def event(self, id: int) -> Event:
        """The stored event ``id``."""
        return Event._from_core(self._call("event", id=id))

    def events(self, limit: int = 100) -> list[Event]:
        """The newest ``limit`` events, newest first."""
        return [Event._from_core(data) for data in self._call("events", limit=limit)]

    def replay_event(self, id: int) -> list[Job]:
        """Creates the jobs of event ``id`` again from today's templates."""
        return [Job(self, job_id) for job_id in self._call("replay_event", id=id)]

    def watch_local(
        self,
        endpoint: str | Endpoint,
        *,
        sub_path: str | None = None,
        stable_for: float | None = None,
        marker_suffix: str | None = None,
        ignore: Sequence[str] | None = None,
        rescan_interval: float | None = None,
    ) -> Service:
        """Watches a stored local endpoint's directory; each complete file becomes an event.

        A file is complete when closed after writing and unmodified for ``stable_for``
        seconds (default 1), renamed into place, or (found by a scan) unchanged for a
        second; with ``marker_suffix`` (e.g. ``".done"``) only once ``name.done`` exists.

        Args:
            endpoint: A stored local endpoint.
            sub_path: A directory below its root to watch instead.
            stable_for: Seconds a closed file must stay unmodified (0: at once).
            marker_suffix: Hand a file over only once ``<name><suffix>`` exists.
            ignore: Globs of names to ignore (default ``*.partial``, ``*.tmp``, ``.*``).
            rescan_interval: Seconds between full rescans (default 60).

        Returns:
            A :class:`Service`; :meth:`Service.stats` gives its counters.
        """
        spec = LocalWatch(
            endpoint,
            sub_path=sub_path,
            stable_for=stable_for,
            marker_suffix=marker_suffix,
            ignore=ignore,
            rescan_interval=rescan_interval,
        )
        return Service(self._native.watch_local(json.dumps(spec._to_core())), f"local watch of {spec.endpoint!r}")

    def consume_sqs(self, source: SqsSource) -> Service:
        """Consumes S3 event notifications from an SQS queue; each object created under
        the source's S3 endpoint becomes an event that runs the matching templates (the
        workers of any engine on this store run the jobs).

        The queue is checked to exist first. A message is deleted once its events are
        stored; if storing fails it stays on the queue and SQS delivers it again (its
        redrive policy moves it to a dead-letter queue in the end).

        Args:
            source: The queue and the stored S3 endpoint its notifications are about.

        Returns:
            A :class:`Service`; :meth:`Service.stats` gives its :class:`SqsStats`.

        Raises:
            ConfigError: The source is not usable (e.g. its endpoint is not an S3 one).
            NotFoundError: The endpoint or the queue does not exist.
        """
        native = self._native.consume_sqs(json.dumps(source._to_core()))
        return Service(native, f"sqs consumer of {source.queue_url!r}")

    def poll_remote(
        self, endpoint: str | Endpoint, path: str = "", *, interval: float = 60.0, ignore: Sequence[str] | None = None
    ) -> Service:
        """Lists ``path`` on a stored endpoint every ``interval`` seconds; a new or changed
        file becomes an event once it looked the same on two polls."""
        spec = RemotePoll(endpoint, path, interval=interval, ignore=ignore)
        return Service(self._native.poll_remote(json.dumps(spec._to_core())), f"poll of {spec.endpoint!r}")

    def start_scheduler(self, interval: float = 1.0) -> Service:
        """Fires the templates' cron schedules (once per tick across engines sharing the
        store), checking every ``interval`` seconds."""
        return Service(self._native.start_scheduler(round(interval * 1000)), "scheduler")

    def fire_due_schedules(self) -> list[Event]:
        """Fires the schedules that are due now, once; returns their events."""
        return [Event._from_core(data) for data in self._call("fire_due_schedules")]

    # Stored sources

    def put_source(
        self,
        name: str,
        spec: SourceSpec,
        *,
        enabled: bool = True,
        node: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        """Stores an event source (or replaces the one of that name; the node running it
        restarts it with the new spec). Secrets are sealed like endpoint credentials. The
        source runs on exactly one node at a time whose :meth:`run_sources` leases it.

        Args:
            name: The source's name.
            spec: What it watches: an :class:`SqsSource`, :class:`LocalWatch` or
                :class:`RemotePoll`.
            enabled: False stores it paused.
            node: Run it only on the node of this name (see ``Orbit(node=...)``).
            labels: Run it only on nodes carrying all these labels. Without ``node`` or
                ``labels`` it runs on any node.

        Raises:
            ConfigError: A field is wrong; ``.field`` names it as the core does, e.g.
                ``"spec.endpoint"`` (no such endpoint, or not of the right type),
                ``"spec.sub_path"`` (a watched folder missing on this node), ``"name"``.
        """
        self._call("put_source", source=_source_request(name, spec, enabled, node, labels))

    def sources(self) -> list[SourceStatus]:
        """Every stored source with its status, by name (secrets shown as ``***``)."""
        return [SourceStatus._from_core(data) for data in self._call("sources")]

    def source(self, name: str) -> SourceStatus:
        """The stored source ``name`` with its status; :class:`NotFoundError` if none."""
        return SourceStatus._from_core(self._call("source_status", name=name))

    def pause_source(self, name: str) -> None:
        """Stops source ``name`` wherever it runs (within the runner's ``check_every``)
        until :meth:`resume_source`."""
        self._call("pause_source", name=name)

    def resume_source(self, name: str) -> None:
        """Lets a paused source run again (on a node its placement admits)."""
        self._call("resume_source", name=name)

    def delete_source(self, name: str) -> None:
        """Deletes source ``name``; the node running it stops it."""
        self._call("delete_source", name=name)

    def run_sources(self, *, lease: float = 15.0, check_every: float = 0.5) -> Service:
        """Runs the stored sources this node may run, in this process: every
        ``check_every`` seconds it reads the sources, leases each enabled one that its
        placement admits and nobody holds, starts it, renews the lease with the source's
        state and counters every second, and stops a source that was paused, deleted,
        placed elsewhere or taken over (restarting an edited one). Their events record
        the source's name; the workers of any engine on this store run the jobs.

        Args:
            lease: Seconds a lease lasts without renewal: a dead node's sources move to
                another node after at most this (2 s to an hour).
            check_every: Seconds between two reads of the sources (0.05 to 10).

        Returns:
            A :class:`Service`; ``stop()`` (or closing the orbit) stops the sources and
            releases their leases.
        """
        native = self._native.run_sources(round(lease * 1000), round(check_every * 1000))
        return Service(native, "source runner")

    # Notifications

    def put_notification(
        self,
        name: str,
        channel: Channel,
        events: NotifyEvent | Sequence[NotifyEvent],
        *,
        templates: Sequence[str] = (),
        endpoints: Sequence[str] = (),
        sources: Sequence[str] = (),
        rate_limit: RateLimit | None = None,
        max_attempts: int = 8,
        enabled: bool = True,
    ) -> NotificationInfo:
        """Stores a notification (or replaces the one of that name): which events it
        reports and where it sends them. Its channel's secrets are sealed like endpoint
        credentials. Messages are rows of the store's outbox, made and sent by whichever
        node runs a notifier (:meth:`run_notifier`, the server or a worker).

        Args:
            name: The notification's name.
            channel: Where it sends: a :class:`Webhook`, :class:`Email`, :class:`Slack`
                or :class:`Teams`. Its host must be in the orbit's ``notify_allow``.
            events: What it reports: one or more of :data:`NotifyEvent`.
            templates: Only jobs made from these templates (empty: any).
            endpoints: Only jobs from or to these endpoints (empty: any).
            sources: Only events and jobs of these stored sources (empty: any).
            rate_limit: At most so many messages per window, the rest in a digest
                (None: 10 per 300 s).
            max_attempts: Tries of one message before it is dead (1 to 100).
            enabled: False stores it without sending anything.

        Returns:
            The stored :class:`NotificationInfo`.

        Raises:
            ConfigError: A field is wrong; ``.field`` names it as the core does, e.g.
                ``"events[0]"`` (an unknown event), ``"channel.url"`` (a host outside
                ``notify_allow``, or one resolving to a refused address),
                ``"rate_limit.messages"``, ``"name"``.
        """
        request = _notification_request(
            name, channel, events, templates, endpoints, sources, rate_limit, max_attempts, enabled
        )
        return NotificationInfo._from_core(self._call("put_notification", notification=request))

    def notification(self, name: str) -> NotificationInfo:
        """The stored notification ``name``; :class:`NotFoundError` if none."""
        return NotificationInfo._from_core(self._call("notification", name=name))

    def notifications(self) -> list[NotificationInfo]:
        """Every stored notification by name, secrets shown as ``***``, with its outbox
        messages counted by state."""
        return [NotificationInfo._from_core(data) for data in self._call("notifications")]

    def delete_notification(self, name: str) -> None:
        """Deletes notification ``name``; its unsent messages die at their next try."""
        self._call("delete_notification", name=name)

    def test_notification(self, name: str) -> str:
        """Sends a test message through notification ``name`` now (not through the
        outbox) and returns the channel's answer, e.g. ``"HTTP 200 OK"`` or
        ``"SMTP 250 ..."``. Audited as ``notification.tested``.

        Raises:
            NotFoundError: No notification of that name.
            ConnectionError: The channel's server could not be reached.
            RemoteError: It answered with a failure (e.g. HTTP 503); the message says
                what it answered.
            AuthenticationError: The SMTP server refused the login.
        """
        answer: str = self._call("test_notification", name=name)
        return answer

    def outbox(
        self,
        *,
        notification: str | None = None,
        state: MessageState | None = None,
        limit: int = 100,
        before_id: int | None = None,
    ) -> list[OutboxMessage]:
        """Outbox messages, newest first.

        Args:
            notification: Only this notification's messages.
            state: Only messages in this state (see :data:`MessageState`).
            limit: At most this many (1 to 1,000).
            before_id: Only messages with a smaller id: pass the last id of a page to get
                the next one.
        """
        reply = self._call("outbox", **_outbox_request(notification, state, limit, before_id))
        return [OutboxMessage._from_core(data) for data in reply]

    def retry_notification_message(self, id: int) -> None:
        """Queues dead outbox message ``id`` again, for as many tries as it had."""
        self._call("retry_notification_message", id=id)

    def run_notifier(
        self,
        *,
        link_base: str = "http://127.0.0.1:8080",
        check_every: float = 0.5,
        first_retry: float = 10.0,
        max_retry: float = 900.0,
        timeout: float = 20.0,
    ) -> Service:
        """Runs a notifier in this process: every ``check_every`` seconds it turns new
        audit records into outbox messages for the notifications that report them (rate
        limits and digests applied) and sends the messages that are due, each leased so
        that exactly one node sends it. A failed send is tried again after
        ``first_retry`` seconds, doubling up to ``max_retry``; a message is dead after its
        notification's ``max_attempts``. Any number of nodes may run one on a store.

        Args:
            link_base: Where job links in messages point: ``<link_base>/api/v1/jobs/<id>``.
            check_every: Seconds between two reads of the audit log and the outbox (0.05
                to 10).
            first_retry: Seconds after a message's first failed try (0.1 to 3,600).
            max_retry: The longest wait between tries (``first_retry`` to a day).
            timeout: Seconds one send may take (1 to 120).

        Returns:
            A :class:`Service`; ``stop()`` (or closing the orbit) stops it (a message it
            was sending is sent by whichever notifier leases it next).
        """
        native = self._native.run_notifier(
            link_base,
            round(check_every * 1000),
            round(first_retry * 1000),
            round(max_retry * 1000),
            round(timeout * 1000),
        )
        return Service(native, "notifier")

    # Agents

    def create_agent(self, name: str, labels: Sequence[str] = (), *, ttl: float = 86400.0) -> Enrolment:
        """Creates agent ``name`` (a transfer agent on another host: the worker service in
        agent mode, which talks to the control plane's API, never to the store) and
        returns its one-time enrolment token, which the agent exchanges for its own
        credential. Audited as ``agent.created``. The name of a revoked agent may be used
        again.

        Args:
            name: The agent's name: 1-63 of ``a-z 0-9 . _ -``, starting with a letter or
                digit (what :class:`Placement`'s ``agents`` name).
            labels: Its labels, likewise (what :class:`Placement`'s ``labels`` name).
            ttl: Seconds the token stays valid (60 to 30 days).

        Raises:
            ConfigError: ``.field`` is ``"name"`` (not a valid name, or an agent of that
                name exists and is not revoked), ``"labels"`` or ``"ttl"``.
        """
        return Enrolment._from_core(self._call("create_agent", **_create_agent_request(name, labels, ttl)))

    def agents(self) -> list[AgentInfo]:
        """Every agent by name, with its status and the jobs it runs."""
        return [AgentInfo._from_core(data) for data in self._call("agents")]

    def agent(self, name: str) -> AgentInfo:
        """Agent ``name``; :class:`NotFoundError` if none."""
        return AgentInfo._from_core(self._call("agent", name=name))

    def revoke_agent(self, name: str) -> None:
        """Revokes agent ``name``: its credential (or unused enrolment token) is refused
        from now on and the jobs it runs go back to the queue. Audited as
        ``agent.revoked``; revoking a revoked agent does nothing. :class:`NotFoundError`
        if there is no such agent."""
        self._call("revoke_agent", name=name)

    # Audit and keys

    def audit_log(self, limit: int = 100) -> list[AuditRecord]:
        """The newest ``limit`` audit records."""
        return [_audit_record(data) for data in self._call("audit_log", limit=limit)]

    def verify_audit_log(self) -> int | None:
        """None when the audit chain is intact, else the id of the first bad record."""
        bad: int | None = self._call("verify_audit_log")
        return bad

    def rotate_keys(self) -> int:
        """Re-seals every endpoint, stored source and notification with the current master
        key; returns how many changed."""
        changed: int = self._call("rotate_keys")
        return changed


class AsyncOrbit:
    """File Orbit's engine on one store, asyncio API: every method is a coroutine.

    Open it with ``await AsyncOrbit.open(...)`` (same arguments as :class:`Orbit`), or take
    ``orbit.aio`` of an :class:`Orbit` (``aorbit.blocking`` is the way back). The work runs on File Orbit's own threads, never
    blocking the event loop. Handles (:class:`Transfer`, :class:`Job`) are awaitable.
    """

    def __init__(self, native: _native.NativeOrbit) -> None:
        self._native = native

    @classmethod
    async def open(
        cls,
        store: str | os.PathLike[str] = "file-orbit.db",
        *,
        master_key: str | None = None,
        previous_keys: Sequence[str] = (),
        lease: float | None = None,
        aging: float | None = None,
        poll_interval: float | None = None,
        actor: str | None = None,
        limits: Mapping[str, int] | None = None,
        node: str | None = None,
        labels: Mapping[str, str] | None = None,
        bandwidth: str | None = None,
        notify_allow: Sequence[str] = (),
    ) -> AsyncOrbit:
        """Opens the store; the arguments are those of :class:`Orbit`."""
        options = _open_options(
            store,
            master_key,
            previous_keys,
            lease,
            aging,
            poll_interval,
            actor,
            limits,
            node,
            labels,
            bandwidth,
            notify_allow,
        )
        return cls(await _native.NativeOrbit.open_async(options))

    async def _call(self, op: str, **args: Any) -> Any:
        return await call_async(self._native, op, **args)

    @property
    def blocking(self) -> Orbit:
        """The same engine with the blocking API."""
        orbit = Orbit.__new__(Orbit)
        orbit._native = self._native
        return orbit

    async def close(self) -> None:
        """:meth:`Orbit.close` as a coroutine (``async with`` calls it on leaving)."""
        await self._native.close_async()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._native.closed

    async def __aenter__(self) -> AsyncOrbit:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def add_endpoint(self, endpoint: Endpoint, *, max_concurrent: int = 4) -> None:
        """See :meth:`Orbit.add_endpoint`."""
        await self._call("put_endpoint", endpoint=endpoint._to_core(), max_concurrent=max_concurrent)

    async def endpoints(self) -> list[EndpointInfo]:
        """See :meth:`Orbit.endpoints`."""
        return [_endpoint_info(data) for data in await self._call("endpoints")]

    async def test_endpoint(self, endpoint: str | Endpoint, *, write_probe: bool = True) -> Diagnosis:
        """See :meth:`Orbit.test_endpoint`."""
        ref = endpoint._to_core() if isinstance(endpoint, Endpoint) else endpoint
        return Diagnosis(**await self._call("test_endpoint", endpoint=ref, write_probe=write_probe))


    async def list_files(self, endpoint: str, path: str = "", *, limit: int = 1000) -> Listing:
        """See :meth:`Orbit.list_files`."""
        return _listing(await self._call("list_files", endpoint=endpoint, path=path, limit=limit))

    async def preview_path(
        self, template: str, file: str = "example/report.csv", *, source: str = "source"
    ) -> str:
        """See :meth:`Orbit.preview_path`."""
        path: str = await self._call("preview_path", template=template, file=file, source=source)
        return path
    async def add_template(self, template: Template) -> None:
        """See :meth:`Orbit.add_template`."""
        await self._call("put_template", template=template._to_core())

    async def templates(self) -> list[Template]:
        """See :meth:`Orbit.templates`."""
        return [Template._from_core(data) for data in await self._call("templates")]

    async def run(self, spec: TransferSpec) -> Transfer:
        """See :meth:`Orbit.run`; ``await`` the returned :class:`Transfer` for its result."""
        native = await self._native.start_transfer_async(
            json.dumps(spec._to_core()), _endpoint_ref(spec.source), _endpoint_ref(spec.destination)
        )
        return Transfer(native)

    async def copy(
        self,
        source: str | Endpoint,
        destination: str | Endpoint,
        *,
        destination_path: str,
        source_path: str = "",
        scope: Scope = "tree",
        filters: Filters | None = None,
        conflict: Conflict = "overwrite",
        verify: bool = False,
        parallelism: int | None = None,
    ) -> Transfer:
        """See :meth:`Orbit.copy`."""
        return await self.run(
            _spec("copy", source, destination, source_path, destination_path, scope, filters, conflict, verify, parallelism)
        )

    async def move(
        self,
        source: str | Endpoint,
        destination: str | Endpoint,
        *,
        destination_path: str,
        source_path: str = "",
        scope: Scope = "tree",
        filters: Filters | None = None,
        conflict: Conflict = "overwrite",
        verify: bool = False,
        parallelism: int | None = None,
    ) -> Transfer:
        """See :meth:`Orbit.move`."""
        return await self.run(
            _spec("move", source, destination, source_path, destination_path, scope, filters, conflict, verify, parallelism)
        )

    async def sync(
        self,
        source: str | Endpoint,
        destination: str | Endpoint,
        *,
        destination_path: str,
        source_path: str = "",
        filters: Filters | None = None,
        conflict: Conflict = "overwrite",
        verify: bool = False,
        parallelism: int | None = None,
    ) -> Transfer:
        """See :meth:`Orbit.sync`."""
        return await self.run(
            _spec("sync", source, destination, source_path, destination_path, "tree", filters, conflict, verify, parallelism)
        )

    async def submit(
        self,
        spec: TransferSpec,
        *,
        priority: int = 0,
        idempotency_key: str | None = None,
        retry: RetryPolicy | None = None,
        next_hops: Sequence[TransferSpec] = (),
    ) -> Job:
        """See :meth:`Orbit.submit`; ``await`` the returned :class:`Job` for its outcome."""
        request = _submit_request(spec, priority, idempotency_key, retry, next_hops)
        return Job(self, await self._call("submit", request=request))

    async def job(self, id: int) -> JobInfo:
        """See :meth:`Orbit.job`."""
        return JobInfo._from_core(await self._call("job", id=id))

    async def jobs(
        self,
        state: JobState | None = None,
        *,
        limit: int = 100,
        offset: int = 0,
        before_id: int | None = None,
    ) -> list[JobInfo]:
        """See :meth:`Orbit.jobs`."""
        reply = await self._call("jobs", state=state, limit=limit, offset=offset, before_id=before_id)
        return [JobInfo._from_core(data) for data in reply]

    async def workers(self) -> list[WorkerInfo]:
        """See :meth:`Orbit.workers`."""
        return [_worker_info(data) for data in await self._call("workers")]

    async def bandwidth_usage(self) -> list[BandwidthUsage]:
        """See :meth:`Orbit.bandwidth_usage`."""
        return [_bandwidth_usage(data) for data in await self._call("bandwidth_usage")]

    async def chain(self, id: int) -> list[JobInfo]:
        """See :meth:`Orbit.chain`."""
        return [JobInfo._from_core(data) for data in await self._call("chain", id=id)]

    async def cancel(self, id: int) -> str:
        """See :meth:`Orbit.cancel`."""
        state: str = await self._call("cancel", id=id)
        return state

    async def retry(self, id: int) -> None:
        """See :meth:`Orbit.retry`."""
        await self._call("retry", id=id)

    def start_workers(self, count: int = 4) -> Service:
        """See :meth:`Orbit.start_workers` (starting them does not wait; ``stop_async()`` does)."""
        return Service(self._native.start_workers(count), f"{count} workers")

    async def ingest(
        self,
        *,
        endpoint: str | Endpoint | None = None,
        path: str | None = None,
        size: int | None = None,
        modified: _dt.datetime | None = None,
        template: str | None = None,
        source: str = "manual",
        dedup_key: str | None = None,
        payload: Any = None,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> Event:
        """See :meth:`Orbit.ingest`."""
        event = _ingest_event(
            endpoint, path, size, modified, template, source, dedup_key, payload, content_type, metadata
        )
        return _event(await self._call("ingest", event=event))

    async def event(self, id: int) -> Event:
        """See :meth:`Orbit.event`."""
        return Event._from_core(await self._call("event", id=id))

    async def events(self, limit: int = 100) -> list[Event]:
        """See :meth:`Orbit.events`."""
        return [Event._from_core(data) for data in await self._call("events", limit=limit)]

    async def replay_event(self, id: int) -> list[Job]:
        """See :meth:`Orbit.replay_event`."""
        return [Job(self, job_id) for job_id in await self._call("replay_event", id=id)]

    async def watch_local(
        self,
        endpoint: str | Endpoint,
        *,
        sub_path: str | None = None,
        stable_for: float | None = None,
        marker_suffix: str | None = None,
        ignore: Sequence[str] | None = None,
        rescan_interval: float | None = None,
    ) -> Service:
        """See :meth:`Orbit.watch_local`."""
        spec = LocalWatch(
            endpoint,
            sub_path=sub_path,
            stable_for=stable_for,
            marker_suffix=marker_suffix,
            ignore=ignore,
            rescan_interval=rescan_interval,
        )
        native = await self._native.watch_local_async(json.dumps(spec._to_core()))
        return Service(native, f"local watch of {spec.endpoint!r}")

    async def consume_sqs(self, source: SqsSource) -> Service:
        """See :meth:`Orbit.consume_sqs`."""
        native = await self._native.consume_sqs_async(json.dumps(source._to_core()))
        return Service(native, f"sqs consumer of {source.queue_url!r}")

    def poll_remote(
        self, endpoint: str | Endpoint, path: str = "", *, interval: float = 60.0, ignore: Sequence[str] | None = None
    ) -> Service:
        """See :meth:`Orbit.poll_remote`."""
        return self.blocking.poll_remote(endpoint, path, interval=interval, ignore=ignore)

    def start_scheduler(self, interval: float = 1.0) -> Service:
        """See :meth:`Orbit.start_scheduler`."""
        return self.blocking.start_scheduler(interval)

    async def fire_due_schedules(self) -> list[Event]:
        """See :meth:`Orbit.fire_due_schedules`."""
        return [Event._from_core(data) for data in await self._call("fire_due_schedules")]

    async def put_source(
        self,
        name: str,
        spec: SourceSpec,
        *,
        enabled: bool = True,
        node: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        """See :meth:`Orbit.put_source`."""
        await self._call("put_source", source=_source_request(name, spec, enabled, node, labels))

    async def sources(self) -> list[SourceStatus]:
        """See :meth:`Orbit.sources`."""
        return [SourceStatus._from_core(data) for data in await self._call("sources")]

    async def source(self, name: str) -> SourceStatus:
        """See :meth:`Orbit.source`."""
        return SourceStatus._from_core(await self._call("source_status", name=name))

    async def pause_source(self, name: str) -> None:
        """See :meth:`Orbit.pause_source`."""
        await self._call("pause_source", name=name)

    async def resume_source(self, name: str) -> None:
        """See :meth:`Orbit.resume_source`."""
        await self._call("resume_source", name=name)

    async def delete_source(self, name: str) -> None:
        """See :meth:`Orbit.delete_source`."""
        await self._call("delete_source", name=name)

    def run_sources(self, *, lease: float = 15.0, check_every: float = 0.5) -> Service:
        """See :meth:`Orbit.run_sources` (starting does not wait; ``stop_async()`` does)."""
        return self.blocking.run_sources(lease=lease, check_every=check_every)

    async def put_notification(
        self,
        name: str,
        channel: Channel,
        events: NotifyEvent | Sequence[NotifyEvent],
        *,
        templates: Sequence[str] = (),
        endpoints: Sequence[str] = (),
        sources: Sequence[str] = (),
        rate_limit: RateLimit | None = None,
        max_attempts: int = 8,
        enabled: bool = True,
    ) -> NotificationInfo:
        """See :meth:`Orbit.put_notification`."""
        request = _notification_request(
            name, channel, events, templates, endpoints, sources, rate_limit, max_attempts, enabled
        )
        return NotificationInfo._from_core(await self._call("put_notification", notification=request))

    async def notification(self, name: str) -> NotificationInfo:
        """See :meth:`Orbit.notification`."""
        return NotificationInfo._from_core(await self._call("notification", name=name))

    async def notifications(self) -> list[NotificationInfo]:
        """See :meth:`Orbit.notifications`."""
        return [NotificationInfo._from_core(data) for data in await self._call("notifications")]

    async def delete_notification(self, name: str) -> None:
        """See :meth:`Orbit.delete_notification`."""
        await self._call("delete_notification", name=name)

    async def test_notification(self, name: str) -> str:
        """See :meth:`Orbit.test_notification`."""
        answer: str = await self._call("test_notification", name=name)
        return answer

    async def outbox(
        self,
        *,
        notification: str | None = None,
        state: MessageState | None = None,
        limit: int = 100,
        before_id: int | None = None,
    ) -> list[OutboxMessage]:
        """See :meth:`Orbit.outbox`."""
        reply = await self._call("outbox", **_outbox_request(notification, state, limit, before_id))
        return [OutboxMessage._from_core(data) for data in reply]

    async def retry_notification_message(self, id: int) -> None:
        """See :meth:`Orbit.retry_notification_message`."""
        await self._call("retry_notification_message", id=id)

    def run_notifier(
        self,
        *,
        link_base: str = "http://127.0.0.1:8080",
        check_every: float = 0.5,
        first_retry: float = 10.0,
        max_retry: float = 900.0,
        timeout: float = 20.0,
    ) -> Service:
        """See :meth:`Orbit.run_notifier` (starting does not wait; ``stop_async()`` does)."""
        return self.blocking.run_notifier(
            link_base=link_base,
            check_every=check_every,
            first_retry=first_retry,
            max_retry=max_retry,
            timeout=timeout,
        )

    async def create_agent(self, name: str, labels: Sequence[str] = (), *, ttl: float = 86400.0) -> Enrolment:
        """See :meth:`Orbit.create_agent`."""
        request = _create_agent_request(name, labels, ttl)
        return Enrolment._from_core(await self._call("create_agent", **request))

    async def agents(self) -> list[AgentInfo]:
        """See :meth:`Orbit.agents`."""
        return [AgentInfo._from_core(data) for data in await self._call("agents")]

    async def agent(self, name: str) -> AgentInfo:
        """See :meth:`Orbit.agent`."""
        return AgentInfo._from_core(await self._call("agent", name=name))

    async def revoke_agent(self, name: str) -> None:
        """See :meth:`Orbit.revoke_agent`."""
        await self._call("revoke_agent", name=name)

    async def audit_log(self, limit: int = 100) -> list[AuditRecord]:
        """See :meth:`Orbit.audit_log`."""
        return [_audit_record(data) for data in await self._call("audit_log", limit=limit)]

    async def verify_audit_log(self) -> int | None:
        """See :meth:`Orbit.verify_audit_log`."""
        bad: int | None = await self._call("verify_audit_log")
        return bad

    async def rotate_keys(self) -> int:
        """See :meth:`Orbit.rotate_keys`."""
        changed: int = await self._call("rotate_keys")
        return changed
