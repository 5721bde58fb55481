"""Notifications from Python against the REAL receivers ``scripts/test-servers.sh``
starts (``scripts/notify-receivers.py``): an SMTP server with STARTTLS and AUTH, and an
HTTP receiver that verifies webhook signatures and checks Slack and Teams payloads. Each
test uses receiver names and mail addresses of its own, sets the receiver's mode through
its control URL and reads back what it accepted.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import pathlib
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar

import pytest
import pytest_asyncio
from conftest import MASTER_KEY, env, unique, wait_until, worker_service

import file_orbit as fo

T = TypeVar("T")

# The receivers listen on loopback: the tests allow it, nothing else.
ALLOW = ["127.0.0.1"]
WAIT = 60.0


def receiver(path: str, method: str = "GET", body: Any = None) -> Any:
    """A request to the HTTP receiver; its JSON answer."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        env("NOTIFY_URL") + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read() or b"null")


def set_mode(name: str, mode: str) -> None:
    """Receiver ``name`` answers as ``mode`` says (``up``: accepts, ``down``: 503)."""
    receiver(f"/control/{name}", "PUT", {"mode": mode})


def received(name: str) -> dict[str, list[dict[str, Any]]]:
    """What receiver ``name`` accepted and refused."""
    got: dict[str, list[dict[str, Any]]] = receiver(f"/received/{name}")
    return got


def mails(address: str) -> list[dict[str, Any]]:
    """The mails the SMTP server accepted for ``address``."""
    got: list[dict[str, Any]] = receiver(f"/received/mail/{address.lower()}")["accepted"]
    return got


def until(what: str, find: Callable[[], T | None], timeout: float = WAIT) -> T:
    """Polls ``find`` until it returns something (not None), failing after ``timeout``."""
    deadline = time.monotonic() + timeout
    while (found := find()) is None:
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)
    return found


def email(to: str) -> fo.Email:
    """An email channel through the test SMTP server (STARTTLS, AUTH, its private CA)."""
    return fo.Email(
        env("SMTP_HOST"),
        port=int(env("SMTP_PORT")),
        tls="starttls",
        username=env("SMTP_USER"),
        password=env("SMTP_PASSWORD"),
        sender="File Orbit <orbit@orbit.test>",
        to=[to],
        ca_file=env("NOTIFY_CA"),
    )


def webhook(name: str) -> fo.Webhook:
    """A webhook to receiver ``name``, signed with the key the receiver verifies."""
    return fo.Webhook(f"{env('NOTIFY_URL')}/webhook/{name}", signing_key=env("WEBHOOK_SIGNING_KEY"))


def canaries() -> list[str]:
    """The secrets that must never show: the SMTP password and the webhook signing key."""
    return [env("SMTP_PASSWORD"), env("WEBHOOK_SIGNING_KEY")]


def assert_no_canary(*values: object) -> None:
    for value in values:
        text = repr(value)
        for canary in canaries():
            assert canary not in text, f"a secret in {text}"


@pytest.fixture
def norbit(store: str) -> Iterator[fo.Orbit]:
    """A blocking Orbit whose channels may reach the receivers on loopback."""
    with fo.Orbit(store, master_key=MASTER_KEY, lease=3.0, poll_interval=0.02, notify_allow=ALLOW) as orbit:
        yield orbit


@pytest.fixture
def copies(norbit: fo.Orbit, tmp_path: pathlib.Path) -> Callable[[str], fo.Job]:
    """Local endpoints ``in`` (holding ``a.txt``) and ``out``; submits a copy of a path
    from one to the other, tried once."""
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.txt").write_bytes(b"hello\n")
    norbit.add_endpoint(fo.Local("in", root=tmp_path / "in"))
    norbit.add_endpoint(fo.Local("out", root=tmp_path / "out"))

    def submit(path: str) -> fo.Job:
        spec = fo.TransferSpec("in", "out", source_path=path, destination_path="{filename}", scope="file")
        return norbit.submit(spec, retry=fo.RetryPolicy(max_attempts=1))

    return submit


