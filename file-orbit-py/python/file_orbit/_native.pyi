"""Type stubs of the native module ``file_orbit._native`` (PyO3 glue over file-orbit-core).

Private: use the ``file_orbit`` package. Requests and replies are JSON text in the core's
own serde forms.
"""

from typing import Any, final

__all__ = [
    "NativeOrbit",
    "NativeService",
    "NativeTransfer",
    "PINNED_RCLONE_VERSION",
    "check_core",
    "load_rclone",
    "parse_unc",
    "set_library_path",
    "validate_channel",
    "validate_endpoint",
    "validate_source_spec",
]

PINNED_RCLONE_VERSION: str

def set_library_path(path: str | None) -> None:
    """Remembers the librclone.so to load (None: the loader's defaults); the env var wins."""

def load_rclone() -> tuple[str, str]:
    """Loads librclone now (if not yet); returns (library path, rclone version)."""

def validate_endpoint(config: str) -> None:
    """Checks an endpoint config (JSON); raises ConfigError naming the field."""

def validate_source_spec(kind: str, spec: str) -> None:
    """Checks a source's spec of ``kind`` (``"sqs"``, ``"local_watch"``, ``"remote_poll"``;
    JSON); raises ConfigError naming the field."""

def validate_channel(channel: str) -> None:
    """Checks a notification channel (JSON: ``type`` and its fields); raises ConfigError
    naming the field."""

def parse_unc(unc: str) -> tuple[str, str, str]:
    """Splits ``//host/share/path`` into (host, share, root)."""

def check_core(kind: str, json: str) -> str:
    """For the contract test: reads ``json`` as the core type ``kind`` names (``"channel"``,
    ``"endpoint"``, ``"filters"``, ``"incoming_event"``, ``"job_request"``,
    ``"local_watch"``, ``"notification"``, ``"placement"``, ``"rate_limit"``, ``"remote_poll"``,
    ``"retry_policy"``, ``"source"``, ``"sqs_source"``, ``"template"``,
    ``"transfer_spec"``) and returns the core's JSON of
    what it read (secrets as ``***``); raises ConfigError naming the field it refused."""

@final
class NativeOrbit:
    """One engine on one store."""

    @staticmethod
    def open(options: str) -> NativeOrbit:
        """Opens the store (options JSON), GIL released."""

    @staticmethod
    def open_async(options: str) -> Any:
        """``open`` as an awaitable of NativeOrbit."""

    def call(self, request: str) -> str:
        """Runs one ``{"op": ...}`` request, GIL released; returns the JSON reply."""

    def call_async(self, request: str) -> Any:
        """``call`` as an awaitable of the JSON reply."""

    def start_transfer(self, spec: str, source: str, destination: str) -> NativeTransfer:
        """Starts a transfer now (spec JSON; endpoints as JSON names or configs)."""

    def start_transfer_async(self, spec: str, source: str, destination: str) -> Any:
        """``start_transfer`` as an awaitable of NativeTransfer."""

    def start_workers(self, count: int) -> NativeService:
        """Starts ``count`` workers."""

    def watch_local(self, spec: str) -> NativeService:
        """Starts a local folder watch (the core's LocalWatch JSON)."""

    def watch_local_async(self, spec: str) -> Any:
        """``watch_local`` as an awaitable of NativeService."""

    def consume_sqs(self, source: str) -> NativeService:
        """Starts an SQS consumer of S3 notifications (source JSON)."""

    def consume_sqs_async(self, source: str) -> Any:
        """``consume_sqs`` as an awaitable of NativeService."""

    def poll_remote(self, spec: str) -> NativeService:
        """Starts polling an endpoint (the core's RemotePoll JSON)."""

    def run_sources(self, lease_ms: int, check_every_ms: int) -> NativeService:
        """Starts running the stored sources this node may run."""

    def run_notifier(
        self, link_base: str, check_every_ms: int, first_retry_ms: int, max_retry_ms: int, timeout_ms: int
    ) -> NativeService:
        """Starts this node's notifier (outbox messages made and sent)."""

    def start_scheduler(self, interval_ms: int) -> NativeService:
        """Starts firing cron schedules."""

    def close(self) -> None:
        """Stops this orbit's services and transfers, closes the store; GIL released."""

    def close_async(self) -> Any:
        """``close`` as an awaitable."""

    @property
    def closed(self) -> bool:
        """Whether ``close`` was called."""

@final
class NativeTransfer:
    """A transfer running in this process."""

    @property
    def destination_path(self) -> str:
        """Where the files go, relative to the destination endpoint."""

    def next_update(self, seen: int, timeout: float) -> tuple[int, str, bool]:
        """(seq, progress JSON, finished) once seq > seen or finished, at most ``timeout`` s."""

    def next_update_async(self, seen: int, timeout: float) -> Any:
        """``next_update`` as an awaitable."""

    def result(self) -> str | None:
        """Final progress JSON, or raises the transfer's error; None while running."""

    def cancel(self) -> None:
        """Asks rclone to stop the transfer."""

    def cancel_async(self) -> Any:
        """``cancel`` as an awaitable."""

@final
class NativeService:
    """A background service (workers, watch, poll, SQS consumer, scheduler, source runner,
    notifier)."""

    @property
    def running(self) -> bool:
        """Whether ``stop`` has not been called yet."""

    def stop(self, grace: float | None = None) -> bool:
        """Stops it and waits for work under way (workers: at most ``grace`` seconds)."""

    def stop_async(self, grace: float | None = None) -> Any:
        """``stop`` as an awaitable of bool."""

    def watch_stats(self) -> tuple[int, int, int, int, bool, str | None] | None:
        """A local watch's counters; None for other services."""

    def sqs_stats(self) -> str | None:
        """An SQS consumer's counters (JSON of the core's SqsStats); None for other services."""
