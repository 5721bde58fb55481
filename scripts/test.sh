#!/usr/bin/env bash
# The test command: installs what the tests need (idempotently), then runs formatting,
# lint and every test of the workspace against the real librclone.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-build-deps.sh

cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
