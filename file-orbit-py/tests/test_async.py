"""The asyncio API against the real test servers: the twin of test_sync.py. Handles are
awaited (``await transfer``, ``await job``), progress callbacks run on the event loop's
thread, and the loop stays free while File Orbit works.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from conftest import MASTER_KEY, moto, read_tree, sftp, sftp_dir, test_tree, unique, write_tree

import file_orbit as fo

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def aorbit(store: str) -> AsyncIterator[fo.AsyncOrbit]:
    """An asyncio Orbit on a fresh store with short timings, closed after the test."""
    async with await fo.AsyncOrbit.open(store, master_key=MASTER_KEY, lease=3.0, poll_interval=0.02) as aorbit:
        yield aorbit


async def test_copy_local_to_sftp_to_s3_reports_progress_on_the_loop_thread(aorbit: fo.AsyncOrbit, local_dirs) -> None:
    source, back = local_dirs("source"), local_dirs("back")
    tree = test_tree()
    write_tree(source, tree)
    root = unique("sftp")
    await aorbit.add_endpoint(fo.Local("src", root=source))
    await aorbit.add_endpoint(sftp("partner", root))
    await aorbit.add_endpoint(moto("archive", unique("s3")))
    await aorbit.add_endpoint(fo.Local("back", root=back))
    loop_thread = threading.get_ident()
    threads: set[int] = set()
    seen: list[fo.Progress] = []

    def on_progress(progress: fo.Progress) -> None:
        threads.add(threading.get_ident())
        seen.append(progress)

    transfer = await aorbit.copy("src", "partner", destination_path="inbox")
    done = await transfer.wait_async(progress=on_progress)
    total = sum(len(body) for body in tree.values())
    assert done.bytes == total and seen and seen[-1].bytes == total
    assert threads == {loop_thread}
    assert read_tree(sftp_dir(root) / "inbox") == tree

    await (await aorbit.copy("partner", "archive", source_path="inbox", destination_path="kept", verify=True))
    await (await aorbit.copy("archive", "back", source_path="kept", destination_path="got"))
    assert read_tree(back / "got") == tree


async def test_the_event_loop_stays_free_during_a_transfer(aorbit: fo.AsyncOrbit, local_dirs) -> None:
    source = local_dirs("source")
    write_tree(source, test_tree())
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.001)

    task = asyncio.create_task(ticker())
    await (await aorbit.copy(fo.Local("src", root=source), sftp("partner", unique("sftp")), destination_path="in"))
    task.cancel()
    assert ticks > 5, "the loop did not run while the transfer was awaited"


async def test_filters_choose_the_files_of_a_tree(aorbit: fo.AsyncOrbit, local_dirs) -> None:
    source = local_dirs("source")
    write_tree(source, {"a.csv": b"a" * 50, "b.txt": b"b", "old/c.csv": b"c" * 50})
    root = unique("s3")
    s3 = moto("archive", root)
    filters = fo.Filters(include=["*.csv"], exclude=["old/**"])
    await (await aorbit.copy(fo.Local("src", root=source), s3, destination_path="csv", filters=filters))
    back = local_dirs("back")
    await (await aorbit.copy(s3, fo.Local("back", root=back), source_path="csv", destination_path="got"))
    assert read_tree(back / "got") == {"a.csv": b"a" * 50}


async def test_a_template_fires_when_a_local_watch_sees_a_new_file(aorbit: fo.AsyncOrbit, local_dirs) -> None:
    inbox = local_dirs("inbox")
    root = unique("sftp")
    await aorbit.add_endpoint(fo.Local("inbox", root=inbox))
    await aorbit.add_endpoint(sftp("partner", root))
    template = fo.Template(
        "to-partner", fo.TransferSpec("inbox", "partner", destination_path="in/{stem}.{ext}"), path_glob="*.xml"
    )
    await aorbit.add_template(template)
    async with aorbit.start_workers(2), await aorbit.watch_local("inbox", stable_for=0):
        (inbox / "order.xml").write_bytes(b"<order/>")
        for _ in range(600):
            jobs = await aorbit.jobs()
            if jobs and jobs[0].done:
                break
            await asyncio.sleep(0.05)
        (job,) = await aorbit.jobs()
        info = await fo.Job(aorbit, job.id)
    assert info.state == "succeeded" and info.template == "to-partner"
    assert (sftp_dir(root) / "in" / "order.xml").read_bytes() == b"<order/>"


async def test_a_manual_event_and_its_replay(aorbit: fo.AsyncOrbit, local_dirs) -> None:
    inbox, out = local_dirs("inbox"), local_dirs("out")
    (inbox / "x.csv").write_bytes(b"x")
    await aorbit.add_endpoint(fo.Local("inbox", root=inbox))
    await aorbit.add_endpoint(fo.Local("out", root=out))
    await aorbit.add_template(fo.Template("t", fo.TransferSpec("inbox", "out", destination_path="{filename}")))
    event = await aorbit.ingest(endpoint="inbox", path="x.csv", modified=dt.datetime.now(dt.timezone.utc))
    async with aorbit.start_workers(1):
        (first,) = [fo.Job(aorbit, job_id) for job_id in event.job_ids]
        assert (await first).state == "succeeded"
        (replayed,) = await aorbit.replay_event(event.id)
        assert replayed.id != first.id and (await replayed).state == "succeeded"
    assert (out / "x.csv").read_bytes() == b"x"
    assert [e.id for e in await aorbit.events()] == [event.id]


async def test_a_wrong_password_raises_authentication_error_without_the_password(
    aorbit: fo.AsyncOrbit, local_dirs
) -> None:
    source = local_dirs("source")
    (source / "f.txt").write_bytes(b"f")
    wrong = "An0ther-Wr0ng-Pw-4410"
    with pytest.raises(fo.AuthenticationError) as caught:
        await (await aorbit.copy(fo.Local("src", root=source), sftp("partner", unique("sftp"), password=wrong), destination_path="in"))
    assert wrong not in str(caught.value) and wrong not in repr(caught.value)
    diagnosis = await aorbit.test_endpoint(sftp("partner", "x", password=wrong))
    assert diagnosis.problem == "authentication" and wrong not in diagnosis.message


async def _first_bytes(transfer: fo.Transfer, timeout: float = 30.0) -> None:
    """Returns once ``transfer`` has moved bytes, failing after ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while transfer.progress.bytes == 0:
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail("timed out waiting for the first bytes")
        await asyncio.sleep(0.02)


