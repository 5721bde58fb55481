"""Shared by the sync and async suites: endpoints on the REAL test servers that
``scripts/test-servers.sh`` starts (their addresses and credentials come from its env
file, ``FILE_ORBIT_TEST_*``), unique names, and tree helpers.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pathlib
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

import file_orbit as fo

# A fixed test master key (32 bytes, base64): tests never touch a real key.
MASTER_KEY = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
# The moto bucket these tests use (rclone creates it on first upload).
BUCKET = "fo-py-tests"

_counter = itertools.count()


def env(name: str) -> str:
    """A test-server setting from the env file of scripts/test-servers.sh."""
    key = f"FILE_ORBIT_TEST_{name}"
    value = os.environ.get(key)
    if not value:
        pytest.fail(
            f"{key} is not set: start the servers (scripts/test-servers.sh start) and source "
            "target/test-servers/env, or run scripts/test-python.sh",
            pytrace=False,
        )
    return value


def unique(prefix: str = "py") -> str:
    """A name no other test (or earlier run) uses."""
    return f"{prefix}-{os.getpid()}-{next(_counter)}-{time.time_ns() % 10**9}"


def sftp(name: str, root: str, **overrides: object) -> fo.Sftp:
    """An SFTP endpoint on the test sshd, rooted at ``root`` below the user's home."""
    settings: dict[str, object] = {
        "host": env("SFTP_HOST"),
        "port": int(env("SFTP_PORT")),
        "user": env("SFTP_USER"),
        "password": env("SFTP_PASSWORD"),
        "known_hosts": env("SFTP_KNOWN_HOSTS"),
        "root": root,
    }
    settings.update(overrides)
    return fo.Sftp(name, **settings)  # type: ignore[arg-type]


def sftp_dir(root: str) -> pathlib.Path:
    """Where an SFTP endpoint's root lives on this machine (the server is local)."""
    return pathlib.Path(env("SFTP_HOME")) / root


def moto(name: str, prefix: str, bucket: str = BUCKET) -> fo.S3:
    """An S3 endpoint on the test moto server, under ``prefix`` of ``bucket`` (default the
    test bucket)."""
    return fo.S3(
        name,
        bucket=bucket,
        prefix=prefix,
        provider="Other",
        region=env("MOTO_REGION"),
        endpoint_url=env("MOTO_ENDPOINT"),
        access_key_id=env("MOTO_ACCESS_KEY_ID"),
        secret_access_key=env("MOTO_SECRET_ACCESS_KEY"),
        force_path_style=True,
    )


def write_tree(root: pathlib.Path, files: dict[str, bytes]) -> None:
    """Writes ``files`` (relative path → bytes) below ``root``."""
    for relative, body in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)


def read_tree(root: pathlib.Path) -> dict[str, bytes]:
    """Relative path → bytes of every file below ``root``."""
    return {
        path.relative_to(root).as_posix(): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()
    }


def test_tree() -> dict[str, bytes]:
    """Nested dirs, an empty file, names with spaces and unicode, and a 6 MiB file."""
    big = bytes((i * 2654435761 >> 24) & 0xFF for i in range(6 * 1024 * 1024))
    return {
        "top.txt": b"top level\n",
        "empty.dat": b"",
        "nested/deeper/leaf.txt": b"leaf\n",
        "with space/name with space.txt": b"spaces\n",
        "unicode \u00fc/\u00fcn\u00efc\u00f8d\u00e9 \u6587\u4ef6.txt": "\u00fcn\u00efc\u00f8d\u00e9\n".encode(),
        "nested/big 6MiB.bin": big,
    }


test_tree.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


def wait_until(check: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    """Polls ``check`` until it is true, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


@dataclass
class ServiceRun:
    """What a ``python -m file_orbit worker`` process printed and how it ended (set once it
    stopped)."""

    returncode: int | None = None
    printed: str = ""
    errors: str = ""


@contextlib.contextmanager
def worker_service(*args: str) -> Iterator[ServiceRun]:
    """Runs ``python -m file_orbit worker ARGS`` (with the test master key) for the ``with``
    block, then stops it with SIGTERM (SIGKILL after 60 s) and fills in the yielded run."""
    run = ServiceRun()
    service = subprocess.Popen(
        [sys.executable, "-m", "file_orbit", "worker", *args],
        env={**os.environ, "FILE_ORBIT_MASTER_KEY": MASTER_KEY},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield run
    finally:
        service.send_signal(signal.SIGTERM)
        try:
            run.printed, run.errors = service.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            service.kill()
            run.printed, run.errors = service.communicate()
        run.returncode = service.returncode


def cancel_once_moving(transfer: fo.Transfer) -> None:
    """Cancels ``transfer`` once bytes flow, so the test stops a transfer that is moving."""
    wait_until(lambda: transfer.progress.bytes > 0, what="the first bytes")
    transfer.cancel()


@pytest.fixture(scope="session", autouse=True)
def bucket(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The moto test bucket, created once (rclone makes it on the first upload)."""
    folder = tmp_path_factory.mktemp("bucket")
    (folder / "created.txt").write_bytes(b"bucket created\n")
    with fo.Orbit(folder / "orbit.db", master_key=MASTER_KEY) as orbit:
        orbit.copy(fo.Local("here", root=folder), moto("moto", "created"), destination_path="by-conftest", filters=fo.Filters(include=["*.txt"])).wait()
    return BUCKET


@pytest.fixture
def store(tmp_path: pathlib.Path) -> str:
    """A fresh SQLite store URL."""
    return f"sqlite://{tmp_path / 'orbit.db'}"


@pytest.fixture
def orbit(store: str) -> Iterator[fo.Orbit]:
    """A blocking Orbit on a fresh store with short timings, closed after the test (so no
    transfer it started outlives the test)."""
    with fo.Orbit(store, master_key=MASTER_KEY, lease=3.0, poll_interval=0.02) as orbit:
        yield orbit


@pytest.fixture
def local_dirs(tmp_path: pathlib.Path) -> Iterator[Callable[[str], pathlib.Path]]:
    """Makes fresh directories below the test's tmp dir."""

    def make(name: str) -> pathlib.Path:
        path = tmp_path / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    yield make
