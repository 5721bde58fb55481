"""S3 notifications through SQS, consumed in this process (``Orbit.consume_sqs``) on the
REAL moto server: a fresh bucket whose ObjectCreated notifications go to a fresh queue, a
file uploaded to the bucket (by File Orbit itself), the consumer ingesting the
notification, a template's job copying the object to a local directory. Also: bad sources
refused naming the field, and a canary secret that never shows.

The bucket, the queue and the notification are made with plain HTTP requests: moto checks
no signature (it routes a request to SQS by the service named in its Authorization
header), so the tests need no AWS SDK.
"""

from __future__ import annotations

import asyncio
import pathlib
import time
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from conftest import MASTER_KEY, env, moto, unique, wait_until

import file_orbit as fo

CANARY = "canary-Sqs-Secret-5e7b"
SQS_NS = "{http://queue.amazonaws.com/doc/2012-11-05/}"
TIMEOUT = 30.0


def _sqs(action: str, **params: str) -> ET.Element:
    """One SQS query-protocol call to moto; returns the parsed XML reply."""
    body = urllib.parse.urlencode({"Action": action, "Version": "2012-11-05", **params}).encode()
    request = urllib.request.Request(env("MOTO_ENDPOINT") + "/", data=body, method="POST")
    request.add_header("Content-Type", "application/x-www-form-urlencoded")
    request.add_header(
        "Authorization",
        f"AWS4-HMAC-SHA256 Credential={env('MOTO_ACCESS_KEY_ID')}/20260101/{env('MOTO_REGION')}/sqs/aws4_request, "
        "SignedHeaders=host, Signature=0",
    )
    with urllib.request.urlopen(request, timeout=TIMEOUT) as reply:
        return ET.fromstring(reply.read())


def _s3_put(path: str, body: bytes = b"") -> None:
    request = urllib.request.Request(env("MOTO_ENDPOINT") + path, data=body, method="PUT")
    request.add_header("Content-Type", "application/xml")
    with urllib.request.urlopen(request, timeout=TIMEOUT):
        pass


@dataclass
class Queue:
    """A bucket on moto whose ObjectCreated notifications go to ``url``."""

    bucket: str
    url: str


@pytest.fixture
def queue() -> Iterator[Queue]:
    name = unique("fo-py-sqs")
    _s3_put(f"/{name}")
    url = _sqs("CreateQueue", QueueName=name).findtext(f".//{SQS_NS}QueueUrl")
    assert url, "moto returned no queue URL"
    reply = _sqs("GetQueueAttributes", QueueUrl=url, **{"AttributeName.1": "QueueArn"})
    arn = reply.findtext(f".//{SQS_NS}Value")
    assert arn and arn.startswith("arn:aws:sqs:"), arn
    _s3_put(
        f"/{name}?notification",
        (
            "<NotificationConfiguration><QueueConfiguration><Id>fo</Id>"
            f"<Queue>{arn}</Queue><Event>s3:ObjectCreated:*</Event>"
            "</QueueConfiguration></NotificationConfiguration>"
        ).encode(),
    )
    yield Queue(name, url)
    _sqs("DeleteQueue", QueueUrl=url)


def s3in(bucket: str) -> fo.S3:
    """The S3 endpoint the notifications are about: ``in/`` of the test's bucket."""
    return moto("s3in", "in", bucket)


def source(queue_url: str, **overrides: object) -> fo.SqsSource:
    """An SQS source on moto for endpoint ``s3in``, short long-polls."""
    settings: dict[str, object] = {
        "queue_url": queue_url,
        "region": env("MOTO_REGION"),
        "endpoint": "s3in",
        "endpoint_url": env("MOTO_ENDPOINT"),
        "access_key_id": env("MOTO_ACCESS_KEY_ID"),
        "secret_access_key": env("MOTO_SECRET_ACCESS_KEY"),
        "wait_time_seconds": 1,
        "visibility_timeout_seconds": 30,
    }
    settings.update(overrides)
    return fo.SqsSource(**settings)  # type: ignore[arg-type]


def sqs_stats(service: fo.Service) -> fo.SqsStats:
    stats = service.stats()
    assert isinstance(stats, fo.SqsStats), stats
    return stats