def test_a_dead_job_is_mailed_through_starttls_with_auth(norbit: fo.Orbit, copies: Callable[[str], fo.Job]) -> None:
    to = f"{unique('ops')}@orbit.test"
    stored = norbit.put_notification("mail", email(to), "job_dead")
    assert (stored.kind, stored.events, stored.enabled) == ("email", ("job_dead",), True)
    assert stored.channel["password"] == "***" and stored.channel["from"] == "File Orbit <orbit@orbit.test>"
    assert stored.rate_limit == fo.RateLimit(10, 300) and stored.max_attempts == 8
    with norbit.start_workers(1), norbit.run_notifier(
        link_base="https://orbit.example", check_every=0.05, first_retry=0.2, max_retry=2.0
    ):
        job = copies("missing.txt")
        with pytest.raises(fo.NotFoundError):
            job.wait(timeout=WAIT)
        mail = until("the mail", lambda: next(iter(mails(to)), None))
        sent = until(
            "the outbox to say sent",
            lambda: next((m for m in norbit.outbox(notification="mail") if m.state == "sent"), None),
        )
    assert mail["tls"] is True and mail["auth_user"] == env("SMTP_USER"), mail
    assert mail["message_id"] == f"<{sent.message_id}@file-orbit>"
    assert "Job dead" in mail["subject"]
    for needle in (f"job {job.id}", "missing.txt", f"https://orbit.example/api/v1/jobs/{job.id}", "NotFound"):
        assert needle in mail["text"], f"{needle!r} not in the mail:\n{mail['text']}"
    assert (sent.notification, sent.channel, sent.event, sent.item_count) == ("mail", "email", "job_dead", 1)
    assert sent.answer is not None and sent.answer.startswith("SMTP 250"), sent
    assert sent.attempts == 1 and sent.last_error is None
    assert isinstance(sent.sent_at, dt.datetime) and sent.sent_at.tzinfo is not None
    assert sent.created_at <= sent.sent_at
    assert sent.body["items"][0]["job"]["id"] == job.id, sent.body
    [info] = norbit.notifications()
    assert (info.name, info.sent, info.pending, info.dead) == ("mail", 1, 0, 0)
    assert isinstance(info.last_sent_at, dt.datetime)
    assert_no_canary(stored, info, sent, norbit.outbox(), norbit.notification("mail"), email(to))


def test_a_webhook_is_tested_and_its_job_message_accepted_by_the_receiver(
    norbit: fo.Orbit, copies: Callable[[str], fo.Job]
) -> None:
    name = unique("hook")
    set_mode(name, "up")
    norbit.put_notification(
        "hook", webhook(name), ["job_succeeded", "job_dead"], endpoints=["in"], rate_limit=fo.RateLimit(5, 60)
    )
    assert norbit.test_notification("hook") == "HTTP 200 OK"
    [tested] = received(name)["accepted"]
    assert tested["json"]["test"] is True, tested

    set_mode(name, "down")
    with pytest.raises(fo.RemoteError, match="503") as refused:
        norbit.test_notification("hook")
    assert refused.value.retryable
    assert len(received(name)["refused"]) == 1
    set_mode(name, "up")

    with norbit.start_workers(1), norbit.run_notifier(check_every=0.05, first_retry=0.2, max_retry=2.0):
        job = copies("a.txt")
        assert job.wait(timeout=WAIT).state == "succeeded"
        sent = until(
            "the outbox to say sent",
            lambda: next(iter(norbit.outbox(notification="hook", state="sent")), None),
        )
    accepted = received(name)["accepted"]
    assert len(accepted) == 2, accepted
    hook = accepted[1]
    # The receiver verified the signature (a bad one is refused, not accepted).
    assert hook["id"] == sent.message_id and hook["problems"] == [], hook
    assert hook["json"]["event"] == "job_succeeded" and hook["json"]["items"][0]["job"]["id"] == job.id
    assert sent.answer == "HTTP 200 OK" and sent.event == "job_succeeded"
    info = norbit.notification("hook")
    assert (info.endpoints, info.templates, info.sources) == (("in",), (), ())
    assert info.rate_limit == fo.RateLimit(messages=5, per_seconds=60) and info.sent == 1
    assert info.channel == {"type": "webhook", "url": f"{env('NOTIFY_URL')}/webhook/{name}", "signing_key": "***"}
    assert_no_canary(info, sent, norbit.notifications(), webhook(name))

    norbit.delete_notification("hook")
    with pytest.raises(fo.NotFoundError):
        norbit.notification("hook")
    assert norbit.notifications() == []


def field_of(error: pytest.ExceptionInfo[fo.ConfigError]) -> str | None:
    return error.value.field


