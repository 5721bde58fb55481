#!/usr/bin/env bash
# test-servers.sh start|stop|status — the REAL servers that File Orbit's
# integration tests talk to, each bound to 127.0.0.1 only:
#
#   sftp      OpenSSH sshd (private instance)   127.0.0.1:2222  user fotest
#   smb       Samba smbd (private instance)     127.0.0.1:4445  share "share"
#   moto      moto_server (S3 + SQS + SNS)      127.0.0.1:5000
#   rclone-s3 rclone serve s3                   127.0.0.1:5001  bucket fo-bucket
#   postgres  PostgreSQL (private cluster)      127.0.0.1:5433  db file_orbit_test
#   notify    scripts/notify-receivers.py       127.0.0.1:5080  HTTP: webhook/Slack/Teams
#             (aiosmtpd + http.server)          127.0.0.1:2525  SMTP, STARTTLS + AUTH required
#                                               127.0.0.1:2465  SMTPS (implicit TLS), same auth
#             user orbit; records what it receives, served at GET /received/...; its
#             private CA and server certificate (localhost, 127.0.0.1) in <state>/notify.
#             The three ports can be moved with FILE_ORBIT_TEST_NOTIFY_HTTP_PORT,
#             FILE_ORBIT_TEST_NOTIFY_SMTP_PORT and FILE_ORBIT_TEST_NOTIFY_SMTPS_PORT.
#
# Owns the state dir ${FILE_ORBIT_TEST_SERVERS_DIR:-<repo>/target/test-servers}
# (a relative value is taken from the repo root): configs, keys, data, logs/,
# one <name>.pid per server, and `env` — a sourceable file of
# FILE_ORBIT_TEST_* variables describing every server (and FILE_ORBIT_TEST_NSS_WRAPPER,
# nss_wrapper's preload library, for tests that make a host name resolve to an address
# of their choice through NSS_WRAPPER_HOSTS), written after a
# successful start and removed by stop. (The SMB share and PostgreSQL's
# cluster go to /var/tmp/file-orbit-test-servers.<n> instead when the state dir
# lies below a directory other users cannot traverse.) It also owns the Unix user `fotest`
# (created if missing, password and authorized key set on every start); stop
# removes the files tests left in its home.
#
# Servers are detached (setsid), recorded by pid and stopped by pid: SIGTERM,
# a bounded wait, then SIGKILL; PostgreSQL through pg_ctl stop. `start` is
# idempotent (a running, healthy server is left alone), so is `stop`.
# `status` exits 0 when all servers are up, 3 otherwise. Each command takes optional
# server names to act on only those (`start notify`); `stop NAME...` then leaves the
# env file and the test user's files alone.
#
# Needs root (sshd/smbd authenticate a Unix user); as a normal user it re-runs
# itself with sudo. Install the software first: scripts/install-test-deps.sh.
set -euo pipefail
set +m # no job control: a `cmd &` child then is not a group leader, so
# `setsid cmd &` execs in place and $! is the server's own pid.

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
FO_PROG=test-servers
# shellcheck source=scripts/test-common.sh
source "$SCRIPT_DIR/test-common.sh"

