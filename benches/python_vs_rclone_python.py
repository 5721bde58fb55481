"""1,000 one-file copies from Python: File Orbit (rclone in-process) vs rclone-python.

rclone-python (https://pypi.org/project/rclone-python/) is the popular wrapper that
spawns the rclone CLI for every call (`rclone copyto ... --use-json-log`, read through a
shell). File Orbit copies with the same rclone release inside this process. Both copy the
same files, one call per file, waiting for each before the next, to the same targets:

  local     a local directory
  sftp      the test sshd, password login (needs the env of scripts/test-servers.sh;
            skipped without it)
  sftp-key  the same with a key file: File Orbit then reuses one SSH connection for all
            copies (with a password it logs in once per copy today: see BENCHMARKS.md)

Like with like: rclone-python runs without its progress bar (its cheapest mode) and with
an empty config file; File Orbit waits without a progress callback; the SFTP remote is the
same on both sides (password or key file, known_hosts file, shell_type none). The rclone CLI must be
librclone's release (scripts/test-python.sh --bench builds it and links it into the venv).

Settings (env): FILE_ORBIT_BENCH_COPIES (1000), FILE_ORBIT_BENCH_FILE_BYTES (4096),
FILE_ORBIT_BENCH_TARGETS (local,sftp,sftp-key), FILE_ORBIT_BENCH_THREADS (8: a second File Orbit
run with that many threads copying at once; 0 to skip).

Prints a markdown table; ratio > 1 means File Orbit is faster.
"""

from __future__ import annotations

import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import file_orbit as fo
from rclone_python import rclone

COPIES = int(os.environ.get("FILE_ORBIT_BENCH_COPIES", "1000"))
FILE_BYTES = int(os.environ.get("FILE_ORBIT_BENCH_FILE_BYTES", "4096"))
TARGETS = os.environ.get("FILE_ORBIT_BENCH_TARGETS", "local,sftp,sftp-key").split(",")
THREADS = int(os.environ.get("FILE_ORBIT_BENCH_THREADS", "8"))
MASTER_KEY = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="


def rclone_cli() -> str:
    """The rclone CLI next to this interpreter (scripts/test-python.sh links it), else the one on PATH."""
    beside = Path(sys.executable).with_name("rclone")
    found = str(beside) if beside.is_file() else shutil.which("rclone")
    if not found:
        sys.exit("rclone CLI not found: scripts/test-python.sh --bench builds it")
    return found


def timed(copy: Callable[[str], None], names: list[str], threads: int = 1) -> tuple[float, list[float]]:
    """Wall time of copying every name, and each copy's latency."""
    latencies: list[float] = []
    lock = threading.Lock()
    chunks = [names[i::threads] for i in range(threads)]

    def run(chunk: list[str]) -> None:
        for name in chunk:
            started = time.perf_counter()
            copy(name)
            with lock:
                latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    pool = [threading.Thread(target=run, args=(chunk,)) for chunk in chunks]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return time.perf_counter() - started, latencies


def check(destination: Path, names: list[str]) -> None:
    missing = [name for name in names if (destination / name).stat().st_size != FILE_BYTES]
    if missing:
        sys.exit(f"{len(missing)} files missing or wrong at {destination}")


