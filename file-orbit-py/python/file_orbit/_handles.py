"""Handles of things that run on: a :class:`Transfer` running now in this process, a
durable :class:`Job` in the store, and a background :class:`Service` (workers, a watch, a
poll, an SQS consumer, the scheduler).

Each can be waited for blocking (``wait()``, the GIL released while waiting) or from
asyncio (``await handle``). Progress callbacks run in the waiting thread (or the event
loop's thread), never in one of File Orbit's own threads.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Generator
from types import TracebackType
from typing import Any

from . import _native
from ._calls import HasNative, call, call_async
from ._models import JobInfo, Progress, SqsStats, WatchStats
from .errors import CancelledError, _from_kind

__all__ = ["Job", "Service", "Transfer"]

# The longest a blocking wait stays in native code before Python gets control back (so
# Ctrl-C and signal handlers run while waiting).
_SLICE = 0.25


def _remaining(deadline: float | None, slice_: float) -> float:
    if deadline is None:
        return slice_
    return max(0.0, min(slice_, deadline - time.monotonic()))


def _timed_out(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline


class Transfer:
    """A transfer running now, in this process, with live progress.

    Made by :meth:`Orbit.copy`, :meth:`Orbit.move`, :meth:`Orbit.sync` and
    :meth:`Orbit.run`. Not stored and not retried: for that, submit a durable job.
    """

    def __init__(self, native: _native.NativeTransfer) -> None:
        self._native = native

    @property
    def destination_path(self) -> str:
        """Where the files go, relative to the destination endpoint (the rendered template)."""
        return self._native.destination_path

    @property
    def progress(self) -> Progress:
        """The latest progress snapshot (does not wait)."""
        _, text, _ = self._native.next_update(0, 0.0)
        return Progress(**json.loads(text))

    @property
    def done(self) -> bool:
        """Whether the transfer has ended (successfully or not)."""
        return self._native.next_update(0, 0.0)[2]

    def wait(
        self, progress: Callable[[Progress], object] | None = None, timeout: float | None = None
    ) -> Progress:
        """Waits for the transfer to end and returns its final progress.

        Args:
            progress: Called with a :class:`Progress` each time it changes (and once at the
                end), in this thread. An exception it raises propagates out of ``wait``;
                the transfer goes on.
            timeout: Seconds to wait at most; then :class:`TimeoutError` is raised and the
                transfer goes on.

        Raises:
            FileOrbitError: The transfer failed (e.g. :class:`AuthenticationError`,
                :class:`NotFoundError`, :class:`CancelledError` after :meth:`cancel`).
            TimeoutError: ``timeout`` passed first.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        seen = 0
        while True:
            seq, text, done = self._native.next_update(seen, _remaining(deadline, _SLICE))
            if seq != seen:
                seen = seq
                if progress is not None:
                    progress(Progress(**json.loads(text)))
            if done:
                return self._result()
            if _timed_out(deadline):
                raise TimeoutError(f"the transfer is still running after {timeout} s")

    async def wait_async(
        self, progress: Callable[[Progress], object] | None = None, timeout: float | None = None
    ) -> Progress:
        """:meth:`wait` for asyncio; ``await transfer`` is ``await transfer.wait_async()``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        seen = 0
        while True:
            seq, text, done = await self._native.next_update_async(seen, _remaining(deadline, 3600.0))
            if seq != seen:
                seen = seq
                if progress is not None:
                    progress(Progress(**json.loads(text)))
            if done:
                return self._result()
            if _timed_out(deadline):
                raise TimeoutError(f"the transfer is still running after {timeout} s")

    def __await__(self) -> Generator[Any, None, Progress]:
        return self.wait_async().__await__()

    def _result(self) -> Progress:
        text = self._native.result()
        assert text is not None, "the transfer has ended"
        return Progress(**json.loads(text))

    def cancel(self) -> None:
        """Stops the transfer; :meth:`wait` then raises :class:`CancelledError`."""
        self._native.cancel()

    async def cancel_async(self) -> None:
        """:meth:`cancel` for asyncio."""
        await self._native.cancel_async()

    def __repr__(self) -> str:
        return f"<Transfer to {self.destination_path!r}>"


class Job:
    """A durable job: stored, run by workers (:meth:`Orbit.start_workers`, in this or
    another process sharing the store), retried after retryable failures.

    Made by :meth:`Orbit.submit` and :meth:`Orbit.replay_event`, or ``Job(orbit, id)``.
    """

    def __init__(self, orbit: HasNative, id: int) -> None:
        self._native: _native.NativeOrbit = orbit._native
        self.id = id
        """The job's id."""

    def _call(self, op: str, **args: Any) -> Any:
        return call(self._native, op, **args)

    async def _call_async(self, op: str, **args: Any) -> Any:
        return await call_async(self._native, op, **args)

    def info(self) -> JobInfo:
        """The job as stored now."""
        return JobInfo._from_core(self._call("job", id=self.id))

    async def info_async(self) -> JobInfo:
        """:meth:`info` for asyncio."""
        return JobInfo._from_core(await self._call_async("job", id=self.id))

    def wait(
        self, progress: Callable[[JobInfo], object] | None = None, timeout: float | None = None
    ) -> JobInfo:
        """Waits until the job succeeded, died or was cancelled.

        Args:
            progress: Called with the :class:`JobInfo` each time the stored job changes
                (state, attempts, outcome), in this thread. Live byte counts of a running
                job are not available yet (only ``bytes``/``files`` once it succeeded).
            timeout: Seconds to wait at most; then :class:`TimeoutError` is raised.

        Returns:
            The succeeded job (its ``bytes`` and ``files`` say what it moved).

        Raises:
            FileOrbitError: The job is dead; the class follows its last error's kind
                (e.g. :class:`AuthenticationError`). :class:`CancelledError` when cancelled.
            TimeoutError: ``timeout`` passed first.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        seen = -1
        while True:
            ms = round(_remaining(deadline, _SLICE) * 1000)
            data = self._call("wait_job", id=self.id, seen_updated_at=seen, timeout_ms=ms)
            if data["updated_at"] != seen:
                seen = data["updated_at"]
                if progress is not None:
                    progress(JobInfo._from_core(data))
            if data["state"] in ("succeeded", "dead", "cancelled"):
                return self._outcome(JobInfo._from_core(data))
            if _timed_out(deadline):
                raise TimeoutError(f"job {self.id} is still {data['state']} after {timeout} s")

    async def wait_async(
        self, progress: Callable[[JobInfo], object] | None = None, timeout: float | None = None
    ) -> JobInfo:
        """:meth:`wait` for asyncio; ``await job`` is ``await job.wait_async()``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        seen = -1
        while True:
            ms = round(_remaining(deadline, 3600.0) * 1000)
            data = await self._call_async("wait_job", id=self.id, seen_updated_at=seen, timeout_ms=ms)
            if data["updated_at"] != seen:
                seen = data["updated_at"]
                if progress is not None:
                    progress(JobInfo._from_core(data))
            if data["state"] in ("succeeded", "dead", "cancelled"):
                return self._outcome(JobInfo._from_core(data))
            if _timed_out(deadline):
                raise TimeoutError(f"job {self.id} is still {data['state']} after {timeout} s")

    def __await__(self) -> Generator[Any, None, JobInfo]:
        return self.wait_async().__await__()

    def _outcome(self, info: JobInfo) -> JobInfo:
        if info.state == "succeeded":
            return info
        if info.state == "cancelled":
            raise CancelledError(f"job {self.id} was cancelled")
        raise _from_kind(
            info.last_error_kind or "", False, f"job {self.id}", info.last_error or "dead"
        )

    def cancel(self) -> str:
        """Cancels the job: at once when queued, through its worker when running.

        Returns:
            The state right after: ``"cancelled"``, or ``"leased"`` while the worker stops
            (or the final state if it had already finished).
        """
        state: str = self._call("cancel", id=self.id)
        return state

    async def cancel_async(self) -> str:
        """:meth:`cancel` for asyncio."""
        state: str = await self._call_async("cancel", id=self.id)
        return state

    def __repr__(self) -> str:
        return f"<Job {self.id}>"