STATE=${FILE_ORBIT_TEST_SERVERS_DIR:-target/test-servers}
[[ $STATE == /* ]] || STATE=$REPO_ROOT/$STATE
STATE=${STATE%/}

HOST=127.0.0.1
SFTP_PORT=2222
SMB_PORT=4445
MOTO_PORT=5000
RS3_PORT=5001
PG_PORT=5433
NOTIFY_HTTP_PORT=${FILE_ORBIT_TEST_NOTIFY_HTTP_PORT:-5080}
SMTP_PORT=${FILE_ORBIT_TEST_NOTIFY_SMTP_PORT:-2525}
SMTPS_PORT=${FILE_ORBIT_TEST_NOTIFY_SMTPS_PORT:-2465}

TEST_USER=fotest
TEST_PASSWORD=fotest-pw-1
SMB_SHARE=share
MOTO_REGION=us-east-1
MOTO_KEY=testing
MOTO_SECRET=testing
MOTO_ACCOUNT=123456789012
RS3_KEY=fotestkey
RS3_SECRET=fotestsecret
RS3_BUCKET=fo-bucket
PG_USER=postgres
PG_PASSWORD=fotest-pw-1
PG_DB=file_orbit_test
# Canaries: tests check that File Orbit never shows these in its output, logs or metrics.
SMTP_USER=orbit
SMTP_PASSWORD=smtp-canary-Qz7xK2pL9
WEBHOOK_SIGNING_KEY=webhook-canary-key-5Jm2Vx8Rq

# Readiness: at most READY_TRIES polls, 0.25 s apart.
READY_TRIES=${FILE_ORBIT_TEST_READY_TRIES:-120}
# Stop: at most STOP_TRIES polls, 0.25 s apart, after SIGTERM before SIGKILL.
STOP_TRIES=40

SERVERS=(sftp smb moto rclone-s3 postgres notify)

# others_can_reach DIR: every existing parent of DIR is traversable by other users.
others_can_reach() {
    local dir
    dir=$(dirname "$1")
    while [[ ! -e $dir ]]; do dir=$(dirname "$dir"); done
    while [[ $dir != / ]]; do
        (($(stat -c %a "$dir" | sed 's/^/8#/') & 1)) || return 1
        dir=$(dirname "$dir")
    done
}
# The SMB share (used as the test user) and PostgreSQL's cluster (user postgres) live
# where those users can reach them: in the state dir, unless it lies below a private
# directory (mode 0700, e.g. a clone under `mktemp -d`); then in /var/tmp, one dir per
# state dir.
if others_can_reach "$STATE"; then
    SHARED=$STATE
else
    SHARED=/var/tmp/file-orbit-test-servers.$(printf '%s' "$STATE" | cksum | cut -d' ' -f1)
fi
LOGS=$STATE/logs
SSHD_DIR=$STATE/sshd
SSHD_CONF=$SSHD_DIR/sshd_config
CLIENT_KEY=$STATE/client/id_ed25519
KNOWN_HOSTS=$STATE/known_hosts
SMB_DIR=$STATE/smb
SMB_CONF=$SMB_DIR/smb.conf
SMB_SHARE_DIR=$SHARED/smb-share
RS3_DIR=$STATE/rclone-s3
PG_DIR=$SHARED/pg
PG_DATA=$PG_DIR/data
NOTIFY_DIR=$STATE/notify
ENV_FILE=$STATE/env

usage() {
    echo "usage: ${0##*/} start|stop|status [$(printf '%s|' "${SERVERS[@]}" | sed 's/|$//')...]" >&2
    exit 2
}

# ------------------------------------------------------------------ privileges
if [[ $EUID -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || fo_die "must run as root (sshd and smbd log in a Unix user), and sudo is not installed"
    # Resolve the user's tools here: sudo's PATH and Python may differ.
    py=$(fo_python) || fo_die "python3 not found"
    rc=$(fo_find_rclone) || rc=""
    sudo_flags=()
    [[ -t 0 ]] || sudo_flags=(-n)
    exec sudo "${sudo_flags[@]}" -- env PATH="$PATH" \
        FILE_ORBIT_TEST_SERVERS_DIR="$STATE" FILE_ORBIT_PYTHON="$py" FILE_ORBIT_RCLONE="$rc" \
        PYTHONUSERBASE="$("$py" -m site --user-base)" FILE_ORBIT_TEST_READY_TRIES="$READY_TRIES" \
        FILE_ORBIT_TEST_NOTIFY_HTTP_PORT="$NOTIFY_HTTP_PORT" FILE_ORBIT_TEST_NOTIFY_SMTP_PORT="$SMTP_PORT" \
        FILE_ORBIT_TEST_NOTIFY_SMTPS_PORT="$SMTPS_PORT" \
        bash "$SCRIPT_DIR/${0##*/}" "$@"
fi

# ------------------------------------------------------------------ helpers
pidfile() { printf '%s/%s.pid\n' "$STATE" "$1"; }

# Text that the command line of each server's process contains: guards against
# a recycled pid in a stale pidfile.
cmd_pattern() {
    case $1 in
    sftp) printf '%s\n' "$SSHD_CONF" ;;
    smb) printf '%s\n' "$SMB_CONF" ;;
    moto) printf '%s\n' "moto.server -H $HOST -p $MOTO_PORT" ;;
    rclone-s3) printf '%s\n' "$RS3_DIR" ;;
    postgres) printf '%s\n' "$PG_DATA" ;;
    notify) printf '%s\n' "notify-receivers.py --dir $NOTIFY_DIR" ;;
    esac
}

# pid_matches PID PATTERN: the process exists and its command line has PATTERN.
pid_matches() {
    [[ $1 =~ ^[0-9]+$ ]] || return 1
    pid_alive "$1" || return 1
    tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$2"
}

