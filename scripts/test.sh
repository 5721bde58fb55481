#!/usr/bin/env bash
# The test command: installs what the tests need (idempotently), starts the real test
# servers on 127.0.0.1 (sshd, smbd, moto, rclone serve s3, PostgreSQL, the notification
# receivers) and the network namespaces of hosts B and C (scripts/test-hosts.sh), runs
# formatting, lint, rustdoc, the import-circle check, the notification receivers'
# self-test and every test of the workspace, then the Python bindings' suite
# (wheel built, installed in a fresh virtualenv, pytest; scripts/test-python.sh), the API's
# contract (Schemathesis and a generated client against the example server;
# scripts/test-api-contract.sh), the web console in headless Chromium
# (scripts/test-browser.sh), and stops the servers and removes the namespaces.
# Every suite runs even when an earlier one failed; the exit status is the first failure's.
set -euo pipefail
cd "$(dirname "$0")/.."
# A CI run builds once: incremental compilation would only add ~2 GB of cache to the disk.
[[ -n ${CI:-} ]] && export CARGO_INCREMENTAL=0

scripts/install-build-deps.sh
scripts/install-test-deps.sh

cargo fmt --all --check
cargo clippy --workspace --all-targets --all-features -- -D warnings
# The API docs build without a broken link or a malformed example.
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --all-features --no-deps
# No two modules (Rust or the Python package) import each other, directly or round a loop.
scripts/check-import-cycles.py --self-test
scripts/check-import-cycles.py
# The receivers the notification tests send to (SMTP with STARTTLS and AUTH, signed
# webhooks, Slack, Teams) accept what they should and refuse what they should.
scripts/notify-receivers.py --self-test

# The suites' temporary files (local endpoint roots, pytest's tmp_path) live in one
# directory that goes when the run ends, so repeated runs do not fill /tmp.
tests_tmp=$PWD/target/test-tmp
trap 'scripts/test-hosts.sh down || true; scripts/test-servers.sh stop; rm -rf "$tests_tmp"' EXIT
scripts/test-servers.sh start
# Hosts B and C (network namespaces fo-b, fo-c) for the multi-host tests.
scripts/test-hosts.sh up
rm -rf "$tests_tmp" && mkdir -p "$tests_tmp"
export TMPDIR=$tests_tmp
# shellcheck source=/dev/null
source "${FILE_ORBIT_TEST_SERVERS_DIR:-target/test-servers}/env"
status=0
cargo test --workspace --all-features --no-fail-fast || status=$?
# A dev wheel: the same code as the release one, built in a fraction of the time.
FILE_ORBIT_PY_PROFILE=${FILE_ORBIT_PY_PROFILE:-dev} scripts/test-python.sh || {
    rc=$?
    ((status)) || status=$rc
}
# The API's contract: Schemathesis against the real server (short mode: 5 examples per
# operation; FILE_ORBIT_SCHEMATHESIS_EXAMPLES=30 for the long one) and a generated client.
scripts/test-api-contract.sh || {
    rc=$?
    ((status)) || status=$rc
}
# The web console in Debian's headless Chromium (Playwright; screenshots of every page in
# target/browser-screenshots/).
scripts/test-browser.sh || {
    rc=$?
    ((status)) || status=$rc
}
exit "$status"