def test_an_upload_to_the_bucket_runs_the_template_through_the_sqs_consumer(
    orbit: fo.Orbit, queue: Queue, local_dirs
) -> None:
    uploads, dst = local_dirs("uploads"), local_dirs("dst")
    (uploads / "report.csv").write_bytes(b"a,b\n1,2\n")
    (uploads / "notes.txt").write_bytes(b"not a csv\n")
    orbit.add_endpoint(s3in(queue.bucket))
    orbit.add_endpoint(fo.Local("dst", root=dst))
    orbit.add_endpoint(fo.Local("uploads", root=uploads))
    spec = fo.TransferSpec("s3in", "dst", destination_path="got/{filename}")
    orbit.add_template(fo.Template("sqs-csv", spec, path_glob="reports/*.csv"))

    with orbit.start_workers(2), orbit.consume_sqs(source(queue.url)) as consumer:
        assert consumer.running and sqs_stats(consumer).failed == 0
        for name in ("report.csv", "notes.txt"):
            upload = orbit.copy("uploads", "s3in", source_path=name, destination_path=f"reports/{name}", scope="file")
            upload.wait(timeout=TIMEOUT)
        wait_until(lambda: (dst / "got" / "report.csv").exists(), TIMEOUT, "the notified object to arrive")

        def settled() -> bool:
            # Both events stored and every message deleted (moto's s3:TestEvent too).
            stats = sqs_stats(consumer)
            return stats.ingested >= 2 and stats.deleted >= 2 + stats.test_events

        wait_until(settled, TIMEOUT, "both notifications to be settled")
        stats = sqs_stats(consumer)
    assert not consumer.running and consumer.stats() is None
    assert (dst / "got" / "report.csv").read_bytes() == b"a,b\n1,2\n"
    assert not (dst / "got" / "notes.txt").exists()
    assert stats.received >= 2 and stats.ingested == 2, stats
    assert (stats.dead, stats.failed, stats.receive_errors, stats.duplicates) == (0, 0, 0, 0), stats

    events = sorted((e for e in orbit.events() if e.source == "sqs"), key=lambda e: e.payload["file"]["path"])
    assert [e.payload["file"]["path"] for e in events] == ["reports/notes.txt", "reports/report.csv"]
    assert [list(e.matched_templates) for e in events] == [[], ["sqs-csv"]]
    (job,) = orbit.jobs("succeeded")
    assert job.template == "sqs-csv"


def test_bad_sources_are_refused_naming_the_field_and_never_show_the_secret(orbit: fo.Orbit, queue: Queue) -> None:
    canary = source(queue.url, secret_access_key=CANARY, session_token=CANARY)
    assert CANARY not in repr(canary) and CANARY not in str(canary)

    def refused(field: str, **overrides: object) -> fo.ConfigError:
        url = str(overrides.pop("queue_url", queue.url))
        with pytest.raises(fo.ConfigError) as caught:
            source(url, secret_access_key=CANARY, **overrides)
        assert caught.value.field == field, caught.value
        assert CANARY not in str(caught.value) and CANARY not in repr(caught.value)
        return caught.value

    refused("queue_url", queue_url="not a url")
    refused("region", region=" ")
    refused("endpoint_url", endpoint_url="ftp://127.0.0.1:5000")
    refused("secret_access_key", access_key_id=None)
    refused("endpoint", endpoint="")
    assert "above SQS's maximum" in str(refused("wait_time_seconds", wait_time_seconds=21))
    refused("max_messages", max_messages=0)
    refused("visibility_timeout_seconds", visibility_timeout_seconds=43_201)
    with pytest.raises(TypeError, match="secret_access_key must be a str") as type_error:
        source(queue.url, secret_access_key=b"canary-Sqs-Secret-5e7b")
    assert CANARY not in str(type_error.value)

    # What only the running engine can check: the endpoint, then the queue.
    with pytest.raises(fo.NotFoundError) as missing:
        orbit.consume_sqs(canary)
    assert CANARY not in str(missing.value)
    orbit.add_endpoint(fo.Local("s3in", root="/tmp"))
    with pytest.raises(fo.ConfigError) as not_s3:
        orbit.consume_sqs(canary)
    assert not_s3.value.field == "endpoint" and "not an S3 endpoint" in str(not_s3.value)


def test_a_missing_queue_is_not_found_without_the_secret(orbit: fo.Orbit, queue: Queue) -> None:
    orbit.add_endpoint(s3in(queue.bucket))
    gone = queue.url.rsplit("/", 1)[0] + "/" + unique("fo-py-no-such-queue")
    with pytest.raises(fo.NotFoundError) as missing:
        orbit.consume_sqs(source(gone, secret_access_key=CANARY))
    assert CANARY not in str(missing.value) and CANARY not in repr(missing.value)


@pytest.mark.asyncio
async def test_the_async_orbit_consumes_sqs_too(store: str, queue: Queue, local_dirs) -> None:
    uploads, dst = local_dirs("uploads"), local_dirs("dst")
    (uploads / "a.csv").write_bytes(b"async\n")
    async with await fo.AsyncOrbit.open(store, master_key=MASTER_KEY, lease=3.0, poll_interval=0.02) as aorbit:
        await aorbit.add_endpoint(s3in(queue.bucket))
        await aorbit.add_endpoint(fo.Local("dst", root=dst))
        await aorbit.add_endpoint(fo.Local("uploads", root=uploads))
        await aorbit.add_template(fo.Template("all", fo.TransferSpec("s3in", "dst", destination_path="{filename}")))
        async with aorbit.start_workers(1), await aorbit.consume_sqs(source(queue.url)) as consumer:
            await (await aorbit.copy("uploads", "s3in", source_path="a.csv", destination_path="a.csv", scope="file"))
            await _until(lambda: (dst / "a.csv").exists(), "the notified object to arrive")
            assert sqs_stats(consumer).ingested == 1
        assert (dst / "a.csv").read_bytes() == b"async\n"


async def _until(check: Callable[[], bool], what: str) -> None:
    """Awaits ``check()`` becoming true without blocking the loop, failing after TIMEOUT."""
    deadline = time.monotonic() + TIMEOUT
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def test_an_endpoint_object_gives_the_source_its_name(tmp_path: pathlib.Path) -> None:
    endpoint = fo.Local("s3in", root=tmp_path)
    made = fo.SqsSource("http://127.0.0.1:5000/123456789012/q", region="us-east-1", endpoint=endpoint)
    assert made.endpoint == "s3in" and made._to_core()["endpoint"] == "s3in"
