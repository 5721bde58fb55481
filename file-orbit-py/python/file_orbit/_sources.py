"""Event sources configured as values: :class:`SqsSource` (S3 notifications read from an
SQS queue), :class:`LocalWatch` (a local endpoint's folder) and :class:`RemotePoll` (a
remote endpoint's folder listed every interval). Each is the spec of a stored source
(:meth:`Orbit.put_source <file_orbit.Orbit.put_source>`, run by whichever node's
:meth:`Orbit.run_sources <file_orbit.Orbit.run_sources>` leases it) or runs in this
process alone (``consume_sqs``, ``watch_local``, ``poll_remote``).

Like an endpoint, a source builds the core's own configuration form and has the core
validate it at construction, so a bad value raises :class:`~file_orbit.ConfigError`
naming the field at once (as the core names it: a duration's error names e.g.
``stable_for_ms``). Durations are seconds here, whole milliseconds in the core's form; a
field left at None takes the core's default. Secrets are left out of ``repr``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import KW_ONLY, dataclass, field, fields
from typing import Any, ClassVar, TypeAlias

from . import _native
from ._endpoints import Endpoint

__all__ = ["LocalWatch", "RemotePoll", "SourceSpec", "SqsSource"]


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds * 1000)


def _endpoint_name(endpoint: str | Endpoint) -> str:
    return endpoint.name if isinstance(endpoint, Endpoint) else endpoint


@dataclass(frozen=True)
class SqsSource:
    """An SQS queue receiving a bucket's S3 event notifications (direct or wrapped by
    SNS): each ``ObjectCreated`` record under the S3 endpoint's bucket and prefix becomes
    an event for the templates of that endpoint; a message is deleted only once its events
    are stored (at-least-once delivery, duplicates dropped by key and ETag).

    Without ``access_key_id``/``secret_access_key`` the environment's or the instance's
    credentials are used.

    Args:
        queue_url: The queue's URL, e.g.
            ``"https://sqs.eu-west-1.amazonaws.com/123456789012/uploads"``.
        region: The queue's region.
        endpoint: The stored S3 endpoint (or its name) whose bucket the notifications are
            about; its bucket and prefix are read when the consumer starts.
        endpoint_url: The SQS server's URL for non-AWS servers, e.g.
            ``"http://127.0.0.1:5000"``.
        access_key_id: Static access key id.
        secret_access_key: Static secret key (never shown in ``repr``).
        session_token: Session token for temporary credentials (never shown).
        wait_time_seconds: Long polling: how long one receive waits for messages (0–20).
        max_messages: Messages per receive (1–10).
        visibility_timeout_seconds: How long a received message stays hidden from other
            consumers (1 s – 12 h); extended while it is being ingested.
    """

    queue_url: str
    _: KW_ONLY
    region: str
    endpoint: str | Endpoint
    endpoint_url: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    wait_time_seconds: int = 20
    max_messages: int = 10
    visibility_timeout_seconds: int = 60

    _kind: ClassVar[str] = "sqs"

    def __post_init__(self) -> None:
        if isinstance(self.endpoint, Endpoint):
            object.__setattr__(self, "endpoint", self.endpoint.name)
        for secret in (f.name for f in fields(self) if not f.repr):
            value = getattr(self, secret)
            if value is not None and not isinstance(value, str):
                # Checked here so that no parser error can echo the value.
                raise TypeError(f"sqs source {self.queue_url!r}: {secret} must be a str, not {type(value).__name__}")
        _native.validate_source_spec(self._kind, json.dumps(self._to_core()))

    def _to_core(self) -> dict[str, Any]:
        """The core's JSON form, secrets included (only ever handed to the native module)."""
        config = {
            "queue_url": self.queue_url,
            "region": self.region,
            "endpoint": self.endpoint.name if isinstance(self.endpoint, Endpoint) else self.endpoint,
            "endpoint_url": self.endpoint_url,
            "access_key_id": self.access_key_id,
            "secret_access_key": self.secret_access_key,
            "session_token": self.session_token,
            "wait_time_seconds": self.wait_time_seconds,
            "max_messages": self.max_messages,
            "visibility_timeout_seconds": self.visibility_timeout_seconds,
        }
        return {key: value for key, value in config.items() if value is not None}


