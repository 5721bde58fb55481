"""Event sources configured as values: :class:`SqsSource`, S3 notifications read from an
SQS queue (run in this process by :meth:`Orbit.consume_sqs <file_orbit.Orbit.consume_sqs>`).

Like an endpoint, a source builds the core's own configuration form and has the core
validate it at construction, so a bad value raises :class:`~file_orbit.ConfigError`
naming the field at once. Secrets are left out of ``repr``.
"""

from __future__ import annotations

import json
from dataclasses import KW_ONLY, dataclass, field, fields
from typing import Any

from . import _native
from ._endpoints import Endpoint

__all__ = ["SqsSource"]


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

    def __post_init__(self) -> None:
        if isinstance(self.endpoint, Endpoint):
            object.__setattr__(self, "endpoint", self.endpoint.name)
        for secret in (f.name for f in fields(self) if not f.repr):
            value = getattr(self, secret)
            if value is not None and not isinstance(value, str):
                # Checked here so that no parser error can echo the value.
                raise TypeError(f"sqs source {self.queue_url!r}: {secret} must be a str, not {type(value).__name__}")
        _native.validate_sqs_source(json.dumps(self._to_core()))

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