# The pid of a server if it is running (per its pidfile), else fail.
running_pid() {
    local f pid
    f=$(pidfile "$1")
    [[ -s $f ]] || return 1
    pid=$(head -n 1 "$f")
    pid_matches "$pid" "$(cmd_pattern "$1")" || return 1
    printf '%s\n' "$pid"
}

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# Fail clearly when a port we need is taken by something that is not ours.
ensure_port_free() {
    local name=$1 port=$2
    if port_open "$port"; then
        local who=""
        command -v ss >/dev/null 2>&1 && who=$(ss -ltnpH "sport = :$port" 2>/dev/null || true)
        fo_die "$name: $HOST:$port is already in use by another process (not ours)${who:+:
$who}"
    fi
}

show_logs() {
    local f
    for f in "$@"; do
        [[ -s $f ]] || continue
        printf -- '----- last lines of %s -----\n' "$f" >&2
        tail -n 30 "$f" >&2
    done
}

# wait_ready NAME PID CHECK_FN LOG...: poll CHECK_FN until it succeeds; fail
# early if PID dies; bounded by READY_TRIES.
wait_ready() {
    local name=$1 pid=$2 check=$3 i
    shift 3
    for ((i = 0; i < READY_TRIES; i++)); do
        if "$check"; then return 0; fi
        if [[ -n $pid ]] && ! pid_alive "$pid"; then
            printf '%s: ERROR: %s exited during start-up\n' "$FO_PROG" "$name" >&2
            show_logs "$@"
            return 1
        fi
        sleep 0.25
    done
    printf '%s: ERROR: %s not ready after %s tries of 0.25 s\n' "$FO_PROG" "$name" "$READY_TRIES" >&2
    show_logs "$@"
    return 1
}

# pid_alive PID: the process exists and is not a zombie (a detached server's
# parent is PID 1, which may be slow to reap it, as in some containers).
pid_alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat%% *} != Z ]]
}

# kill_pid NAME PID: SIGTERM, bounded wait, then SIGKILL.
kill_pid() {
    local name=$1 pid=$2 i
    pid_alive "$pid" || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < STOP_TRIES * 4; i++)); do
        pid_alive "$pid" || return 0
        sleep 0.05
    done
    fo_warn "$name (pid $pid) ignored SIGTERM for $((STOP_TRIES / 4)) s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < STOP_TRIES; i++)); do
        pid_alive "$pid" || return 0
        sleep 0.25
    done
    fo_warn "$name (pid $pid) still exists after SIGKILL"
}

stop_by_pidfile() {
    local name=$1 pid
    if pid=$(running_pid "$name"); then
        kill_pid "$name" "$pid"
        fo_log "$name: stopped (pid $pid)"
    else
        fo_log "$name: not running"
    fi
    rm -f "$(pidfile "$name")"
}

# launch NAME LOG CMD...: start CMD detached in its own session, record its pid.
# (smbd is started with launch_nosetsid: without --no-process-group it calls
# setsid() itself and fails with "Failed to create session" if already a leader.)
launch() {
    local name=$1 log=$2
    shift 2
    setsid "$@" </dev/null >>"$log" 2>&1 &
    printf '%s\n' "$!" >"$(pidfile "$name")"
    LAUNCHED_PID=$!
}
launch_nosetsid() {
    local name=$1 log=$2
    shift 2
    "$@" </dev/null >>"$log" 2>&1 &
    printf '%s\n' "$!" >"$(pidfile "$name")"
    LAUNCHED_PID=$!
}

# run_as USER CMD...: run CMD as USER from a dir that USER can enter.
run_as() {
    local user=$1
    shift
    (cd "$SHARED" && runuser -u "$user" -- "$@")
}

# ------------------------------------------------------------------ test user
ensure_test_user() {
    if ! id -u "$TEST_USER" >/dev/null 2>&1; then
        useradd --create-home --shell /bin/bash --comment "File Orbit test user" "$TEST_USER"
        fo_log "user: created $TEST_USER"
    fi
    printf '%s:%s\n' "$TEST_USER" "$TEST_PASSWORD" | chpasswd
    TEST_HOME=$(getent passwd "$TEST_USER" | cut -d: -f6)
    if [[ ! -d $TEST_HOME ]]; then
        mkdir -p "$TEST_HOME"
        chown "$TEST_USER:" "$TEST_HOME"
    fi
    chmod 755 "$TEST_HOME" # sshd StrictModes: not group/world-writable
}