def _settle_folder_spec(spec: LocalWatch | RemotePoll) -> None:
    """Stores a watch's or poll's endpoint by name and its ignore globs as a tuple, then has
    the core check the spec (errors name the core's field)."""
    object.__setattr__(spec, "endpoint", _endpoint_name(spec.endpoint))
    if spec.ignore is not None:
        object.__setattr__(spec, "ignore", tuple(spec.ignore))
    _native.validate_source_spec(spec._kind, json.dumps(spec._to_core()))


@dataclass(frozen=True)
class LocalWatch:
    """A stored local endpoint's folder, watched on the node that sees it: each complete
    file becomes an event for the templates of that endpoint.

    A file is complete when closed after writing and unmodified for ``stable_for``
    seconds, renamed into place, or (found by a scan) unchanged for a second; with
    ``marker_suffix`` (e.g. ``".done"``) only once ``name.done`` exists.

    Args:
        endpoint: The stored local endpoint (or its name) whose root is watched.
        sub_path: A directory below its root to watch instead (relative, no ``..``);
            event paths stay relative to the endpoint's root.
        stable_for: Seconds a closed file must stay unmodified (0: at once); default 1,
            at most a day.
        marker_suffix: Hand a file over only once ``<name><suffix>`` exists.
        ignore: Globs of names to ignore (at most 100); default ``*.partial``, ``*.tmp``,
            ``.*``.
        rescan_interval: Seconds between full rescans for anything missed; default 60,
            0.1 s to a day.
    """

    endpoint: str | Endpoint
    _: KW_ONLY
    sub_path: str | None = None
    stable_for: float | None = None
    marker_suffix: str | None = None
    ignore: Sequence[str] | None = None
    rescan_interval: float | None = None

    _kind: ClassVar[str] = "local_watch"

    def __post_init__(self) -> None:
        _settle_folder_spec(self)

    def _to_core(self) -> dict[str, Any]:
        """The core's JSON form (``LocalWatch``: durations in milliseconds)."""
        config = {
            "endpoint": _endpoint_name(self.endpoint),
            "sub_path": self.sub_path,
            "stable_for_ms": _ms(self.stable_for),
            "marker_suffix": self.marker_suffix,
            "ignore": None if self.ignore is None else list(self.ignore),
            "rescan_interval_ms": _ms(self.rescan_interval),
        }
        return {key: value for key, value in config.items() if value is not None}


@dataclass(frozen=True)
class RemotePoll:
    """A stored endpoint's folder (SFTP, SMB, S3, ...) listed every ``interval`` seconds:
    a new or changed file becomes an event once it looked the same on two polls.

    Args:
        endpoint: The stored endpoint (or its name) to list.
        path: The directory inside the endpoint (``""``: its root; relative, no ``..``).
        interval: Seconds between two polls; default 60, 0.1 s to a day.
        ignore: Globs of names never handed over (at most 100); default ``*.partial``
            and ``.*``.
    """

    endpoint: str | Endpoint
    path: str = ""
    _: KW_ONLY
    interval: float | None = None
    ignore: Sequence[str] | None = None

    _kind: ClassVar[str] = "remote_poll"

    def __post_init__(self) -> None:
        _settle_folder_spec(self)

    def _to_core(self) -> dict[str, Any]:
        """The core's JSON form (``RemotePoll``: the interval in milliseconds)."""
        config = {
            "endpoint": _endpoint_name(self.endpoint),
            "path": self.path,
            "interval_ms": _ms(self.interval),
            "ignore": None if self.ignore is None else list(self.ignore),
        }
        return {key: value for key, value in config.items() if value is not None}


SourceSpec: TypeAlias = SqsSource | LocalWatch | RemotePoll
"""What a stored source watches (:meth:`Orbit.put_source <file_orbit.Orbit.put_source>`)."""
