#!/usr/bin/env bash
# test-api-contract.sh — the API's contract against the real server:
#
#   1. installs Schemathesis and openapi-python-client (PyPI) into target/contract-venv
#      once (again only when the pinned versions change); nothing system-wide;
#   2. builds and starts the example server (examples/server.rs) on 127.0.0.1 with a free
#      port, SQLite in a temporary data directory, one in-process worker and an admin key
#      declared in its configuration (a declared key cannot be revoked through the API, so
#      the run cannot lock itself out);
#   3. runs `schemathesis run` on /api/v1/openapi.json with every check, except those
#      tests/api_contract/schemathesis.toml turns off (each with its reason), and fails on
#      any failure;
#   4. runs tests/api_contract/test_generated_client.py: a client generated from the same
#      document (openapi-python-client, into a temporary directory) creates two local
#      endpoints, submits a copy between them and reads the job back until it succeeded;
#   5. stops the server on exit.
#
# Env: FILE_ORBIT_SCHEMATHESIS_EXAMPLES (examples per operation; default 5, the short
# mode of the test command; 30 for the long mode), FILE_ORBIT_PYTHON (default python3).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

# shellcheck disable=SC2034 # read by fo_die in test-common.sh
FO_PROG=test-api-contract
# shellcheck source=scripts/test-common.sh
source scripts/test-common.sh
python=$(fo_python) || fo_die "no python3 (set FILE_ORBIT_PYTHON)"
step() { printf '\n== test-api-contract: %s\n' "$*"; }
examples=${FILE_ORBIT_SCHEMATHESIS_EXAMPLES:-5}
[[ $examples =~ ^[1-9][0-9]*$ ]] || fo_die "FILE_ORBIT_SCHEMATHESIS_EXAMPLES=$examples: a positive integer"

SCHEMATHESIS=4.32.5
OPENAPI_PYTHON_CLIENT=0.29.1
venv=$REPO/target/contract-venv
step "tools in target/contract-venv (schemathesis $SCHEMATHESIS, openapi-python-client $OPENAPI_PYTHON_CLIENT)"
[[ -x $venv/bin/python ]] || "$python" -m venv "$venv"
if ! "$venv/bin/python" - "$SCHEMATHESIS" "$OPENAPI_PYTHON_CLIENT" <<'EOF' 2>/dev/null; then
import importlib.metadata as md, sys
wanted = {"schemathesis": sys.argv[1], "openapi-python-client": sys.argv[2], "pytest": None}
sys.exit(any(md.version(name) != version and version for name, version in wanted.items()))
EOF
    "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-input \
        "schemathesis==$SCHEMATHESIS" "openapi-python-client==$OPENAPI_PYTHON_CLIENT" pytest
fi

step "the example server"
# The features of the test build (which compiles the examples too), so nothing builds again.
cargo build -q --example server --all-features
server_bin=${CARGO_TARGET_DIR:-$REPO/target}/debug/examples/server
[[ -x $server_bin ]] || fo_die "no server binary at $server_bin"

work=$(mktemp -d "${TMPDIR:-/tmp}/file-orbit-contract.XXXXXX")
server_pid=
stop_server() { fo_stop_server "$server_pid" "$work"; }
trap stop_server EXIT

key=fo_contract_$("$python" -c 'import secrets; print(secrets.token_hex(16))')
sha=$("$python" -c 'import hashlib, sys; print(hashlib.sha256(sys.argv[1].encode()).hexdigest())' "$key")
# No rate limit worth the name: Schemathesis sends hundreds of requests a second.
cat >"$work/file-orbit-server.toml" <<EOF
listen = "127.0.0.1:0"
workers = 1
max_stream_secs = 2
rate_limit = { per_second = 1000000.0, burst = 1000000 }
failed_auth_limit = { per_second = 1000000.0, burst = 1000000 }

[[api_keys]]
name = "contract"
role = "admin"
sha256 = "$sha"
EOF
FILE_ORBIT_DATA_DIR=$work "$server_bin" >"$work/server.out" 2>"$work/server.err" &
server_pid=$!
# The server prints its address once it listens.
url=$(fo_server_url "$server_pid" "$work/server.out" "$work/server.err")
echo "server on $url (data in $work)"

status=0
step "schemathesis: $examples examples per operation"
started=$SECONDS
(cd "$work" && "$venv/bin/schemathesis" --config-file "$REPO/tests/api_contract/schemathesis.toml" \
    run "$url/api/v1/openapi.json" \
    --header "Authorization: Bearer $key" \
    --max-examples "$examples" \
    --seed 12) || status=$?
echo "schemathesis took $((SECONDS - started)) s"

step "a client generated from the document submits a job and reads it back"
FILE_ORBIT_CONTRACT_URL=$url FILE_ORBIT_CONTRACT_KEY=$key FILE_ORBIT_CONTRACT_DIR=$work \
    "$venv/bin/python" -m pytest -p no:cacheprovider -q tests/api_contract || {
    rc=$?
    ((status)) || status=$rc
}
exit "$status"