# ------------------------------------------------------------------ sftp (sshd)
SSHD_BIN=/usr/sbin/sshd

sftp_ready() {
    local keys
    keys=$(ssh-keyscan -T 2 -t ed25519 -p "$SFTP_PORT" "$HOST" 2>/dev/null) || return 1
    [[ -n $keys ]] || return 1
    printf '%s\n' "$keys" >"$KNOWN_HOSTS"
}

start_sftp() {
    [[ -x $SSHD_BIN ]] || fo_die "sftp: $SSHD_BIN not found (run scripts/install-test-deps.sh)"
    mkdir -p "$SSHD_DIR" "$(dirname "$CLIENT_KEY")"
    chmod 700 "$SSHD_DIR"
    [[ -s $SSHD_DIR/ssh_host_ed25519_key ]] ||
        ssh-keygen -q -t ed25519 -N '' -C "file-orbit-test-host" -f "$SSHD_DIR/ssh_host_ed25519_key"
    [[ -s $CLIENT_KEY ]] ||
        ssh-keygen -q -t ed25519 -N '' -C "$TEST_USER@file-orbit-test" -f "$CLIENT_KEY"

    # Key auth: add our public key to the user's authorized_keys (once).
    local ssh_dir=$TEST_HOME/.ssh pub
    pub=$(cat "$CLIENT_KEY.pub")
    mkdir -p "$ssh_dir"
    touch "$ssh_dir/authorized_keys"
    grep -qxF -- "$pub" "$ssh_dir/authorized_keys" || printf '%s\n' "$pub" >>"$ssh_dir/authorized_keys"
    chmod 700 "$ssh_dir"
    chmod 600 "$ssh_dir/authorized_keys"
    chown -R "$TEST_USER:" "$ssh_dir"

    # No ForceCommand: rclone may run md5sum/sha1sum over ssh (user has a shell).
    cat >"$SSHD_CONF" <<EOF
# Private sshd for File Orbit integration tests (scripts/test-servers.sh).
Port $SFTP_PORT
ListenAddress $HOST
HostKey $SSHD_DIR/ssh_host_ed25519_key
PidFile none
UsePAM no
PasswordAuthentication yes
PubkeyAuthentication yes
KbdInteractiveAuthentication no
PermitRootLogin no
AllowUsers $TEST_USER
AuthorizedKeysFile .ssh/authorized_keys
StrictModes yes
UseDNS no
PrintMotd no
Subsystem sftp internal-sftp
MaxStartups 100:30:200
MaxSessions 100
EOF
    mkdir -p /run/sshd # privilege-separation dir
    chmod 755 /run/sshd
    local out
    out=$("$SSHD_BIN" -t -f "$SSHD_CONF" 2>&1) || fo_die "sftp: sshd -t rejected $SSHD_CONF: $out"

    ensure_port_free sftp "$SFTP_PORT"
    : >"$LOGS/sshd.log"
    launch sftp "$LOGS/sshd.log" "$SSHD_BIN" -D -f "$SSHD_CONF" -E "$LOGS/sshd.log"
    wait_ready sftp "$LAUNCHED_PID" sftp_ready "$LOGS/sshd.log"
}

# ------------------------------------------------------------------ smb (smbd)
smb_ready() {
    smbclient -p "$SMB_PORT" "//$HOST/$SMB_SHARE" -U "$TEST_USER%$TEST_PASSWORD" -c ls >/dev/null 2>&1
}

