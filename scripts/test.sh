#!/usr/bin/env bash
# The test command: installs what the tests need (idempotently), starts the real test
# servers on 127.0.0.1 (sshd, smbd, moto, rclone serve s3, PostgreSQL), runs formatting,
# lint and every test of the workspace, and stops the servers again.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-build-deps.sh
scripts/install-test-deps.sh

cargo fmt --all --check
cargo clippy --workspace --all-targets --all-features -- -D warnings

trap 'scripts/test-servers.sh stop' EXIT
scripts/test-servers.sh start
# shellcheck source=/dev/null
source "${FILE_ORBIT_TEST_SERVERS_DIR:-target/test-servers}/env"
cargo test --workspace --all-features --no-fail-fast
