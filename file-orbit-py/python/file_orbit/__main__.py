"""``python -m file_orbit worker``: File Orbit's workers as a service, for hosts that have
the wheel and nothing else. They run the store's queued jobs, and the stored sources this
node may run (``--node``, ``--label``; a folder watch placed on this host), and send the
store's notifications (``--notify-allow`` lists the hosts their channels may reach), until
SIGTERM or SIGINT; then they release the sources, stop the notifier, stop leasing, give running transfers ``--grace``
seconds and put the rest back in the queue for other workers. The store's master key comes
from ``$FILE_ORBIT_MASTER_KEY`` (or, for SQLite, the key file beside the database).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import urllib.parse
from collections.abc import Callable, Sequence

from ._orbit import Orbit


def _shown(store: str) -> str:
    """The store URL without its password, for printing."""
    parts = urllib.parse.urlsplit(store)
    if parts.password is None:
        return store
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else "***@"
    return urllib.parse.urlunsplit(parts._replace(netloc=user + host))


def _at_least(kind: Callable[[str], float], minimum: float) -> Callable[[str], float]:
    """An argparse type: ``kind(text)``, refused below ``minimum``."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum:g}, not {text}")
        return value

    return parse


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m file_orbit", description="File Orbit's workers as a service (see the module docs)."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    worker = commands.add_parser("worker", help="run workers on a store until SIGTERM or SIGINT")
    worker.add_argument(
        "--store",
        default=os.environ.get("FILE_ORBIT_STORE_URL", "file-orbit.db"),
        help="sqlite:///path.db, postgres://..., or a SQLite file (default: $FILE_ORBIT_STORE_URL or file-orbit.db)",
    )
    worker.add_argument("--workers", type=_at_least(int, 1), default=4, help="transfers run at once (default 4)")
    worker.add_argument(
        "--grace",
        type=_at_least(float, 0),
        default=30.0,
        help="seconds running transfers get to finish on shutdown (default 30)",
    )
    worker.add_argument("--name", default="worker", help="who the audit log names (default worker)")
    worker.add_argument("--node", default=None, help="this node's name for sources' placements (default: the host name)")
    worker.add_argument(
        "--label",
        type=_label,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a label of this node for sources' placements (repeatable)",
    )
    worker.add_argument("--no-sources", action="store_true", help="run no stored sources here, only jobs")
    worker.add_argument(
        "--notify-allow",
        action="append",
        default=[],
        metavar="HOST",
        help="a host, address or network notification channels may reach (repeatable; see the README)",
    )
    worker.add_argument(
        "--link-base",
        default="http://127.0.0.1:8080",
        help="where job links in notifications point: the server's URL (default http://127.0.0.1:8080)",
    )
    worker.add_argument("--no-notifier", action="store_true", help="send no notifications from here")
    return parser


def _label(text: str) -> tuple[str, str]:
    """An argparse type: ``KEY=VALUE``."""
    key, sep, value = text.partition("=")
    if not sep or not key or not value:
        raise argparse.ArgumentTypeError(f"write a label as KEY=VALUE, not {text!r}")
    return key, value


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    with Orbit(
        args.store, actor=args.name, node=args.node, labels=dict(args.label), notify_allow=args.notify_allow
    ) as orbit:
        sources = None if args.no_sources else orbit.run_sources()
        notifier = None if args.no_notifier else orbit.run_notifier(link_base=args.link_base)
        workers = orbit.start_workers(args.workers)
        running = "" if sources is None else ", with the sources this node may run"
        running += "" if notifier is None else ", sending notifications"
        print(f"file-orbit worker: {args.workers} workers on {_shown(args.store)}{running}; stop with SIGTERM", flush=True)
        while not stop.wait(timeout=1.0):
            pass  # a bounded wait: the signal handler runs between waits
        print(f"file-orbit worker: stopping; running transfers get {args.grace:g} s", flush=True)
        if sources is not None:
            sources.stop()
        if notifier is not None:
            notifier.stop()
        clean = workers.stop(grace=args.grace)
    print("file-orbit worker: stopped" + ("" if clean else " (unfinished jobs went back to the queue)"), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