start_smb() {
    command -v smbd >/dev/null 2>&1 || fo_die "smb: smbd not found (run scripts/install-test-deps.sh)"
    local d
    for d in private lock state cache run ncalrpc binddns; do mkdir -p "$SMB_DIR/$d"; done
    chmod 700 "$SMB_DIR/private"
    mkdir -p "$SMB_SHARE_DIR"
    chown "$TEST_USER:" "$SMB_SHARE_DIR"
    chmod 755 "$SMB_SHARE_DIR"
    run_as "$TEST_USER" test -w "$SMB_SHARE_DIR" ||
        fo_die "smb: user $TEST_USER cannot reach $SMB_SHARE_DIR (a parent dir is not traversable)"

    cat >"$SMB_CONF" <<EOF
# Private smbd for File Orbit integration tests (scripts/test-servers.sh).
[global]
    server role = standalone server
    workgroup = WORKGROUP
    netbios name = FOTEST
    interfaces = $HOST
    bind interfaces only = yes
    smb ports = $SMB_PORT
    disable netbios = yes
    server min protocol = SMB2_10
    ntlm auth = ntlmv2-only
    map to guest = never
    private dir = $SMB_DIR/private
    lock directory = $SMB_DIR/lock
    state directory = $SMB_DIR/state
    cache directory = $SMB_DIR/cache
    pid directory = $SMB_DIR/run
    ncalrpc dir = $SMB_DIR/ncalrpc
    binddns dir = $SMB_DIR/binddns
    passdb backend = tdbsam:$SMB_DIR/private/passdb.tdb
    usershare path =
    log file = $LOGS/smbd.log
    max log size = 0
    log level = 1
    load printers = no
    printing = bsd
    printcap name = /dev/null
    disable spoolss = yes

[$SMB_SHARE]
    path = $SMB_SHARE_DIR
    read only = no
    valid users = $TEST_USER
EOF
    local out
    out=$(testparm -s "$SMB_CONF" 2>&1 >/dev/null) || fo_die "smb: testparm rejected $SMB_CONF: $out"
    out=$(printf '%s\n%s\n' "$TEST_PASSWORD" "$TEST_PASSWORD" | smbpasswd -c "$SMB_CONF" -s -a "$TEST_USER" 2>&1) ||
        fo_die "smb: smbpasswd failed: $out"

    ensure_port_free smb "$SMB_PORT"
    : >"$LOGS/smbd.log"
    # NOT --no-process-group: with it smbd stays in our process group and on
    # SIGTERM signals that whole group (the caller included). Without it smbd
    # makes its own session, so it is not wrapped in setsid.
    launch_nosetsid smb "$LOGS/smbd.out" "$(command -v smbd)" --foreground --configfile="$SMB_CONF"
    wait_ready smb "$LAUNCHED_PID" smb_ready "$LOGS/smbd.log" "$LOGS/smbd.out"
}

stop_smb() {
    stop_by_pidfile smb
    # Listing shares makes smbd start samba-dcerpcd (and its rpcd_* helpers).
    local f=$SMB_DIR/run/samba-dcerpcd.pid pid
    if [[ -s $f ]]; then
        pid=$(head -n 1 "$f")
        if pid_matches "$pid" "samba-dcerpcd"; then
            kill_pid samba-dcerpcd "$pid"
            fo_log "smb: stopped samba-dcerpcd (pid $pid)"
        fi
        rm -f "$f"
    fi
}

# ------------------------------------------------------------------ moto
moto_ready() { curl -sf -o /dev/null --max-time 2 "http://$HOST:$MOTO_PORT/moto-api/"; }

start_moto() {
    local py
    py=$(fo_python) || fo_die "moto: python3 not found"
    "$py" -c 'import moto.server' 2>/dev/null || fo_die "moto: $py cannot import moto.server (run scripts/install-test-deps.sh)"
    ensure_port_free moto "$MOTO_PORT"
    : >"$LOGS/moto.log"
    launch moto "$LOGS/moto.log" "$py" -m moto.server -H "$HOST" -p "$MOTO_PORT"
    wait_ready moto "$LAUNCHED_PID" moto_ready "$LOGS/moto.log"
}

# ------------------------------------------------------------------ rclone serve s3
RCLONE=""
rs3_ready() { curl -s -o /dev/null --max-time 2 "http://$HOST:$RS3_PORT/"; }

start_rclone_s3() {
    RCLONE=$(fo_find_rclone) || fo_die "rclone-s3: rclone not found (run scripts/install-test-deps.sh)"
    mkdir -p "$RS3_DIR/$RS3_BUCKET"
    : >"$STATE/rclone.conf" # empty config: ignore any user rclone config
    ensure_port_free rclone-s3 "$RS3_PORT"
    : >"$LOGS/rclone-s3.log"
    launch rclone-s3 "$LOGS/rclone-s3.log" "$RCLONE" serve s3 "$RS3_DIR" \
        --addr "$HOST:$RS3_PORT" --auth-key "$RS3_KEY,$RS3_SECRET" --config "$STATE/rclone.conf"
    wait_ready rclone-s3 "$LAUNCHED_PID" rs3_ready "$LOGS/rclone-s3.log"
}

# ------------------------------------------------------------------ postgres
PG_BIN=""
pg_ready() { "$PG_BIN/pg_isready" -q -h "$HOST" -p "$PG_PORT" -t 2; }