class Service:
    """Something running in the background of this process until :meth:`stop`: workers,
    a local folder watch, a remote poll, an SQS consumer, the scheduler, the source
    runner or the notifier. Use it as a (async) context
    manager to stop it at the end of a block; dropping the last reference stops it too.
    """

    def __init__(self, native: _native.NativeService, what: str) -> None:
        self._native = native
        self._what = what

    @property
    def running(self) -> bool:
        """Whether :meth:`stop` has not been called yet."""
        return self._native.running

    def stop(self, grace: float | None = None) -> bool:
        """Stops the service and waits for work under way (e.g. running transfers) to end.

        Args:
            grace: For workers: seconds running transfers get to finish; then they stop
                and their jobs go back to the queue at once (the interrupted attempt does
                not count). None waits for them to end.

        Returns:
            True when everything ended within ``grace`` (always without one).
        """
        return self._native.stop(grace)

    async def stop_async(self, grace: float | None = None) -> bool:
        """:meth:`stop` for asyncio."""
        return bool(await self._native.stop_async(grace))

    def stats(self) -> WatchStats | SqsStats | None:
        """The counters of a local watch (:class:`WatchStats`) or of an SQS consumer
        (:class:`SqsStats`); None for other services or once stopped."""
        watch = self._native.watch_stats()
        if watch is not None:
            return WatchStats(*watch)
        sqs = self._native.sqs_stats()
        return None if sqs is None else SqsStats(**json.loads(sqs))

    def __enter__(self) -> Service:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Service:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop_async()

    def __repr__(self) -> str:
        return f"<Service {self._what} {'running' if self.running else 'stopped'}>"
