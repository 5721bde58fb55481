#!/usr/bin/env bash
# test-hosts.sh up|down|status — the hosts of the multi-host tests, as Linux network
# namespaces on this machine:
#
#   host A  the root namespace (the control plane; the loopback-only servers of
#           scripts/test-servers.sh, PostgreSQL among them)    fo-br0  10.231.0.1/24
#   host B  namespace fo-b, veth fo-b-br <-> eth0               eth0    10.231.0.2/24
#   host C  namespace fo-c, veth fo-c-br <-> eth0               eth0    10.231.0.3/24
#
# The bridge fo-br0 (in A) joins the three hosts; `lo` is up in B and C, so each host has
# its own 127.0.0.1. The addresses are private to these namespaces: B and C have no
# default route, nothing is NATed and IP forwarding is left as it is, so B and C reach A's
# 10.231.0.1 (and each other) and nothing else; a server bound to A's 127.0.0.1 (like
# PostgreSQL on 5433) is unreachable from them.
#
# `up` is idempotent (what exists is kept, what is missing is made) and proves the
# topology before it returns: B reaches a listener on 10.231.0.1, and neither a listener
# on A's 127.0.0.1 nor PostgreSQL's port answers from B (not on B's 127.0.0.1, not on
# 10.231.0.1). `down` kills what still runs in B and C and removes the namespaces, the
# veth pairs and the bridge (idempotent). `status` prints what exists; it exits 0 when
# everything is up, 3 otherwise.
#
# Needs root (network namespaces); as a normal user it re-runs itself with sudo.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
FO_PROG=test-hosts
# shellcheck source=scripts/test-common.sh
source "$SCRIPT_DIR/test-common.sh"

BRIDGE=fo-br0
PREFIX=24
ADDR_A=10.231.0.1
# Fixed MACs (locally administered): a bridge otherwise takes its lowest port's and a veth
# a random one, which change when a part is made again, and the hosts' ARP entries for
# each other would go stale (seen: B's SYN answered to A's old MAC).
MAC_A=02:fe:0a:e7:00:01
NAMESPACES=(fo-b fo-c)
declare -A ADDRESS=([fo-b]=10.231.0.2 [fo-c]=10.231.0.3)
declare -A MAC=([fo-b]=02:fe:0a:e7:00:02 [fo-c]=02:fe:0a:e7:00:03)
# The port PostgreSQL of scripts/test-servers.sh listens on (A's 127.0.0.1).
PG_PORT=5433
# A connection attempt from B gives up after this many seconds.
PROBE_SECS=2

usage() {
    echo "usage: ${0##*/} up|down|status" >&2
    exit 2
}