start_postgres() {
    PG_BIN=$(fo_pg_bin) || fo_die "postgres: no /usr/lib/postgresql/*/bin/initdb (run scripts/install-test-deps.sh)"
    id -u postgres >/dev/null 2>&1 || fo_die "postgres: Unix user postgres missing"
    mkdir -p "$PG_DIR"
    chown postgres: "$PG_DIR"
    chmod 700 "$PG_DIR"
    run_as postgres test -w "$PG_DIR" ||
        fo_die "postgres: user postgres cannot reach $PG_DIR (a parent dir is not traversable)"

    if [[ ! -s $PG_DATA/PG_VERSION ]]; then
        rm -rf "$PG_DATA"
        printf '%s\n' "$PG_PASSWORD" >"$PG_DIR/pwfile"
        chown postgres: "$PG_DIR/pwfile"
        chmod 600 "$PG_DIR/pwfile"
        local out
        out=$(run_as postgres "$PG_BIN/initdb" -D "$PG_DATA" -U "$PG_USER" --pwfile="$PG_DIR/pwfile" \
            --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --no-locale --no-sync 2>&1) ||
            fo_die "postgres: initdb failed: $out"
        rm -f "$PG_DIR/pwfile"
        fo_log "postgres: initialised cluster in $PG_DATA"
    fi
    # A leftover postmaster.pid of a dead server would make pg_ctl refuse.
    if [[ -s $PG_DATA/postmaster.pid ]] && ! pid_matches "$(head -n 1 "$PG_DATA/postmaster.pid")" "$PG_DATA"; then
        rm -f "$PG_DATA/postmaster.pid"
    fi

    ensure_port_free postgres "$PG_PORT"
    # Test server: durability off for speed; unix socket in our own dir.
    if ! run_as postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_DIR/postgres.log" -w -t 30 \
        -o "-h $HOST -p $PG_PORT -k '$PG_DIR' -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
        start >/dev/null; then
        echo "$FO_PROG: ERROR: postgres: pg_ctl start failed" >&2
        show_logs "$PG_DIR/postgres.log"
        exit 1
    fi
    head -n 1 "$PG_DATA/postmaster.pid" >"$(pidfile postgres)"
    wait_ready postgres "$(head -n 1 "$PG_DATA/postmaster.pid")" pg_ready "$PG_DIR/postgres.log"
    ensure_pg_database
}

ensure_pg_database() {
    local psql=("$PG_BIN/psql" -X -q -h "$PG_DIR" -p "$PG_PORT" -U "$PG_USER" -d postgres -v ON_ERROR_STOP=1)
    if [[ -z $(run_as postgres "${psql[@]}" -tAc "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'") ]]; then
        run_as postgres "${psql[@]}" -c "CREATE DATABASE $PG_DB" >/dev/null
        fo_log "postgres: created database $PG_DB"
    fi
}

stop_postgres() {
    local pid
    if pid=$(running_pid postgres); then
        PG_BIN=$(fo_pg_bin) || true
        if [[ -z $PG_BIN ]] || ! run_as postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 30 stop >/dev/null 2>&1; then
            fo_warn "postgres: pg_ctl stop failed; stopping pid $pid"
            kill_pid postgres "$pid"
        fi
        fo_log "postgres: stopped (pid $pid)"
    else
        fo_log "postgres: not running"
    fi
    rm -f "$(pidfile postgres)"
}

# ------------------------------------------------------------------ notify (receivers)
# Ready: the HTTP receiver answers /health (it listens last, after both SMTP ports) and
# the SMTP port greets with 220.
notify_ready() {
    curl -sf -o /dev/null --max-time 2 "http://$HOST:$NOTIFY_HTTP_PORT/health" || return 1
    local banner
    banner=$( (exec 3<>"/dev/tcp/$HOST/$SMTP_PORT" && timeout 2 head -n 1 <&3) 2>/dev/null) || return 1
    [[ $banner == 220* ]]
}