def test_the_worker_service_sends_the_stores_notifications(
    norbit: fo.Orbit, copies: Callable[[str], fo.Job], store: str
) -> None:
    name = unique("service")
    set_mode(name, "up")
    norbit.put_notification(name, webhook(name), "job_dead")
    job = copies("missing.txt")
    args = ("--store", store, "--notify-allow", "127.0.0.1", "--link-base", "https://mft.example")
    with worker_service(*args) as service:
        got = until("the message", lambda: received(name)["accepted"] or None)
    assert service.returncode == 0, service.errors
    assert "sending notifications" in service.printed, service.printed
    item = got[0]["json"]["items"][0]
    assert item["job"]["id"] == job.id
    assert item["job"]["url"] == f"https://mft.example/api/v1/jobs/{job.id}"


def test_bad_values_raise_config_error_naming_the_field(norbit: fo.Orbit) -> None:
    with pytest.raises(fo.ConfigError) as bad:
        fo.Email("127.0.0.1", to=["nope"], sender="orbit@orbit.test")
    assert field_of(bad) == "to[0]" and "nope" in str(bad.value)
    with pytest.raises(fo.ConfigError) as bad:
        fo.Email("127.0.0.1", to="ops@orbit.test", sender="not an address")
    assert field_of(bad) == "from"
    with pytest.raises(fo.ConfigError) as bad:
        fo.Email("127.0.0.1", to="ops@orbit.test", sender="o@orbit.test", username="u", password="pw-canary", tls="none")
    assert field_of(bad) == "tls" and "pw-canary" not in str(bad.value)
    with pytest.raises(fo.ConfigError) as bad:
        fo.Email("127.0.0.1", to="ops@orbit.test", sender="o@orbit.test", tls="ssl")  # type: ignore[arg-type]
    assert field_of(bad) == "tls"
    with pytest.raises(fo.ConfigError) as bad:
        fo.Webhook("ftp://127.0.0.1/hook", signing_key=env("WEBHOOK_SIGNING_KEY"))
    assert field_of(bad) == "url"
    with pytest.raises(fo.ConfigError) as bad:
        fo.Webhook("http://127.0.0.1/hook", signing_key="short")
    assert field_of(bad) == "signing_key"
    secret_url = "not a url with a token-canary-77"
    with pytest.raises(fo.ConfigError) as bad:
        fo.Slack(secret_url)
    assert field_of(bad) == "webhook_url" and "token-canary-77" not in str(bad.value)
    with pytest.raises(TypeError, match="signing_key must be a str"):
        fo.Webhook("http://127.0.0.1/hook", signing_key=1234567890123456789)  # type: ignore[arg-type]

    hook = webhook(unique("bad"))
    with pytest.raises(fo.ConfigError) as bad:
        norbit.put_notification("x", hook, ["job_exploded"])  # type: ignore[list-item]
    assert field_of(bad) == "events[0]"
    with pytest.raises(fo.ConfigError) as bad:
        norbit.put_notification("x", hook, [])
    assert field_of(bad) == "events"
    with pytest.raises(fo.ConfigError) as bad:
        norbit.put_notification("x", hook, "job_dead", rate_limit=fo.RateLimit(0, 60))
    assert field_of(bad) == "rate_limit.messages"
    with pytest.raises(fo.ConfigError) as bad:
        norbit.put_notification("x", hook, "job_dead", max_attempts=0)
    assert field_of(bad) == "max_attempts"
    with pytest.raises(fo.ConfigError) as bad:
        norbit.put_notification("x/y", hook, "job_dead")
    assert field_of(bad) == "name"
    for outside in ("http://192.0.2.10/hook", "http://169.254.169.254/latest", "https://hooks.example.com/x"):
        with pytest.raises(fo.ConfigError) as bad:
            norbit.put_notification("x", fo.Webhook(outside, signing_key=env("WEBHOOK_SIGNING_KEY")), "job_dead")
        assert field_of(bad) == "channel.url", bad.value
    with pytest.raises(fo.ConfigError) as bad:
        norbit.put_notification("x", fo.Slack("http://10.0.0.1/services/T0/B0/canary-path"), "job_dead")
    assert field_of(bad) == "channel.webhook_url" and "canary-path" not in str(bad.value)
    with pytest.raises(TypeError, match="channel must be"):
        norbit.put_notification("x", {"type": "webhook"}, "job_dead")  # type: ignore[arg-type]
    with pytest.raises(fo.ConfigError) as bad:
        norbit.outbox(state="lost")  # type: ignore[arg-type]
    assert field_of(bad) == "state"
    with pytest.raises(fo.ConfigError) as bad:
        norbit.outbox(limit=0)
    assert field_of(bad) == "limit"
    with pytest.raises(fo.ConfigError) as bad:
        norbit.run_notifier(check_every=0.001)
    assert field_of(bad) == "check_every"
    assert norbit.notifications() == []
    with pytest.raises(fo.NotFoundError):
        norbit.test_notification("x")