if [[ $EUID -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || fo_die "must run as root (network namespaces), and sudo is not installed"
    sudo_flags=()
    [[ -t 0 ]] || sudo_flags=(-n)
    exec sudo "${sudo_flags[@]}" -- env PATH="$PATH" bash "$SCRIPT_DIR/${0##*/}" "$@"
fi
command -v ip >/dev/null 2>&1 || fo_die "ip (iproute2) not found"

# The host-side end of namespace $1's veth pair (at most 15 characters).
host_veth() { printf '%s-br\n' "$1"; }

ns_exists() { [[ -e /run/netns/$1 ]]; }
link_exists() { ip link show dev "$1" >/dev/null 2>&1; }

# connects_from NS IP PORT: a TCP connection from inside NS to IP:PORT succeeds within
# PROBE_SECS.
connects_from() {
    ip netns exec "$1" timeout "$PROBE_SECS" bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$2" "$3" 2>/dev/null
}

make_bridge() {
    link_exists "$BRIDGE" || ip link add name "$BRIDGE" type bridge
    ip link set dev "$BRIDGE" address "$MAC_A"
    ip addr replace "$ADDR_A/$PREFIX" dev "$BRIDGE"
    ip link set dev "$BRIDGE" up
}

# make_host NS: the namespace, its veth pair (eth0 inside, <ns>-br on the bridge), its
# address and lo.
make_host() {
    local ns=$1 veth
    veth=$(host_veth "$ns")
    ns_exists "$ns" || ip netns add "$ns"
    if ! ip -n "$ns" link show dev eth0 >/dev/null 2>&1; then
        # A half-made pair (the host end without its peer in the namespace) is made again.
        link_exists "$veth" && ip link del dev "$veth"
        ip link add name "$veth" type veth peer name "$ns-tmp"
        ip link set dev "$ns-tmp" netns "$ns"
        ip -n "$ns" link set dev "$ns-tmp" name eth0
    fi
    ip link set dev "$veth" master "$BRIDGE"
    ip link set dev "$veth" up
    ip -n "$ns" link set dev eth0 address "${MAC[$ns]}"
    ip -n "$ns" addr replace "${ADDRESS[$ns]}/$PREFIX" dev eth0
    ip -n "$ns" link set dev eth0 up
    ip -n "$ns" link set dev lo up
}

# Proves the topology from B: it reaches a listener on A's 10.231.0.1, and not one on A's
# 127.0.0.1 nor PostgreSQL's port, by either address.
verify() {
    local py out err pid ports bridge_port loop_port i
    py=$(fo_python) || fo_die "python3 not found (it opens the probe listeners in A)"
    out=$(mktemp) err=$(mktemp)
    # Two listeners in A: one on the bridge address, one on loopback; each connection
    # accepted is printed with its peer. The process ends by itself after 30 s.
    "$py" - "$ADDR_A" >"$out" 2>"$err" <<'EOF' &
import select, socket, sys, time
bridge = socket.create_server((sys.argv[1], 0))
loop = socket.create_server(("127.0.0.1", 0))
print(bridge.getsockname()[1], loop.getsockname()[1], flush=True)
end = time.monotonic() + 30
while time.monotonic() < end:
    ready, _, _ = select.select([bridge, loop], [], [], 0.2)
    for sock in ready:
        conn, peer = sock.accept()
        print("accepted", sock.getsockname()[0], peer[0], flush=True)
        conn.close()
EOF
    pid=$!
    ports=
    for ((i = 0; i < 100; i++)); do
        ports=$(head -n 1 "$out")
        [[ -n $ports ]] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    [[ -n $ports ]] || {
        kill "$pid" 2>/dev/null || true
        fo_die "the probe listeners in A did not start: $(cat "$err")"
    }
    read -r bridge_port loop_port <<<"$ports"
    local failure=
    local b=${NAMESPACES[0]} ns
    for ns in "${NAMESPACES[@]}"; do
        connects_from "$ns" "$ADDR_A" "$bridge_port" ||
            failure+="$ns cannot reach A's listener on $ADDR_A:$bridge_port; "
    done
    connects_from "$b" 127.0.0.1 "$loop_port" &&
        failure+="$b reached A's loopback listener through its own 127.0.0.1:$loop_port; "
    connects_from "$b" "$ADDR_A" "$loop_port" &&
        failure+="$b reached A's loopback listener through $ADDR_A:$loop_port; "
    connects_from "$b" 127.0.0.1 "$PG_PORT" &&
        failure+="$b reaches 127.0.0.1:$PG_PORT (PostgreSQL's port) inside its namespace; "
    connects_from "$b" "$ADDR_A" "$PG_PORT" &&
        failure+="$b reaches PostgreSQL's port on $ADDR_A:$PG_PORT; "
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    grep -q "^accepted $ADDR_A ${ADDRESS[$b]}$" "$out" ||
        failure+="A's listener saw no connection from ${ADDRESS[$b]}; "
    grep -q "^accepted 127.0.0.1 " "$out" &&
        failure+="A's loopback listener accepted a connection from another host; "
    rm -f "$out" "$err"
    [[ -z $failure ]] || fo_die "the hosts are up but wrong: ${failure%; }"
    local pg="PostgreSQL's port $PG_PORT is not open in A either"
    (exec 3<>"/dev/tcp/127.0.0.1/$PG_PORT") 2>/dev/null && pg="PostgreSQL answers in A on 127.0.0.1:$PG_PORT"
    fo_log "verified: B and C reach $ADDR_A; A's loopback (127.0.0.1:$loop_port, $PG_PORT) does not answer from B ($pg)"
}

up() {
    make_bridge
    local ns
    for ns in "${NAMESPACES[@]}"; do make_host "$ns"; done
    verify
    status
}

down() {
    local ns pids
    for ns in "${NAMESPACES[@]}"; do
        if ns_exists "$ns"; then
            pids=$(ip netns pids "$ns" 2>/dev/null || true)
            if [[ -n $pids ]]; then
                fo_log "$ns: killing what still runs in it: $(echo "$pids" | tr '\n' ' ')"
                # shellcheck disable=SC2086 # one pid per word
                kill -KILL $pids 2>/dev/null || true
            fi
            ip netns del "$ns"
            fo_log "$ns: removed"
        fi
        # The pair goes with the namespace; a host end left behind goes here.
        link_exists "$(host_veth "$ns")" && ip link del dev "$(host_veth "$ns")"
    done
    if link_exists "$BRIDGE"; then
        ip link del dev "$BRIDGE"
        fo_log "$BRIDGE: removed"
    fi
    fo_log "hosts: down"
}

status() {
    local ok=0 ns addr name
    if link_exists "$BRIDGE"; then
        addr=$(ip -4 -o addr show dev "$BRIDGE" | awk '{print $4}' | paste -sd' ' || true)
        printf '%-8s A  bridge %s %s\n' "$BRIDGE" "${addr:-(no address)}" "$(ip -o link show dev "$BRIDGE" | grep -o 'state [A-Z]*')"
    else
        printf '%-8s A  missing\n' "$BRIDGE"
        ok=3
    fi
    for ns in "${NAMESPACES[@]}"; do
        if ! ns_exists "$ns"; then
            printf '%-8s    missing\n' "$ns"
            ok=3
            continue
        fi
        addr=$(ip -n "$ns" -4 -o addr show dev eth0 2>/dev/null | awk '{print $4}' | paste -sd' ' || true)
        name=${ns#fo-}
        printf '%-8s %s  eth0 %s, veth %s%s, %s process(es)\n' "$ns" "${name^^}" \
            "${addr:-(no address)}" "$(host_veth "$ns")" \
            "$(link_exists "$(host_veth "$ns")" || echo ' (missing)')" \
            "$(ip netns pids "$ns" 2>/dev/null | wc -l)"
        [[ $addr == "${ADDRESS[$ns]}/$PREFIX" ]] || ok=3
    done
    return "$ok"
}

[[ $# -eq 1 ]] || usage
case $1 in
up) up ;;
down) down ;;
status) status ;;
*) usage ;;
esac