start_notify() {
    local py
    py=$(fo_python) || fo_die "notify: python3 not found"
    "$py" -c 'import aiosmtpd, cryptography' 2>/dev/null ||
        fo_die "notify: $py cannot import aiosmtpd and cryptography (run scripts/install-test-deps.sh)"
    ensure_port_free notify "$NOTIFY_HTTP_PORT"
    ensure_port_free notify "$SMTP_PORT"
    ensure_port_free notify "$SMTPS_PORT"
    : >"$LOGS/notify.log"
    # The credentials go in the environment, not on the command line.
    launch notify "$LOGS/notify.log" env FILE_ORBIT_TEST_SMTP_USER="$SMTP_USER" \
        FILE_ORBIT_TEST_SMTP_PASSWORD="$SMTP_PASSWORD" FILE_ORBIT_TEST_WEBHOOK_SIGNING_KEY="$WEBHOOK_SIGNING_KEY" \
        "$py" "$SCRIPT_DIR/notify-receivers.py" --dir "$NOTIFY_DIR" --host "$HOST" \
        --http-port "$NOTIFY_HTTP_PORT" --smtp-port "$SMTP_PORT" --smtps-port "$SMTPS_PORT"
    wait_ready notify "$LAUNCHED_PID" notify_ready "$LOGS/notify.log"
}

# ------------------------------------------------------------------ per-server dispatch
ready_fn() {
    case $1 in
    sftp) echo sftp_ready ;;
    smb) echo smb_ready ;;
    moto) echo moto_ready ;;
    rclone-s3) echo rs3_ready ;;
    postgres) echo pg_ready ;;
    notify) echo notify_ready ;;
    esac
}

start_fn() {
    case $1 in
    sftp) echo start_sftp ;;
    smb) echo start_smb ;;
    moto) echo start_moto ;;
    rclone-s3) echo start_rclone_s3 ;;
    postgres) echo start_postgres ;;
    notify) echo start_notify ;;
    esac
}

stop_one() {
    case $1 in
    smb) stop_smb ;;
    postgres) stop_postgres ;;
    *) stop_by_pidfile "$1" ;;
    esac
}

# ------------------------------------------------------------------ env file
write_env() {
    local tmp=$ENV_FILE.tmp
    {
        echo "# Written by scripts/test-servers.sh start; source it before the integration tests."
        local kv
        for kv in \
            "SERVERS_DIR=$STATE" \
            "RCLONE=${RCLONE:-$(fo_find_rclone || true)}" \
            "SFTP_HOST=$HOST" \
            "SFTP_PORT=$SFTP_PORT" \
            "SFTP_USER=$TEST_USER" \
            "SFTP_PASSWORD=$TEST_PASSWORD" \
            "SFTP_KEY_FILE=$CLIENT_KEY" \
            "SFTP_PUBKEY_FILE=$CLIENT_KEY.pub" \
            "SFTP_KNOWN_HOSTS=$KNOWN_HOSTS" \
            "SFTP_HOME=$TEST_HOME" \
            "SMB_HOST=$HOST" \
            "SMB_PORT=$SMB_PORT" \
            "SMB_USER=$TEST_USER" \
            "SMB_PASSWORD=$TEST_PASSWORD" \
            "SMB_SHARE=$SMB_SHARE" \
            "SMB_SHARE_DIR=$SMB_SHARE_DIR" \
            "MOTO_ENDPOINT=http://$HOST:$MOTO_PORT" \
            "MOTO_REGION=$MOTO_REGION" \
            "MOTO_ACCESS_KEY_ID=$MOTO_KEY" \
            "MOTO_SECRET_ACCESS_KEY=$MOTO_SECRET" \
            "MOTO_ACCOUNT_ID=$MOTO_ACCOUNT" \
            "RCLONE_S3_ENDPOINT=http://$HOST:$RS3_PORT" \
            "RCLONE_S3_REGION=$MOTO_REGION" \
            "RCLONE_S3_ACCESS_KEY_ID=$RS3_KEY" \
            "RCLONE_S3_SECRET_ACCESS_KEY=$RS3_SECRET" \
            "RCLONE_S3_BUCKET=$RS3_BUCKET" \
            "RCLONE_S3_DIR=$RS3_DIR" \
            "POSTGRES_HOST=$HOST" \
            "POSTGRES_PORT=$PG_PORT" \
            "POSTGRES_USER=$PG_USER" \
            "POSTGRES_PASSWORD=$PG_PASSWORD" \
            "POSTGRES_DB=$PG_DB" \
            "POSTGRES_URL=postgres://$PG_USER:$PG_PASSWORD@$HOST:$PG_PORT/$PG_DB" \
            "NOTIFY_URL=http://$HOST:$NOTIFY_HTTP_PORT" \
            "NOTIFY_CA=$NOTIFY_DIR/ca.pem" \
            "SMTP_HOST=$HOST" \
            "SMTP_PORT=$SMTP_PORT" \
            "SMTPS_PORT=$SMTPS_PORT" \
            "SMTP_USER=$SMTP_USER" \
            "SMTP_PASSWORD=$SMTP_PASSWORD" \
            "WEBHOOK_SIGNING_KEY=$WEBHOOK_SIGNING_KEY" \
            "NSS_WRAPPER=$(fo_nss_wrapper || true)"; do
            printf 'export FILE_ORBIT_TEST_%s=%q\n' "${kv%%=*}" "${kv#*=}"
        done
    } >"$tmp"
    mv "$tmp" "$ENV_FILE"
}