def test_secrets_never_show_in_repr() -> None:
    key, password = env("WEBHOOK_SIGNING_KEY"), env("SMTP_PASSWORD")
    slack_url = f"{env('NOTIFY_URL')}/slack/canary-slack-path"
    values = [
        webhook("repr"),
        email("ops@orbit.test"),
        fo.Slack(slack_url),
        fo.Teams(f"{env('NOTIFY_URL')}/teams/canary-teams-path"),
    ]
    for value in values:
        text = repr(value)
        assert key not in text and password not in text and "canary-" not in text, text
    assert repr(values[0]) == f"Webhook(url='{env('NOTIFY_URL')}/webhook/repr')"
    assert repr(values[2]) == "Slack()"
    # The secrets are still there for the core.
    assert values[0]._to_core()["signing_key"] == key and values[1]._to_core()["password"] == password


@pytest_asyncio.fixture
async def aorbit(store: str) -> AsyncIterator[fo.AsyncOrbit]:
    async with await fo.AsyncOrbit.open(
        store, master_key=MASTER_KEY, lease=3.0, poll_interval=0.02, notify_allow=ALLOW
    ) as aorbit:
        yield aorbit


@pytest.mark.asyncio
async def test_async_a_dead_message_is_sent_when_retried(aorbit: fo.AsyncOrbit, tmp_path: pathlib.Path) -> None:
    slack, teams = unique("slack"), unique("teams")
    set_mode(slack, "up")
    set_mode(teams, "down")
    base = env("NOTIFY_URL")
    await aorbit.put_notification("slack", fo.Slack(f"{base}/slack/{slack}"), ["job_succeeded"])
    await aorbit.put_notification("teams", fo.Teams(f"{base}/teams/{teams}"), ["job_succeeded"], max_attempts=1)
    assert await aorbit.test_notification("slack") == "HTTP 200 OK"
    [slack_info, teams_info] = await aorbit.notifications()
    assert (slack_info.kind, teams_info.kind) == ("slack", "teams")
    assert slack_info.channel == {"type": "slack", "webhook_url": "***"}
    assert "slack/" not in repr(slack_info) and "teams/" not in repr(teams_info)

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.txt").write_bytes(b"hello\n")
    await aorbit.add_endpoint(fo.Local("in", root=tmp_path / "in"))
    await aorbit.add_endpoint(fo.Local("out", root=tmp_path / "out"))
    spec = fo.TransferSpec("in", "out", source_path="a.txt", destination_path="{filename}", scope="file")
    async with aorbit.start_workers(1), aorbit.run_notifier(check_every=0.05, first_retry=0.2, max_retry=2.0):
        job = await aorbit.submit(spec)
        assert (await job).state == "succeeded"
        deadline = time.monotonic() + WAIT
        while not (dead := await aorbit.outbox(notification="teams", state="dead")):
            assert time.monotonic() < deadline, "the Teams message never died"
            await asyncio.sleep(0.05)
        [message] = dead
        assert message.attempts == 1 and message.last_error is not None and "503" in message.last_error
        assert message.answer is None and message.sent_at is None
        set_mode(teams, "up")
        await aorbit.retry_notification_message(message.id)
        while not await aorbit.outbox(notification="teams", state="sent"):
            assert time.monotonic() < deadline, "the retried Teams message was never sent"
            await asyncio.sleep(0.05)
    wait_until(lambda: len(received(slack)["accepted"]) == 2, what="the Slack test and job messages")
    # Once: the receiver refused the first try and accepted the retry.
    assert [len(received(teams)[which]) for which in ("refused", "accepted")] == [1, 1]
    [retried] = await aorbit.outbox(notification="teams")
    assert (retried.id, retried.state, retried.answer) == (message.id, "sent", "HTTP 202 Accepted")
    assert (await aorbit.notification("teams")).sent == 1
    await aorbit.delete_notification("slack")
    assert [info.name for info in await aorbit.notifications()] == ["teams"]

