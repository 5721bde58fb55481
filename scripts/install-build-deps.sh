#!/usr/bin/env bash
# Checks the toolchains the build needs (Go for librclone, Rust with clippy and rustfmt)
# and installs the missing Rust components. Idempotent.
set -euo pipefail

need_go="1.26"
if ! command -v go >/dev/null 2>&1; then
    echo "Go $need_go or newer is needed to build librclone (or set FILE_ORBIT_LIBRCLONE to a prebuilt librclone.so)" >&2
    exit 1
fi
have_go=$(go env GOVERSION | sed 's/^go//')
if [ "$(printf '%s\n%s\n' "$need_go" "$have_go" | sort -V | head -1)" != "$need_go" ]; then
    echo "Go $have_go is too old: librclone needs Go $need_go or newer" >&2
    exit 1
fi
echo "go $have_go: ok"

for component in clippy rustfmt; do
    if ! rustup component list --installed 2>/dev/null | grep -q "^$component"; then
        rustup component add "$component"
    fi
done
echo "rust $(rustc --version | cut -d' ' -f2) with clippy and rustfmt: ok"
