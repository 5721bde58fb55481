#!/usr/bin/env bash
# test-browser.sh — the web console in a real headless Chromium (issue #16):
#
#   1. installs Playwright for Python and pytest (PyPI, pinned) into target/browser-venv
#      once (again only when the pins change); no browser download: the tests drive
#      Debian's /usr/bin/chromium (scripts/install-test-deps.sh installs it);
#   2. builds the example server (examples/server.rs), copies the binary to a temporary
#      directory of its own (target/debug/examples/server is shared) and starts it on
#      127.0.0.1 with a free port, SQLite in that temporary data directory, two in-process
#      workers and three keys declared in its configuration (admin, operator, viewer);
#   3. runs pytest on tests/browser/ (sign-in, endpoints and their test, transfers with
#      live progress, cancel, retry, the audit page, what a viewer may not do, escaping,
#      the CSP and a 390 px phone screen on every page); screenshots of each page at
#      1280 px and 390 px go to target/browser-screenshots/ for review;
#   4. stops the server on exit.
#
# The SFTP scenario uses the test servers' sshd (scripts/test-servers.sh start): their env
# file is read when FILE_ORBIT_TEST_SFTP_HOST is not set already.
# Arguments go to pytest (e.g. -k "sign_in or viewer"). Env: FILE_ORBIT_PYTHON (default
# python3), FILE_ORBIT_CHROMIUM (default /usr/bin/chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

# shellcheck disable=SC2034 # read by fo_die in test-common.sh
FO_PROG=test-browser
# shellcheck source=scripts/test-common.sh
source scripts/test-common.sh
python=$(fo_python) || fo_die "no python3 (set FILE_ORBIT_PYTHON)"
step() { printf '\n== test-browser: %s\n' "$*"; }
chromium=${FILE_ORBIT_CHROMIUM:-/usr/bin/chromium}
[[ -x $chromium ]] || fo_die "no Chromium at $chromium (scripts/install-test-deps.sh installs Debian's chromium)"

# Playwright drives Chromium over CDP; 1.65 speaks to Debian's Chromium 156.
PLAYWRIGHT=1.65.3
PYTEST=9.2.0
venv=$REPO/target/browser-venv
step "tools in target/browser-venv (playwright $PLAYWRIGHT, pytest $PYTEST)"
[[ -x $venv/bin/python ]] || "$python" -m venv "$venv"
if ! "$venv/bin/python" - "$PLAYWRIGHT" "$PYTEST" <<'EOF' 2>/dev/null; then
import importlib.metadata as md, sys
wanted = {"playwright": sys.argv[1], "pytest": sys.argv[2]}
sys.exit(any(md.version(name) != version for name, version in wanted.items()))
EOF
    # The wheel carries Playwright's driver; no `playwright install` (no browser download).
    "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-input \
        "playwright==$PLAYWRIGHT" "pytest==$PYTEST"
fi

if [[ -z ${FILE_ORBIT_TEST_SFTP_HOST:-} ]]; then
    servers_env=${FILE_ORBIT_TEST_SERVERS_DIR:-$REPO/target/test-servers}/env
    # shellcheck source=/dev/null
    [[ -f $servers_env ]] && source "$servers_env"
fi

step "the example server"
work=$(mktemp -d "${TMPDIR:-/tmp}/file-orbit-browser.XXXXXX")
server_pid=
stop_server() { fo_stop_server "$server_pid" "$work"; }
trap stop_server EXIT
# The features of the test build (which compiles the examples too), so nothing builds
# again; the copy is ours even if another build replaces the shared binary meanwhile.
cargo build -q --example server --all-features
cp "${CARGO_TARGET_DIR:-$REPO/target}/debug/examples/server" "$work/server"

declare -A keys
config="listen = \"127.0.0.1:0\"
workers = 2
max_stream_secs = 60
rate_limit = { per_second = 1000000.0, burst = 1000000 }
failed_auth_limit = { per_second = 1000000.0, burst = 1000000 }
"
for role in admin operator viewer; do
    keys[$role]=fo_browser_${role}_$("$python" -c 'import secrets; print(secrets.token_hex(16))')
    sha=$("$python" -c 'import hashlib, sys; print(hashlib.sha256(sys.argv[1].encode()).hexdigest())' "${keys[$role]}")
    config+="
[[api_keys]]
name = \"browser-$role\"
role = \"$role\"
sha256 = \"$sha\"
"
done
mkdir "$work/data" "$work/files"
printf '%s' "$config" >"$work/data/file-orbit-server.toml"
FILE_ORBIT_DATA_DIR=$work/data "$work/server" >"$work/server.out" 2>"$work/server.err" &
server_pid=$!
# The server prints its address once it listens.
url=$(fo_server_url "$server_pid" "$work/server.out" "$work/server.err")
echo "server on $url (data in $work/data)"

step "pytest tests/browser (Chromium $("$chromium" --version 2>/dev/null | awk '{print $2}'))"
shots=$REPO/target/browser-screenshots
rm -rf "$shots" && mkdir -p "$shots"
started=$SECONDS
status=0
FILE_ORBIT_BROWSER_URL=$url \
    FILE_ORBIT_BROWSER_KEY_ADMIN=${keys[admin]} \
    FILE_ORBIT_BROWSER_KEY_OPERATOR=${keys[operator]} \
    FILE_ORBIT_BROWSER_KEY_VIEWER=${keys[viewer]} \
    FILE_ORBIT_BROWSER_FILES=$work/files \
    FILE_ORBIT_BROWSER_SCREENSHOTS=$shots \
    FILE_ORBIT_CHROMIUM=$chromium \
    "$venv/bin/python" -m pytest -p no:cacheprovider -q tests/browser "$@" ||
    status=$?
echo "browser tests took $((SECONDS - started)) s; screenshots in $shots"
if ((status)); then
    echo "-- the server's stderr (last 40 lines):" >&2
    tail -n 40 "$work/server.err" >&2
fi
exit "$status"
