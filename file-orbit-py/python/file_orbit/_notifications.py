"""Notification channels configured as values: :class:`Webhook` (a signed JSON POST),
:class:`Email` (SMTP), :class:`Slack` and :class:`Teams` (incoming webhooks), and the
:class:`RateLimit` of a notification. A channel is where a stored notification
(:meth:`Orbit.put_notification <file_orbit.Orbit.put_notification>`) sends its messages;
the messages are made and sent by whichever node's
:meth:`Orbit.run_notifier <file_orbit.Orbit.run_notifier>` (or server, or worker) runs.

Like an endpoint, a channel builds the core's own configuration form (the README's
``[[notifications]]`` ``channel`` table) and has the core validate it at construction, so
a bad value raises :class:`~file_orbit.ConfigError` naming the field at once, as the core
names it (``url``, ``to[0]``, ``from``). Whether the channel's host may be reached (the
orbit's ``notify_allow``) is checked when the notification is stored. Secrets (a webhook's
signing key, the SMTP password, Slack's and Teams' URLs) are left out of ``repr``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import KW_ONLY, dataclass, field, fields
from typing import Any, ClassVar, Literal

from . import _native

__all__ = [
    "Channel",
    "Email",
    "MessageState",
    "NotifyEvent",
    "RateLimit",
    "Slack",
    "SmtpTls",
    "Teams",
    "Webhook",
]

NotifyEvent = Literal[
    "job_succeeded",
    "attempt_failed",
    "job_dead",
    "chain_completed",
    "event_rejected",
    "source_failing",
    "endpoint_test_failed",
    "worker_lost",
]
"""What a notification can report: a job finished well; an attempt failed and the job will
be tried again; a job failed for good (dead letter); the last job of a chain finished
well; an incoming event could not be used; a stored source stopped working; an
endpoint's connection test failed; the worker running a job was lost."""

SmtpTls = Literal["starttls", "tls", "none"]
"""How an SMTP connection is protected: STARTTLS, which must succeed (port 587 by
default); TLS from the first byte (465); none at all (25, only for a relay on a trusted
network, and never with a password)."""

MessageState = Literal["collecting", "queued", "sending", "sent", "dead"]
"""Where an outbox message is: a digest whose rate window is still open, waiting to be
sent (or tried again), being sent, sent, or dead after its last try."""


@dataclass(frozen=True)
class Channel:
    """Base class of the channel types: where a notification's messages go."""

    kind: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for secret in (f.name for f in fields(self) if not f.repr):
            value = getattr(self, secret)
            if value is not None and not isinstance(value, str):
                # Checked here so that no parser error can echo the value.
                raise TypeError(f"{self.kind} channel: {secret} must be a str, not {type(value).__name__}")
        _native.validate_channel(json.dumps(self._to_core()))

    def _config(self) -> dict[str, Any]:
        raise NotImplementedError

    def _to_core(self) -> dict[str, Any]:
        """The core's JSON form, secrets included (only ever handed to the native module)."""
        config = {key: value for key, value in self._config().items() if value is not None}
        return {"type": self.kind, **config}


@dataclass(frozen=True)
class Webhook(Channel):
    """A JSON POST of the documented schema (``file-orbit.notification/v1``) to ``url``,
    signed with HMAC-SHA256 over ``<timestamp>.<body>`` in the header
    ``X-File-Orbit-Signature: t=<unix>,v1=<hex>``; ``X-File-Orbit-Id`` carries the
    message's stable id so a receiver can drop a repeat.

    Args:
        url: An ``http`` or ``https`` URL without a user or password in it.
        signing_key: The key receivers verify the signature with (at least 16
            characters; never shown in ``repr``).
    """

    url: str
    signing_key: str = field(repr=False)

    kind: ClassVar[str] = "webhook"

    def _config(self) -> dict[str, Any]:
        return {"url": self.url, "signing_key": self.signing_key}


@dataclass(frozen=True)
class Email(Channel):
    """Mail through an SMTP server, one message to every recipient of ``to``; its
    Message-ID is the message's stable id.

    Args:
        host: The SMTP server's host name or IP address.
        to: 1 to 50 recipients (``ops@example.com`` or ``Ops <ops@example.com>``); a
            single ``str`` is one recipient.
        sender: The ``From`` address (``orbit@example.com`` or
            ``File Orbit <orbit@example.com>``). The core's field is ``from`` (a Python
            keyword), so an error about it names ``from``.
        port: Default by ``tls``: 587, 465 or 25.
        tls: ``"starttls"`` (default), ``"tls"`` or ``"none"`` (see :data:`SmtpTls`).
        username: Log in as this user (needs ``password``).
        password: The SMTP password (never shown in ``repr``).
        ca_file: A PEM file of the CAs that sign the server's certificate, when not a
            public CA; a relative path is resolved against the current directory.
    """

    host: str
    _: KW_ONLY
    to: str | Sequence[str]
    sender: str
    port: int | None = None
    tls: SmtpTls = "starttls"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | os.PathLike[str] | None = None

    kind: ClassVar[str] = "email"

    def __post_init__(self) -> None:
        object.__setattr__(self, "to", (self.to,) if isinstance(self.to, str) else tuple(self.to))
        if self.ca_file is not None:
            object.__setattr__(self, "ca_file", os.path.abspath(os.fspath(self.ca_file)))
        super().__post_init__()

    def _config(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "port": self.port,
            "tls": self.tls,
            "username": self.username,
            "password": self.password,
            "from": self.sender,
            "to": list(self.to),
            "ca_file": None if self.ca_file is None else os.fspath(self.ca_file),
        }


@dataclass(frozen=True)
class Slack(Channel):
    """A Slack incoming webhook: a message with blocks.

    Args:
        webhook_url: The webhook's URL, itself the credential (never shown in ``repr``).
    """

    webhook_url: str = field(repr=False)

    kind: ClassVar[str] = "slack"

    def _config(self) -> dict[str, Any]:
        return {"webhook_url": self.webhook_url}


@dataclass(frozen=True)
class Teams(Channel):
    """A Microsoft Teams Workflows webhook: a message with an Adaptive Card.

    Args:
        webhook_url: The workflow's URL, itself the credential (never shown in ``repr``).
    """

    webhook_url: str = field(repr=False)

    kind: ClassVar[str] = "teams"

    def _config(self) -> dict[str, Any]:
        return {"webhook_url": self.webhook_url}


@dataclass(frozen=True)
class RateLimit:
    """At most ``messages`` messages per ``per_seconds`` for one notification; the events
    beyond go into one digest (counting and listing them) sent when the window ends.
    The default of a notification is 10 per 300 s.

    Args:
        messages: 1 to 1,000 messages per window (a digest counts as one).
        per_seconds: The window, 1 s to a day (86,400 s), whole seconds.
    """

    messages: int = 10
    per_seconds: int = 300

    def _to_core(self) -> dict[str, Any]:
        return {"messages": self.messages, "per_secs": self.per_seconds}