# When re-run through sudo, give the invoking user the client-side files.
chown_client_files() {
    [[ -n ${SUDO_UID:-} && -n ${SUDO_GID:-} ]] || return 0
    chown "$SUDO_UID:$SUDO_GID" "$STATE" "$ENV_FILE" "$KNOWN_HOSTS" 2>/dev/null || true
    chown -R "$SUDO_UID:$SUDO_GID" "$(dirname "$CLIENT_KEY")" 2>/dev/null || true
}

# Seconds since a ${EPOCHREALTIME} value, one decimal.
elapsed_since() {
    local now=${EPOCHREALTIME/,/.}
    awk -v a="$1" -v b="$now" 'BEGIN { printf "%.1f", b - a }'
}

# ------------------------------------------------------------------ commands
cmd_start() {
    mkdir -p "$STATE" "$LOGS" "$SHARED"
    # Other users (fotest for the SMB share, postgres for its cluster) must be
    # able to traverse the state dir (or the shared dir that stands in for it).
    chmod 755 "$STATE" "$SHARED"
    rm -f "$ENV_FILE"
    ensure_test_user
    local name pid
    for name in "${SELECTED[@]}"; do
        if pid=$(running_pid "$name"); then
            if [[ $name == postgres ]]; then PG_BIN=$(fo_pg_bin) || true; fi
            if "$(ready_fn "$name")"; then
                fo_log "$name: already running (pid $pid)"
                continue
            fi
            fo_warn "$name: pid $pid is running but not answering; restarting it"
            stop_one "$name"
        fi
        rm -f "$(pidfile "$name")"
        local t0=${EPOCHREALTIME/,/.}
        "$(start_fn "$name")"
        fo_log "$name: started (pid $(running_pid "$name"), $(elapsed_since "$t0") s)"
    done
    write_env
    chown_client_files
    if [[ ${#SELECTED[@]} -eq ${#SERVERS[@]} ]]; then
        fo_log "all test servers up; source $ENV_FILE"
    else
        fo_log "${SELECTED[*]} up; source $ENV_FILE"
    fi
}

# The files tests wrote over SFTP (every test uses its own root in the test user's
# home) go with the servers, so runs do not pile them up; the home's dot files stay.
remove_sftp_test_files() {
    local home
    home=$(getent passwd "$TEST_USER" | cut -d: -f6) || return 0
    [[ -n $home && -d $home && $home != / ]] || return 0
    find "$home" -mindepth 1 -maxdepth 1 ! -name '.*' -exec rm -rf {} +
}

cmd_stop() {
    local name
    for name in "${SELECTED[@]}"; do stop_one "$name"; done
    [[ ${#SELECTED[@]} -eq ${#SERVERS[@]} ]] || return 0
    remove_sftp_test_files
    rm -f "$ENV_FILE"
}

cmd_status() {
    local name pid state all=0
    for name in "${SELECTED[@]}"; do
        if pid=$(running_pid "$name"); then
            if [[ $name == postgres ]]; then PG_BIN=$(fo_pg_bin) || true; fi
            if "$(ready_fn "$name")"; then state="running (pid $pid)"; else
                state="running (pid $pid) but NOT answering"
                all=3
            fi
        else
            state="stopped"
            all=3
        fi
        printf '%-10s %s\n' "$name" "$state"
    done
    return "$all"
}

[[ $# -ge 1 ]] || usage
cmd=$1
shift
# The servers to act on: those named, in SERVERS order, else all.
SELECTED=()
for name in "$@"; do
    [[ " ${SERVERS[*]} " == *" $name "* ]] || usage
done
for name in "${SERVERS[@]}"; do
    if [[ $# -eq 0 || " $* " == *" $name "* ]]; then SELECTED+=("$name"); fi
done
case $cmd in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
*) usage ;;
esac
