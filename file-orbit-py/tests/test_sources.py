"""Stored event sources from Python (issue #13): ``orbit.put_source`` with an
:class:`SqsSource` on the REAL moto server (S3 notifications to a fresh queue, as in
test_sqs.py) and with a :class:`LocalWatch`, run by ``orbit.run_sources()`` on a named
node, observed through ``orbit.sources()`` (state, owner node, counters, last event) and
the events (``source_name``); a watch paused, resumed and deleted while it runs; bad specs
refused with the field named as the core names it; a canary secret that never shows.

Every wait polls a condition with a deadline; a "nothing happened" check is bounded by
something that did happen (a second watch, still running, that saw a later file).
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import pathlib
import time
from collections.abc import Iterator

import pytest
from conftest import MASTER_KEY, wait_until, worker_service
from test_sqs import CANARY, TIMEOUT, Queue, s3in
from test_sqs import queue as queue  # the fixture: a bucket notifying a fresh queue
from test_sqs import source as sqs_source

import file_orbit as fo

NODE = "py-node-a"


@pytest.fixture
def orbit(store: str) -> Iterator[fo.Orbit]:
    """An orbit on a fresh store that is the node ``NODE`` with the label site=test."""
    with fo.Orbit(
        store, master_key=MASTER_KEY, lease=3.0, poll_interval=0.02, node=NODE, labels={"site": "test"}
    ) as orbit:
        yield orbit


def run_sources(orbit: fo.Orbit) -> fo.Service:
    return orbit.run_sources(lease=3.0, check_every=0.1)


def events_of(orbit: fo.Orbit, path: str) -> list[fo.Event]:
    """The stored events about the file at ``path``."""
    return [e for e in orbit.events(1000) if (e.payload.get("file") or {}).get("path") == path]


def wait_for_state(orbit: fo.Orbit, name: str, state: fo.SourceState) -> fo.SourceStatus:
    wait_until(lambda: orbit.source(name).state == state, TIMEOUT, f"source {name!r} to be {state}")
    return orbit.source(name)


def test_an_sqs_source_put_and_run_by_this_node_copies_an_upload(
    orbit: fo.Orbit, queue: Queue, local_dirs
) -> None:
    uploads, dst = local_dirs("uploads"), local_dirs("dst")
    (uploads / "report.csv").write_bytes(b"a,b\n1,2\n")
    orbit.add_endpoint(s3in(queue.bucket))
    orbit.add_endpoint(fo.Local("dst", root=dst))
    orbit.add_endpoint(fo.Local("uploads", root=uploads))
    orbit.add_template(
        fo.Template("sqs-csv", fo.TransferSpec("s3in", "dst", destination_path="got/{filename}"), path_glob="reports/*.csv")
    )
    # moto checks no signature: the canary is a usable secret there.
    spec = sqs_source(queue.url, secret_access_key=CANARY)
    assert CANARY not in repr(spec)
    orbit.put_source("uploads", spec, node=NODE)

    (stored,) = orbit.sources()
    assert (stored.name, stored.kind, stored.enabled, stored.state) == ("uploads", "sqs", True, "starting")
    assert stored.owner_node is None and stored.placement == {"node": NODE}
    assert stored.spec["secret_access_key"] == "***" and stored.spec["queue_url"] == queue.url
    assert stored.counters == fo.SourceCounters(0, 0, 0, 0, 0) and stored.last_event_at is None

    with orbit.start_workers(2), run_sources(orbit) as runner:
        running = wait_for_state(orbit, "uploads", "running")
        assert running.owner_node == NODE and running.owner is not None and running.owner.startswith(f"{NODE}/")
        upload = orbit.copy("uploads", "s3in", source_path="report.csv", destination_path="reports/report.csv", scope="file")
        upload.wait(timeout=TIMEOUT)
        wait_until(lambda: (dst / "got" / "report.csv").exists(), TIMEOUT, "the notified object to arrive")
        wait_until(lambda: orbit.source("uploads").counters.ingested >= 1, TIMEOUT, "the counters to be reported")
        status = orbit.source("uploads")
        wait_until(lambda: len(orbit.jobs("succeeded")) == 1, TIMEOUT, "the job to succeed")
    assert not runner.running
    assert (dst / "got" / "report.csv").read_bytes() == b"a,b\n1,2\n"

    assert status.state == "running" and status.owner_node == NODE, status
    assert status.counters.received >= 1 and status.counters.ingested >= 1, status.counters
    assert (status.counters.dead, status.counters.errors) == (0, 0), status.counters
    assert status.last_event_at is not None and status.last_error is None, status
    now = _dt.datetime.now(_dt.timezone.utc)
    assert status.lease_until is not None and now - _dt.timedelta(minutes=1) < status.last_event_at <= now

    (event,) = events_of(orbit, "reports/report.csv")
    assert (event.source, event.source_name, event.matched_templates) == ("sqs", "uploads", ("sqs-csv",))
    (job,) = orbit.jobs("succeeded")
    assert job.template == "sqs-csv" and event.job_ids == (job.id,)

    # Stopping the runner released the lease: the source waits for a node again.
    released = orbit.source("uploads")
    assert (released.state, released.owner_node, released.owner) == ("starting", None, None)
    assert released.counters.ingested >= 1

    shown = [repr(orbit.sources()), repr(orbit.events(1000)), repr(orbit.audit_log(1000)), repr(spec), str(spec)]
    assert not [text for text in shown if CANARY in text]


def test_a_local_watch_source_is_observed_paused_resumed_and_deleted(orbit: fo.Orbit, local_dirs) -> None:
    inbox, side, dst = local_dirs("inbox"), local_dirs("side"), local_dirs("dst")
    for name, root in (("inbox", inbox), ("side", side), ("dst", dst)):
        orbit.add_endpoint(fo.Local(name, root=root))
    for name in ("inbox", "side"):
        orbit.add_template(fo.Template(f"from-{name}", fo.TransferSpec(name, "dst", destination_path=f"{name}/{{filename}}")))
    # Placed by label: this node carries site=test.
    orbit.put_source("inbox-watch", fo.LocalWatch("inbox", stable_for=0), labels={"site": "test"})
    # The clock of the "nothing happened" checks: a watch that keeps running.
    orbit.put_source("side-watch", fo.LocalWatch(fo.Local("side", root=side), stable_for=0))

    def arrived(name: str, path: str) -> None:
        wait_until(lambda: (dst / name / path).exists(), TIMEOUT, f"{name}/{path} to arrive")

    with orbit.start_workers(2), run_sources(orbit):
        watch = wait_for_state(orbit, "inbox-watch", "running")
        assert watch.owner_node == NODE and watch.placement == {"labels": {"site": "test"}}
        wait_for_state(orbit, "side-watch", "running")
        (inbox / "a.csv").write_bytes(b"first\n")
        arrived("inbox", "a.csv")
        wait_until(lambda: orbit.source("inbox-watch").counters.ingested == 1, TIMEOUT, "the watch's counters")
        watch = orbit.source("inbox-watch")
        assert watch.last_event_at is not None and watch.counters.errors == 0, watch
        (event,) = events_of(orbit, "a.csv")
        assert (event.source, event.source_name, event.matched_templates) == ("local-watch", "inbox-watch", ("from-inbox",))

        # Paused: the runner stops the watch and releases its lease.
        orbit.pause_source("inbox-watch")
        wait_until(
            lambda: (orbit.source("inbox-watch").state, orbit.source("inbox-watch").owner_node) == ("paused", None),
            TIMEOUT,
            "the watch to stop",
        )
        assert not orbit.source("inbox-watch").enabled
        (inbox / "b.csv").write_bytes(b"while paused\n")
        (side / "clock-1.csv").write_bytes(b"tick\n")
        arrived("side", "clock-1.csv")
        wait_until(lambda: bool(events_of(orbit, "clock-1.csv")), TIMEOUT, "the running watch's event")
        assert events_of(orbit, "b.csv") == [] and not (dst / "inbox" / "b.csv").exists()
        assert orbit.source("inbox-watch").counters.ingested == 1

        # Resumed: the watch starts again and its catch-up scan finds the file.
        orbit.resume_source("inbox-watch")
        arrived("inbox", "b.csv")
        resumed = wait_for_state(orbit, "inbox-watch", "running")
        assert resumed.owner_node == NODE and resumed.enabled
        (event,) = events_of(orbit, "b.csv")
        assert event.source_name == "inbox-watch"
        wait_until(lambda: orbit.source("inbox-watch").counters.ingested == 2, TIMEOUT, "the counters to sum both runs")

        # Deleted: gone from the list, and its folder is watched no more.
        orbit.delete_source("inbox-watch")
        assert [s.name for s in orbit.sources()] == ["side-watch"]
        with pytest.raises(fo.NotFoundError):
            orbit.source("inbox-watch")
        with pytest.raises(fo.NotFoundError):
            orbit.pause_source("inbox-watch")
        # The runner stops a deleted source at its next check, before it renews the side
        # watch's lease: the second renewal from now comes from a check that began after
        # the delete.
        for _ in range(2):
            renewed = orbit.source("side-watch").lease_until
            wait_until(lambda: orbit.source("side-watch").lease_until != renewed, TIMEOUT, "the runner's next check")
        (inbox / "c.csv").write_bytes(b"after delete\n")
        (side / "clock-2.csv").write_bytes(b"tock\n")
        arrived("side", "clock-2.csv")
        wait_until(lambda: bool(events_of(orbit, "clock-2.csv")), TIMEOUT, "the running watch's event")
        assert events_of(orbit, "c.csv") == [] and not (dst / "inbox" / "c.csv").exists()

    actions = [record.action for record in orbit.audit_log(1000) if record.subject == "source/inbox-watch"]
    assert {"source.paused", "source.resumed"} <= set(actions), actions


@pytest.mark.asyncio
async def test_the_async_orbit_manages_sources_too(store: str, tmp_path: pathlib.Path) -> None:
    async with await fo.AsyncOrbit.open(store, master_key=MASTER_KEY, node="py-node-b") as aorbit:
        await aorbit.add_endpoint(fo.Local("p", root=tmp_path))
        await aorbit.put_source("poll", fo.RemotePoll("p", interval=0.5, ignore=["*.lock"]), enabled=False)
        (status,) = await aorbit.sources()
        assert (status.kind, status.state, status.spec) == (
            "remote_poll",
            "paused",
            {"endpoint": "p", "path": "", "interval_ms": 500, "ignore": ["*.lock"]},
        )
        await aorbit.resume_source("poll")
        assert (await aorbit.source("poll")).state == "starting"
        async with aorbit.run_sources(lease=2.0, check_every=0.05):
            deadline = time.monotonic() + TIMEOUT
            while (await aorbit.source("poll")).owner_node != "py-node-b":
                assert time.monotonic() < deadline, "the poll was not leased"
                await asyncio.sleep(0.05)
        await aorbit.delete_source("poll")
        assert await aorbit.sources() == []


def test_bad_sources_are_refused_naming_the_field(orbit: fo.Orbit, queue: Queue, tmp_path: pathlib.Path) -> None:
    (tmp_path / "present").mkdir()
    orbit.add_endpoint(s3in(queue.bucket))
    orbit.add_endpoint(fo.Local("inbox", root=tmp_path / "present"))
    orbit.add_endpoint(fo.Local("gone", root=tmp_path / "absent"))
    canary = sqs_source(queue.url, secret_access_key=CANARY)

    def refused(field: str, name: str, spec: fo.SourceSpec, **placement: object) -> fo.ConfigError:
        with pytest.raises(fo.ConfigError) as caught:
            orbit.put_source(name, spec, **placement)  # type: ignore[arg-type]
        assert caught.value.field == field, caught.value
        assert CANARY not in str(caught.value) and CANARY not in repr(caught.value)
        return caught.value

    # What only the store knows: the endpoint, its type, the folder on this node.
    assert "nope" in str(refused("spec.endpoint", "s", sqs_source(queue.url, endpoint="nope", secret_access_key=CANARY)))
    refused("spec.endpoint", "s", fo.LocalWatch("nope"))
    assert "not an S3 endpoint" in str(refused("spec.endpoint", "s", sqs_source(queue.url, endpoint="inbox")))
    refused("spec.endpoint", "s", fo.LocalWatch("s3in"))
    assert "not a directory" in str(refused("spec.sub_path", "w", fo.LocalWatch("inbox", sub_path="missing")))
    refused("spec.endpoint", "w", fo.LocalWatch("gone"))
    refused("name", "a/b", fo.LocalWatch("inbox"))
    refused("placement.node", "w", fo.LocalWatch("inbox"), node="")
    refused("placement.labels.site", "w", fo.LocalWatch("inbox"), labels={"site": "a b"})

    # A bad queue URL is refused when the spec is made; a spec changed after that (past
    # the frozen dataclass) is refused again by the core's one parser.
    with pytest.raises(fo.ConfigError) as made:
        sqs_source("not a url", secret_access_key=CANARY)
    assert made.value.field == "queue_url" and CANARY not in str(made.value)
    object.__setattr__(canary, "queue_url", "not a url")
    refused("spec.queue_url", "s", canary)
    with pytest.raises(fo.ConfigError) as made:
        fo.RemotePoll("inbox", "../up")
    assert made.value.field == "path"
    with pytest.raises(fo.ConfigError) as made:
        fo.LocalWatch("inbox", rescan_interval=0.01)
    assert made.value.field == "rescan_interval_ms"

    assert orbit.sources() == []
    # A folder only another node sees is that node's to check.
    orbit.put_source("elsewhere", fo.LocalWatch("inbox", sub_path="missing"), node="py-node-z")
    assert [(s.name, s.placement) for s in orbit.sources()] == [("elsewhere", {"node": "py-node-z"})]

    with pytest.raises(fo.ConfigError) as short:
        orbit.run_sources(lease=1.0)
    assert short.value.field == "lease"
    with pytest.raises(fo.ConfigError) as bad_node:
        fo.Orbit(tmp_path / "other.db", master_key=MASTER_KEY, node="bad name")
    assert bad_node.value.field == "name", bad_node.value


def test_the_worker_service_runs_the_watch_placed_on_its_node(store: str, tmp_path: pathlib.Path) -> None:
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    out.mkdir()
    with fo.Orbit(store, master_key=MASTER_KEY, node="elsewhere") as orbit:
        orbit.add_endpoint(fo.Local("inbox", root=inbox))
        orbit.add_endpoint(fo.Local("out", root=out))
        orbit.add_template(fo.Template("inbox-to-out", fo.TransferSpec("inbox", "out", destination_path="{relpath}")))
        orbit.put_source("host-b-inbox", fo.LocalWatch("inbox", stable_for=0), node="host-b")
        with worker_service("--store", store, "--node", "host-b", "--label", "site=b") as service:
            wait_until(
                lambda: orbit.source("host-b-inbox").state == "running",
                timeout=TIMEOUT,
                what="the watch running on host-b",
            )
            assert orbit.source("host-b-inbox").owner_node == "host-b"
            (inbox / "from-b.txt").write_bytes(b"seen on host b")
            wait_until(lambda: (out / "from-b.txt").exists(), timeout=TIMEOUT, what="the file at the destination")
        assert service.returncode == 0, service.errors
        assert "with the sources this node may run" in service.printed, service.printed
        # Stopped: its sources are released, and this process (elsewhere) may not run them.
        assert orbit.source("host-b-inbox").owner_node is None
    assert (out / "from-b.txt").read_bytes() == b"seen on host b"
