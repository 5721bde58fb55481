"""The blocking API against the real test servers (sshd, moto S3): transfers with
progress, filters, templates fired by a local watch and by manual events, durable jobs and
chains, errors without secrets, cancellation, timeouts, and many threads at once.
Its asyncio twin is test_async.py.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest
from conftest import (
    MASTER_KEY,
    cancel_once_moving,
    env,
    moto,
    read_tree,
    sftp,
    sftp_dir,
    test_tree,
    unique,
    wait_until,
    worker_service,
    write_tree,
)

import file_orbit as fo


def test_librclone_comes_from_the_wheel_unless_the_env_var_names_one() -> None:
    info = fo.rclone_info()
    expected = os.environ.get("FILE_ORBIT_LIBRCLONE") or os.path.join(os.path.dirname(fo.__file__), "librclone.so")
    assert info.library_path == expected
    assert info.version == fo.PINNED_RCLONE_VERSION


def test_the_env_var_overrides_the_packaged_librclone(tmp_path: pathlib.Path) -> None:
    probe = "import file_orbit as fo; print(fo.rclone_info().library_path)"
    packaged = os.path.join(os.path.dirname(fo.__file__), "librclone.so")
    elsewhere = tmp_path / "librclone.so"
    shutil.copy(packaged, elsewhere)
    run = subprocess.run(
        [sys.executable, "-c", probe], env={**os.environ, "FILE_ORBIT_LIBRCLONE": str(elsewhere)},
        capture_output=True, text=True, timeout=60,
    )
    assert run.returncode == 0 and run.stdout.strip() == str(elsewhere), run.stderr
    missing = "/nonexistent/dir/librclone.so"
    run = subprocess.run(
        [sys.executable, "-c", probe], env={**os.environ, "FILE_ORBIT_LIBRCLONE": missing},
        capture_output=True, text=True, timeout=60,
    )
    assert run.returncode != 0 and "LibraryError" in run.stderr and missing in run.stderr, run.stderr


def test_copy_local_to_sftp_to_s3_reports_progress_and_keeps_every_byte(orbit: fo.Orbit, local_dirs) -> None:
    source, back = local_dirs("source"), local_dirs("back")
    tree = test_tree()
    write_tree(source, tree)
    root = unique("sftp")
    orbit.add_endpoint(fo.Local("src", root=source))
    orbit.add_endpoint(sftp("partner", root))
    orbit.add_endpoint(moto("archive", unique("s3")))
    orbit.add_endpoint(fo.Local("back", root=back))

    seen: list[fo.Progress] = []
    done = orbit.copy("src", "partner", destination_path="inbox").wait(progress=seen.append)
    assert read_tree(sftp_dir(root) / "inbox") == tree
    total = sum(len(body) for body in tree.values())
    assert done.bytes == total and done.files == len(tree)
    assert seen, "the progress callback was never called"
    assert [p.bytes for p in seen] == sorted(p.bytes for p in seen), "bytes went backwards"
    assert seen[-1].bytes == total

    seen_s3: list[fo.Progress] = []
    transfer = orbit.copy("partner", "archive", source_path="inbox", destination_path="{year}", verify=True)
    assert transfer.destination_path == str(dt.datetime.now(dt.timezone.utc).year)
    transfer.wait(progress=seen_s3.append)
    assert seen_s3 and seen_s3[-1].bytes == total

    orbit.copy("archive", "back", source_path=transfer.destination_path, destination_path="got").wait()
    assert read_tree(back / "got") == tree


def test_filters_choose_the_files_of_a_tree(orbit: fo.Orbit, local_dirs) -> None:
    source = local_dirs("source")
    write_tree(
        source,
        {
            "a.csv": b"1,2\n" * 100,
            "tiny.csv": b"1",
            "b.txt": b"text\n",
            "logs/c.csv": b"3,4\n" * 100,
            "logs/secret.csv": b"5,6\n" * 100,
        },
    )
    root = unique("sftp")
    filters = fo.Filters(include=["*.csv", "logs/**"], exclude=["logs/secret*"], min_size=10)
    orbit.copy(fo.Local("src", root=source), sftp("partner", root), destination_path="in", filters=filters).wait()
    assert sorted(read_tree(sftp_dir(root) / "in")) == ["a.csv", "logs/c.csv"]


def test_a_template_fires_when_a_local_watch_sees_a_new_file(orbit: fo.Orbit, local_dirs) -> None:
    # file_orbit_core::events::local exists: this is the real watch, not a manual event.
    inbox, archive = local_dirs("inbox"), local_dirs("archive")
    orbit.add_endpoint(fo.Local("inbox", root=inbox))
    orbit.add_endpoint(fo.Local("archive", root=archive))
    spec = fo.TransferSpec("inbox", "archive", destination_path="{year}/{filename}")
    orbit.add_template(fo.Template("csv-to-archive", spec, path_glob="**/*.csv"))
    assert [t.name for t in orbit.templates()] == ["csv-to-archive"]

    with orbit.start_workers(2), orbit.watch_local("inbox", stable_for=0) as watch:
        (inbox / "ignored.txt").write_bytes(b"not a csv")
        (inbox / "report.csv").write_bytes(b"a,b\n1,2\n")
        year = str(dt.datetime.now(dt.timezone.utc).year)
        wait_until(lambda: (archive / year / "report.csv").exists(), what="the watched file to arrive")
        stats = watch.stats()
        assert stats is not None and stats.stored >= 1 and stats.watching
    assert (archive / year / "report.csv").read_bytes() == b"a,b\n1,2\n"
    assert not (archive / year / "ignored.txt").exists()
    watched = [e for e in orbit.events() if e.source == "local-watch" and e.matched_templates]
    assert [e.payload["file"]["path"] for e in watched] == ["report.csv"]
    (job,) = orbit.jobs("succeeded")
    assert job.template == "csv-to-archive"


def test_a_manual_event_makes_a_job_once_per_dedup_key(orbit: fo.Orbit, local_dirs) -> None:
    inbox, out = local_dirs("inbox"), local_dirs("out")
    (inbox / "data.csv").write_bytes(b"x,y\n")
    orbit.add_endpoint(fo.Local("inbox", root=inbox))
    orbit.add_endpoint(fo.Local("out", root=out))
    orbit.add_template(
        fo.Template("t", fo.TransferSpec("inbox", "out", destination_path="got/{filename}"), path_glob="*.csv")
    )
    event = orbit.ingest(endpoint="inbox", path="data.csv", size=4, dedup_key="k1", payload={"by": "test"})
    assert not event.duplicate and event.matched_templates == ("t",) and len(event.job_ids) == 1
    again = orbit.ingest(endpoint="inbox", path="data.csv", size=4, dedup_key="k1")
    assert again.duplicate and again.id == event.id
    with orbit.start_workers(1):
        info = fo.Job(orbit, event.job_ids[0]).wait(timeout=30)
    assert info.state == "succeeded" and info.files == 1
    assert (out / "got" / "data.csv").read_bytes() == b"x,y\n"
    assert orbit.event(event.id).state == "processed"
    assert orbit.verify_audit_log() is None


def test_a_template_matches_on_content_type_and_metadata(orbit: fo.Orbit, local_dirs) -> None:
    inbox, out = local_dirs("inbox"), local_dirs("out")
    (inbox / "x.json").write_bytes(b"{}")
    (inbox / "y.pdf").write_bytes(b"%PDF")
    orbit.add_endpoint(fo.Local("inbox", root=inbox))
    orbit.add_endpoint(fo.Local("out", root=out))
    spec = fo.TransferSpec("inbox", "out", destination_path="{filename}")
    orbit.add_template(fo.Template("json", spec, content_type="application/json"))
    orbit.add_template(fo.Template("finance", spec, metadata={"dept": "fin*"}))
    # Read from the endpoint (a local file's type comes from its extension).
    assert orbit.ingest(endpoint="inbox", path="x.json").matched_templates == ("json",)
    assert orbit.ingest(endpoint="inbox", path="y.pdf").matched_templates == ()
    # Said by the caller: used as it is.
    said = orbit.ingest(endpoint="inbox", path="y.pdf", metadata={"Dept": "finance"})
    assert said.matched_templates == ("finance",)
    assert [t.metadata for t in orbit.templates() if t.name == "finance"] == [{"dept": "fin*"}]
    with pytest.raises(fo.ConfigError) as bad:
        orbit.add_template(fo.Template("bad", spec, content_type="text/["))
    assert bad.value.field == "matcher.content_type"


def test_a_durable_chain_reports_its_states_and_runs_every_hop(orbit: fo.Orbit, local_dirs) -> None:
    source, back = local_dirs("source"), local_dirs("back")
    write_tree(source, {"one.txt": b"1\n", "two/two.txt": b"2\n"})
    orbit.add_endpoint(fo.Local("src", root=source))
    orbit.add_endpoint(sftp("partner", unique("sftp")))
    orbit.add_endpoint(moto("archive", unique("s3")))
    orbit.add_endpoint(fo.Local("back", root=back))
    first = orbit.submit(
        fo.TransferSpec("src", "partner", destination_path="in"),
        next_hops=[
            fo.TransferSpec("partner", "archive", source_path="in", destination_path="kept"),
            fo.TransferSpec("archive", "back", source_path="kept", destination_path="got"),
        ],
        idempotency_key=unique("key"),
    )
    states: list[str] = []
    with orbit.start_workers(2):
        info = first.wait(progress=lambda job: states.append(job.state), timeout=60)
        assert info.state == "succeeded" and info.files == 2
        wait_until(lambda: len(orbit.chain(first.id)) == 3 and orbit.chain(first.id)[-1].done, what="the chain")
    assert states[0] in ("queued", "leased") and states[-1] == "succeeded"
    assert [job.state for job in orbit.chain(first.id)] == ["succeeded"] * 3
    assert read_tree(back / "got") == {"one.txt": b"1\n", "two/two.txt": b"2\n"}


def test_a_wrong_password_raises_authentication_error_without_the_password(orbit: fo.Orbit, local_dirs) -> None:
    source = local_dirs("source")
    (source / "f.txt").write_bytes(b"f")
    wrong = "Wr0ng-Passw0rd-7781"
    bad = sftp("partner", unique("sftp"), password=wrong)
    assert wrong not in repr(bad)

    with pytest.raises(fo.AuthenticationError) as caught:
        orbit.copy(fo.Local("src", root=source), bad, destination_path="in").wait(timeout=60)
    error = caught.value
    assert isinstance(error, fo.FileOrbitError) and error.kind == "Authentication"
    for text in (str(error), repr(error), error.message, error.context):
        assert wrong not in text

    diagnosis = orbit.test_endpoint(bad)
    assert diagnosis.problem == "authentication" and not diagnosis.ok
    assert wrong not in diagnosis.message

    orbit.add_endpoint(fo.Local("src", root=source))
    orbit.add_endpoint(bad)
    assert wrong not in str(orbit.endpoints())
    job = orbit.submit(fo.TransferSpec("src", "partner", destination_path="in"), retry=fo.RetryPolicy(max_attempts=2, base_delay=0.1))
    with orbit.start_workers(1), pytest.raises(fo.AuthenticationError) as dead:
        job.wait(timeout=60)
    assert wrong not in str(dead.value)
    info = job.info()
    assert info.state == "dead" and info.attempts == 1, "authentication failures are not retried"
    assert wrong not in (info.last_error or "")


def test_errors_map_to_classes_and_builtin_bases(orbit: fo.Orbit) -> None:
    with pytest.raises(fo.ConfigError, match="exactly one") as config:
        fo.Sftp("x", host="h", user="u")
    assert isinstance(config.value, ValueError)
    with pytest.raises(TypeError, match="password must be a str") as typed:
        fo.Sftp("x", host="h", user="u", password=918273645)  # type: ignore[arg-type]
    assert "918273645" not in str(typed.value)
    with pytest.raises(fo.NotFoundError) as missing:
        orbit.job(987654)
    assert isinstance(missing.value, FileNotFoundError)
    with pytest.raises(fo.NotFoundError):
        orbit.copy("nowhere", "nowhere", destination_path="x")
    with pytest.raises(fo.NotFoundError):
        orbit.retry(987654)


def test_a_bad_store_url_is_a_config_error() -> None:
    with pytest.raises(fo.ConfigError, match="sqlite:// or postgres://"):
        fo.Orbit("mysql://example/db", master_key=MASTER_KEY)


def _sparse_source(local_dirs) -> pathlib.Path:
    source = local_dirs("source")
    with open(source / "huge.bin", "wb") as huge:
        huge.truncate(4 * 1024**3)
    return source


def test_cancel_stops_a_running_transfer(orbit: fo.Orbit, local_dirs) -> None:
    source = _sparse_source(local_dirs)
    root = unique("sftp")
    transfer = orbit.copy(fo.Local("src", root=source), sftp("partner", root), destination_path="big")
    started = threading.Event()

    def on_progress(progress: fo.Progress) -> None:
        if progress.bytes > 0 and not started.is_set():
            started.set()
            transfer.cancel()

    with pytest.raises(fo.CancelledError):
        transfer.wait(progress=on_progress, timeout=60)
    assert started.is_set() and transfer.done
    landed = sftp_dir(root) / "big" / "huge.bin"
    assert not landed.exists() or landed.stat().st_size < 4 * 1024**3


def test_cancel_before_the_first_byte_still_raises_cancelled(orbit: fo.Orbit, local_dirs) -> None:
    source = _sparse_source(local_dirs)
    transfer = orbit.copy(fo.Local("src", root=source), sftp("partner", unique("sftp")), destination_path="big")
    transfer.cancel()
    with pytest.raises(fo.CancelledError):
        transfer.wait(timeout=60)


def test_a_durable_job_is_cancelled_through_its_worker(orbit: fo.Orbit, local_dirs) -> None:
    source = _sparse_source(local_dirs)
    orbit.add_endpoint(fo.Local("src", root=source))
    orbit.add_endpoint(sftp("partner", unique("sftp")))
    job = orbit.submit(fo.TransferSpec("src", "partner", destination_path="big"))
    with orbit.start_workers(1):
        wait_until(lambda: job.info().state == "leased", what="the job to start")
        assert job.cancel() in ("leased", "cancelled")
        with pytest.raises(fo.CancelledError):
            job.wait(timeout=60)
    assert job.info().state == "cancelled"


def test_wait_times_out_and_the_transfer_goes_on(orbit: fo.Orbit, local_dirs) -> None:
    source = _sparse_source(local_dirs)
    transfer = orbit.copy(fo.Local("src", root=source), sftp("partner", unique("sftp")), destination_path="big")
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        transfer.wait(timeout=0.3)
    assert time.monotonic() - started < 5
    assert not transfer.done
    cancel_once_moving(transfer)
    with pytest.raises(fo.CancelledError):
        transfer.wait(timeout=60)


def test_ctrl_c_interrupts_a_wait_and_the_transfer_can_still_be_cancelled(orbit: fo.Orbit, local_dirs) -> None:
    source = _sparse_source(local_dirs)
    transfer = orbit.copy(fo.Local("src", root=source), sftp("partner", unique("sftp")), destination_path="big")
    threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()
    with pytest.raises(KeyboardInterrupt):
        transfer.wait(timeout=60)
    cancel_once_moving(transfer)
    with pytest.raises(fo.CancelledError):
        transfer.wait(timeout=60)


def test_the_worker_service_runs_queued_jobs_and_stops_on_sigterm(store: str, local_dirs) -> None:
    source, out = local_dirs("source"), local_dirs("out")
    write_tree(source, {"a.txt": b"by the worker service\n"})
    with fo.Orbit(store, master_key=MASTER_KEY) as orbit:
        orbit.add_endpoint(fo.Local("src", root=source))
        orbit.add_endpoint(fo.Local("out", root=out))
        job = orbit.submit(fo.TransferSpec("src", "out", source_path="a.txt", scope="file", destination_path="{filename}"))
        with worker_service("--store", store, "--workers", "2", "--grace", "5") as service:
            assert job.wait(timeout=60).state == "succeeded"
    assert service.returncode == 0, service.errors
    assert "2 workers on" in service.printed and "stopped" in service.printed, service.printed
    assert MASTER_KEY not in service.printed + service.errors
    assert read_tree(out) == {"a.txt": b"by the worker service\n"}


def test_the_worker_service_refuses_bad_options_by_name_and_hides_the_store_password() -> None:
    for option, value in (("--workers", "0"), ("--grace", "-1"), ("--workers", "many")):
        refused = subprocess.run(
            [sys.executable, "-m", "file_orbit", "worker", option, value],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert refused.returncode == 2 and option in refused.stderr, refused.stderr
    from file_orbit.__main__ import _shown

    assert _shown("postgres://fo:s3cret@127.0.0.1:5433/db") == "postgres://fo:***@127.0.0.1:5433/db"


def test_close_stops_what_the_orbit_started_and_refuses_later_calls(store: str, local_dirs) -> None:
    source = _sparse_source(local_dirs)
    orbit = fo.Orbit(store, master_key=MASTER_KEY, lease=3.0, poll_interval=0.02)
    direct = orbit.copy(fo.Local("src", root=source), sftp("partner", unique("sftp")), destination_path="big")
    orbit.add_endpoint(fo.Local("src", root=source))
    orbit.add_endpoint(sftp("queued", unique("sftp")))
    job = orbit.submit(fo.TransferSpec("src", "queued", destination_path="big"))
    workers = orbit.start_workers(1)
    wait_until(lambda: direct.progress.bytes > 0, what="the direct transfer to move")
    wait_until(lambda: job.info().state == "leased", what="the worker to take the job")

    orbit.close()
    assert orbit.closed and direct.done and not workers.running
    with pytest.raises(fo.CancelledError):
        direct.wait(timeout=1)
    with pytest.raises(fo.ConfigError, match="closed") as refused:
        orbit.jobs()
    assert isinstance(refused.value, ValueError)
    with pytest.raises(ValueError, match="closed"):
        orbit.copy(fo.Local("src", root=source), fo.Local("dst", root=local_dirs("dst")), destination_path="x")
    with pytest.raises(ValueError, match="closed"):
        orbit.start_workers(1)
    orbit.close()  # again: nothing to do

    # The worker's running job went back to the queue for the next worker.
    with fo.Orbit(store, master_key=MASTER_KEY) as reopened:
        info = reopened.job(job.id)
        assert info.state == "queued" and info.lease_owner is None, info
    assert reopened.closed


def test_the_gil_is_released_while_waiting(orbit: fo.Orbit, local_dirs) -> None:
    source = _sparse_source(local_dirs)
    transfer = orbit.copy(fo.Local("src", root=source), sftp("partner", unique("sftp")), destination_path="big")
    outcome: list[BaseException] = []

    def wait() -> None:
        try:
            transfer.wait(timeout=60)
        except BaseException as error:  # noqa: BLE001 - checked below
            outcome.append(error)

    waiting = threading.Thread(target=wait)
    waiting.start()
    spins, until = 0, time.monotonic() + 0.5
    while time.monotonic() < until:
        spins += 1
    cancel_once_moving(transfer)
    waiting.join(60)
    assert not waiting.is_alive() and len(outcome) == 1 and isinstance(outcome[0], fo.CancelledError), outcome
    assert spins > 100_000, f"the main thread ran only {spins} loops while another thread waited"


def test_many_threads_copy_and_submit_at_once(orbit: fo.Orbit, local_dirs) -> None:
    source, out, queued = local_dirs("source"), local_dirs("out"), local_dirs("queued")
    threads, per_thread = 16, 8
    write_tree(source, {f"f{i}.txt": f"file {i}\n".encode() for i in range(threads * per_thread)})
    orbit.add_endpoint(fo.Local("src", root=source), max_concurrent=64)
    orbit.add_endpoint(fo.Local("out", root=out), max_concurrent=64)
    orbit.add_endpoint(fo.Local("queued", root=queued), max_concurrent=64)
    errors: list[BaseException] = []
    jobs: list[fo.Job] = []
    lock = threading.Lock()
    barrier = threading.Barrier(threads)

    def work(t: int) -> None:
        try:
            barrier.wait()
            for i in range(t * per_thread, (t + 1) * per_thread):
                name = f"f{i}.txt"
                orbit.copy("src", "out", source_path=name, destination_path=name, scope="file").wait()
                job = orbit.submit(
                    fo.TransferSpec("src", "queued", source_path=name, destination_path=name, scope="file")
                )
                with lock:
                    jobs.append(job)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    with orbit.start_workers(4):
        pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join(120)
        assert not errors, errors
        assert len({job.id for job in jobs}) == threads * per_thread
        for job in jobs:
            assert job.wait(timeout=120).state == "succeeded"
    assert read_tree(out) == read_tree(source)
    assert read_tree(queued) == read_tree(source)


def _copy_in_a_spawned_child(source: str, destination: str) -> None:
    import file_orbit

    orbit = file_orbit.Orbit(os.path.join(destination, "..", "child.db"), master_key=MASTER_KEY)
    src = file_orbit.Local("src", root=source)
    dst = file_orbit.Local("dst", root=destination)
    orbit.copy(src, dst, destination_path="got").wait()


def test_a_spawned_child_process_can_use_file_orbit_too(orbit: fo.Orbit, local_dirs) -> None:
    fo.rclone_info()  # the parent has a Go runtime now: children must be spawned, not forked
    source, out = local_dirs("source"), local_dirs("out")
    (source / "child.txt").write_bytes(b"from a child\n")
    child = multiprocessing.get_context("spawn").Process(target=_copy_in_a_spawned_child, args=(str(source), str(out)))
    child.start()
    child.join(120)
    assert child.exitcode == 0
    assert (out / "got" / "child.txt").read_bytes() == b"from a child\n"


def test_endpoints_are_listed_with_secrets_hidden(orbit: fo.Orbit) -> None:
    orbit.add_endpoint(sftp("partner", ""), max_concurrent=2)
    orbit.add_endpoint(moto("archive", "y"))
    listed = {e.name: e for e in orbit.endpoints()}
    assert listed["partner"].kind == "sftp" and listed["partner"].max_concurrent == 2
    assert listed["partner"].config["auth"]["password"] == "***"
    assert listed["archive"].config["secret_access_key"] == "***"
    assert env("SFTP_PASSWORD") not in repr(sftp("p", "x"))
    assert orbit.test_endpoint("partner").ok
    assert orbit.test_endpoint("archive").ok


def test_endpoint_test_warns_of_a_root_the_first_transfer_creates(orbit: fo.Orbit) -> None:
    root = unique("newdir")
    diagnosis = orbit.test_endpoint(sftp("outbox", root))
    assert diagnosis.ok, diagnosis
    assert diagnosis.warning is not None and "does not exist yet" in diagnosis.warning
    assert root in diagnosis.warning
    assert not sftp_dir(root).exists(), "the probe left the root behind"
    read_only = orbit.test_endpoint(sftp("outbox", root), write_probe=False)
    assert read_only.problem == "not_found" and read_only.warning is None


def test_smb_endpoints_parse_unc_paths() -> None:
    smb = fo.Smb.from_unc("share", "//files.example.com/data/in/2026", user="DOM\\u", password="pw")
    assert (smb.host, smb.share, smb.root) == ("files.example.com", "data", "in/2026")
    assert "pw" not in repr(smb)
    with pytest.raises(fo.ConfigError, match="no share"):
        fo.Smb.from_unc("x", "//host-only", user="u", password="p")


def test_move_empties_the_source_and_sync_deletes_extras(orbit: fo.Orbit, local_dirs) -> None:
    source, mirror = local_dirs("source"), local_dirs("mirror")
    write_tree(source, {"a.txt": b"a", "d/b.txt": b"b"})
    root = unique("sftp")
    partner = sftp("partner", root)
    orbit.move(fo.Local("src", root=source), partner, destination_path="moved").wait()
    assert read_tree(source) == {}
    assert read_tree(sftp_dir(root) / "moved") == {"a.txt": b"a", "d/b.txt": b"b"}
    write_tree(mirror, {"stale.txt": b"old"})
    orbit.sync(partner, fo.Local("mirror", root=mirror.parent), source_path="moved", destination_path="mirror").wait()
    assert read_tree(mirror) == {"a.txt": b"a", "d/b.txt": b"b"}


def test_a_remote_poll_and_a_cron_schedule_fire_templates(orbit: fo.Orbit, local_dirs) -> None:
    out, scheduled = local_dirs("out"), local_dirs("scheduled")
    root = unique("sftp")
    (sftp_dir(root) / "drop").mkdir(parents=True)
    (sftp_dir(root) / "drop" / "polled.csv").write_bytes(b"p")
    orbit.add_endpoint(sftp("partner", root))
    orbit.add_endpoint(fo.Local("out", root=out))
    orbit.add_endpoint(fo.Local("scheduled", root=scheduled))
    orbit.add_template(fo.Template("polled", fo.TransferSpec("partner", "out", destination_path="{filename}")))
    every_second = fo.TransferSpec("partner", "scheduled", source_path="drop", destination_path="tick")
    orbit.add_template(fo.Template("tick", every_second, path_glob="never/*", schedule="* * * * * *"))
    (template,) = [t for t in orbit.templates() if t.name == "tick"]
    assert template.schedule == "* * * * * *" and template.spec == every_second
    with orbit.start_workers(2), orbit.poll_remote("partner", "drop", interval=0.2), orbit.start_scheduler(0.2):
        wait_until(lambda: (out / "polled.csv").exists(), what="the polled file")
        wait_until(lambda: (scheduled / "tick" / "polled.csv").exists(), what="the scheduled run")
    sources = {e.source for e in orbit.events()}
    assert {"poll", "schedule"} <= sources, sources
    actions = {record.action for record in orbit.audit_log(500)}
    assert {"endpoint.created", "template.created", "job.submitted", "job.succeeded"} <= actions
    assert orbit.verify_audit_log() is None
    assert orbit.rotate_keys() == 0


def test_a_cancelled_job_can_be_retried(orbit: fo.Orbit, local_dirs) -> None:
    source, out = local_dirs("source"), local_dirs("out")
    (source / "r.txt").write_bytes(b"r")
    orbit.add_endpoint(fo.Local("src", root=source))
    orbit.add_endpoint(fo.Local("out", root=out))
    job = orbit.submit(fo.TransferSpec("src", "out", destination_path="again"))
    assert job.cancel() == "cancelled"  # queued: cancelled at once, no worker needed
    assert [j.id for j in orbit.jobs("cancelled")] == [job.id]
    orbit.retry(job.id)
    with orbit.start_workers(1):
        assert job.wait(timeout=30).state == "succeeded"
    assert (out / "again" / "r.txt").read_bytes() == b"r"


def test_jobs_page_by_id_and_worker_processes_are_listed(orbit: fo.Orbit, local_dirs) -> None:
    source, out = local_dirs("source"), local_dirs("out")
    (source / "p.txt").write_bytes(b"p")
    orbit.add_endpoint(fo.Local("src", root=source))
    orbit.add_endpoint(fo.Local("out", root=out))
    jobs = [orbit.submit(fo.TransferSpec("src", "out", destination_path=f"d{n}")) for n in range(5)]
    ids = [job.id for job in jobs]
    first = orbit.jobs(limit=2)
    assert [j.id for j in first] == [ids[4], ids[3]]
    assert [j.id for j in orbit.jobs(limit=2, before_id=first[-1].id)] == [ids[2], ids[1]]
    with orbit.start_workers(3):
        wait_until(lambda: any(w.alive for w in orbit.workers()), what="the workers' registration")
        (node,) = [w for w in orbit.workers() if w.alive]
        assert (node.slots, node.pid, node.stopped_at) == (3, os.getpid(), None)
        for job in jobs:
            assert job.wait(timeout=30).state == "succeeded"
    stopped = [w for w in orbit.workers() if w.id == node.id]
    assert len(stopped) == 1 and not stopped[0].alive and stopped[0].stopped_at is not None


def test_a_relative_local_root_is_resolved_against_the_current_directory(
    orbit: fo.Orbit, local_dirs, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = local_dirs("here")
    (base / "in").mkdir()
    (base / "in" / "r.txt").write_bytes(b"r")
    monkeypatch.chdir(base)
    source, out = fo.Local("src", root="in"), fo.Local("out", root=pathlib.Path("out"))
    assert source.root == str(base / "in") and out.root == str(base / "out")
    orbit.copy(source, out, destination_path="").wait()
    assert (base / "out" / "r.txt").read_bytes() == b"r"


def test_limits_bound_what_a_job_may_ask_for(store: str, local_dirs) -> None:
    source, out = local_dirs("source"), local_dirs("out")
    with fo.Orbit(store, master_key=MASTER_KEY, limits={"max_parallelism": 8}) as orbit:
        orbit.add_endpoint(fo.Local("src", root=source))
        orbit.add_endpoint(fo.Local("out", root=out))
        with pytest.raises(fo.ConfigError, match=r"spec\.parallelism: 9 is above the maximum of 8") as wide:
            orbit.submit(fo.TransferSpec("src", "out", destination_path="x", parallelism=9))
        assert wide.value.field == "spec.parallelism"
        assert wide.value.message.startswith("9 is above the maximum of 8")
        with pytest.raises(fo.ConfigError, match=r"priority") as urgent:
            orbit.submit(fo.TransferSpec("src", "out", destination_path="x"), priority=2**62)
        assert urgent.value.field == "priority"
    with pytest.raises(fo.ConfigError, match="unknown field"):
        fo.Orbit(store, master_key=MASTER_KEY, limits={"max_parallelsm": 8})


def test_a_job_says_which_names_an_smb_share_renamed(orbit: fo.Orbit, local_dirs) -> None:
    source = local_dirs("source")
    write_tree(source, {"a:b.txt": b"a", "plain.txt": b"p"})
    root = unique("renamed")
    share = fo.Smb(
        "share",
        host=env("SMB_HOST"),
        port=int(env("SMB_PORT")),
        user=env("SMB_USER"),
        password=env("SMB_PASSWORD"),
        share=env("SMB_SHARE"),
        root=root,
    )
    orbit.add_endpoint(fo.Local("src", root=source))
    orbit.add_endpoint(share)
    job = orbit.submit(fo.TransferSpec("src", "share", destination_path=""))
    with orbit.start_workers(1):
        info = job.wait(timeout=60)
    assert info.state == "succeeded" and info.progress is None and info.lost_attempts == 0
    assert info.warnings == ('"a:b.txt" arrives as "a：b.txt"',)
    assert sorted(p.name for p in (pathlib.Path(env("SMB_SHARE_DIR")) / root).iterdir()) == ["a：b.txt", "plain.txt"]