def main() -> None:
    cli = rclone_cli()
    os.environ["PATH"] = f"{Path(cli).parent}{os.pathsep}{os.environ['PATH']}"
    cli_version = subprocess.run([cli, "version"], capture_output=True, text=True, check=True).stdout.split()[1]
    info = fo.rclone_info()
    work = Path(tempfile.mkdtemp(prefix="fo-pybench-"))
    source = work / "source"
    source.mkdir()
    names = [f"f{i:05}.bin" for i in range(COPIES)]
    for i, name in enumerate(names):
        (source / name).write_bytes(os.urandom(FILE_BYTES - 8) + i.to_bytes(8, "little"))
    empty_config = work / "rclone.conf"
    empty_config.write_text("")
    rclone.set_config_file(str(empty_config))
    rclone.set_log_level(logging.WARNING)  # not a line per copy
    orbit = fo.Orbit(work / "orbit.db", master_key=MASTER_KEY)
    src = fo.Local("src", root=source)

    rows: list[tuple[str, str, int, float, list[float]]] = []
    cleanup = [work]
    for target in TARGETS:
        if target == "local":
            def fo_dst(run: str) -> tuple[fo.Endpoint, Path]:
                folder = work / f"fo-{run}"
                return fo.Local("dst", root=folder), folder

            def cli_dst(run: str) -> tuple[str, Path]:
                folder = work / f"cli-{run}"
                return str(folder), folder
        elif target in ("sftp", "sftp-key"):
            if "FILE_ORBIT_TEST_SFTP_HOST" not in os.environ:
                print("sftp: skipped (no FILE_ORBIT_TEST_* env: start scripts/test-servers.sh)", file=sys.stderr)
                continue
            env = os.environ
            home = Path(env["FILE_ORBIT_TEST_SFTP_HOME"])
            obscured = subprocess.run(
                [cli, "obscure", env["FILE_ORBIT_TEST_SFTP_PASSWORD"]], capture_output=True, text=True, check=True
            ).stdout.strip()
            with_key = target == "sftp-key"
            key_file = env["FILE_ORBIT_TEST_SFTP_KEY_FILE"]
            cli_auth = f"key_file={key_file}" if with_key else f"pass={obscured}"
            prefix = f"pybench-{os.getpid()}-{target}"
            cleanup.append(home / prefix)

            def own_dir(root: str) -> Path:
                # Made beforehand, owned by the SFTP user: parallel first uploads into a
                # new directory race on its mkdir (SSH_FX_FAILURE), whichever client.
                folder = home / root
                folder.mkdir(parents=True, exist_ok=True)
                for path in (folder, folder.parent):
                    os.chown(path, home.stat().st_uid, home.stat().st_gid)
                return folder

            def fo_dst(run: str) -> tuple[fo.Endpoint, Path]:
                root = f"{prefix}/fo-{run}"
                endpoint = fo.Sftp(
                    "dst",
                    host=env["FILE_ORBIT_TEST_SFTP_HOST"],
                    port=int(env["FILE_ORBIT_TEST_SFTP_PORT"]),
                    user=env["FILE_ORBIT_TEST_SFTP_USER"],
                    password=None if with_key else env["FILE_ORBIT_TEST_SFTP_PASSWORD"],
                    key_file=key_file if with_key else None,
                    known_hosts=env["FILE_ORBIT_TEST_SFTP_KNOWN_HOSTS"],
                    root=root,
                )
                return endpoint, own_dir(root)

            def cli_dst(run: str) -> tuple[str, Path]:
                root = f"{prefix}/cli-{run}"
                remote = (
                    f":sftp,host={env['FILE_ORBIT_TEST_SFTP_HOST']},port={env['FILE_ORBIT_TEST_SFTP_PORT']},"
                    f"user={env['FILE_ORBIT_TEST_SFTP_USER']},{cli_auth},"
                    f"known_hosts_file={env['FILE_ORBIT_TEST_SFTP_KNOWN_HOSTS']},shell_type=none:{root}"
                )
                return remote, own_dir(root)
        else:
            sys.exit(f"unknown target {target!r}")

        destination, folder = fo_dst("seq")
        elapsed, latencies = timed(
            lambda name: orbit.copy(src, destination, source_path=name, destination_path=name, scope="file").wait(),
            names,
        )
        check(folder, names)
        rows.append((target, "File Orbit", 1, elapsed, latencies))

        if THREADS > 1:
            destination, folder = fo_dst("threads")
            elapsed, latencies = timed(
                lambda name: orbit.copy(src, destination, source_path=name, destination_path=name, scope="file").wait(),
                names,
                THREADS,
            )
            check(folder, names)
            rows.append((target, "File Orbit", THREADS, elapsed, latencies))

        remote, folder = cli_dst("seq")
        elapsed, latencies = timed(
            lambda name: rclone.copyto(str(source / name), f"{remote}/{name}", show_progress=False), names
        )
        check(folder, names)
        rows.append((target, "rclone-python", 1, elapsed, latencies))

        if THREADS > 1:
            remote, folder = cli_dst("threads")
            elapsed, latencies = timed(
                lambda name: rclone.copyto(str(source / name), f"{remote}/{name}", show_progress=False),
                names,
                THREADS,
            )
            check(folder, names)
            rows.append((target, "rclone-python", THREADS, elapsed, latencies))

    print(
        f"\n{COPIES} one-file copies of {FILE_BYTES} B each; File Orbit {info.version} in-process "
        f"({info.library_path}), rclone-python driving rclone {cli_version}; {os.cpu_count()} cores\n"
    )
    print("| target | client | threads | copies | wall s | copies/s | p50 ms | p99 ms | File Orbit × |")
    print("|---|---|---|---|---|---|---|---|---|")
    for target, client, threads, elapsed, latencies in rows:
        peer = next(
            (r[3] for r in rows if r[0] == target and r[1] == "rclone-python" and r[2] == threads), None
        )
        ratio = f"{peer / elapsed:.1f}" if client == "File Orbit" and peer else ""
        cuts = statistics.quantiles(latencies, n=100)
        print(
            f"| {target} | {client} | {threads} | {len(latencies)} | {elapsed:.1f} | {len(latencies) / elapsed:.1f} "
            f"| {cuts[49] * 1000:.1f} | {cuts[98] * 1000:.1f} | {ratio} |"
        )
    for path in cleanup:
        shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    main()