async def test_cancel_stops_a_running_transfer(aorbit: fo.AsyncOrbit, local_dirs) -> None:
    source = local_dirs("source")
    with open(source / "huge.bin", "wb") as huge:
        huge.truncate(4 * 1024**3)
    transfer = await aorbit.copy(fo.Local("src", root=source), sftp("partner", unique("sftp")), destination_path="big")
    waiter = asyncio.ensure_future(transfer.wait_async())
    await _first_bytes(transfer)
    await transfer.cancel_async()
    with pytest.raises(fo.CancelledError):
        await waiter
    slow = await aorbit.copy(fo.Local("src", root=source), sftp("p2", unique("sftp")), destination_path="big")
    with pytest.raises(TimeoutError):
        await slow.wait_async(timeout=0.2)
    await _first_bytes(slow)
    await slow.cancel_async()
    with pytest.raises(fo.CancelledError):
        await slow.wait_async(timeout=60)


async def test_leaving_async_with_cancels_the_orbits_transfers(store: str, local_dirs) -> None:
    source = local_dirs("source")
    with open(source / "huge.bin", "wb") as huge:
        huge.truncate(4 * 1024**3)
    async with await fo.AsyncOrbit.open(store, master_key=MASTER_KEY) as aorbit:
        transfer = await aorbit.copy(fo.Local("src", root=source), sftp("partner", unique("sftp")), destination_path="big")
        await _first_bytes(transfer)
    assert aorbit.closed and transfer.done
    with pytest.raises(fo.CancelledError):
        await transfer.wait_async(timeout=1)
    with pytest.raises(fo.ConfigError, match="closed"):
        await aorbit.jobs()


async def test_many_tasks_at_once(aorbit: fo.AsyncOrbit, local_dirs) -> None:
    source, out, queued = local_dirs("source"), local_dirs("out"), local_dirs("queued")
    count = 64
    write_tree(source, {f"f{i}.txt": f"file {i}\n".encode() for i in range(count)})
    await aorbit.add_endpoint(fo.Local("src", root=source), max_concurrent=64)
    await aorbit.add_endpoint(fo.Local("out", root=out), max_concurrent=64)
    await aorbit.add_endpoint(fo.Local("queued", root=queued), max_concurrent=64)

    async def copy(i: int) -> fo.Progress:
        name = f"f{i}.txt"
        return await (await aorbit.copy("src", "out", source_path=name, destination_path=name, scope="file"))

    async def submit(i: int) -> fo.JobInfo:
        name = f"f{i}.txt"
        spec = fo.TransferSpec("src", "queued", source_path=name, destination_path=name, scope="file")
        return await (await aorbit.submit(spec))

    async with aorbit.start_workers(4):
        copied = await asyncio.gather(*(copy(i) for i in range(count)))
        finished = await asyncio.gather(*(submit(i) for i in range(count)))
    assert all(p.files == 1 for p in copied)
    assert all(job.state == "succeeded" for job in finished)
    assert read_tree(out) == read_tree(source) == read_tree(queued)


async def test_the_blocking_and_async_views_share_one_engine(aorbit: fo.AsyncOrbit, local_dirs) -> None:
    folder = local_dirs("x")
    await aorbit.add_endpoint(fo.Local("x", root=folder))
    assert [e.name for e in aorbit.blocking.endpoints()] == ["x"]
    assert [e.name for e in await aorbit.blocking.aio.endpoints()] == ["x"]
    with pytest.raises(fo.NotFoundError):
        await aorbit.job(424242)
