#!/usr/bin/env bash
# Throughput, latency and CPU through ocala versus the direct link and userspace WireGuard,
# on this machine, in one run.
#
# Builds release binaries and makes three network namespaces: A and B joined by a veth pair,
# and G joined to each of them by its own pair (the gateway's two sides). For each path it
# measures iperf3 TCP throughput with 1 and 4 streams, ping RTT idle and under load (pings
# during the 1-stream run), and the CPU time the tunnel daemons took per Gbit moved:
#   direct veth · ocala plain, one hop · ocala encrypted, one hop · ocala encrypted through
#   gateway G · encrypted one hop and through G with daemon.threads = 2 (a writer thread per
#   daemon) · encrypted with daemon.offload = false (one packet per system call) ·
#   encrypted with ChaCha20-Poly1305 (security.cipher; the other encrypted rows use the
#   default, which picks AES-256-GCM where the CPU runs AES in hardware) ·
#   boringtun-cli (userspace WireGuard, when it and wireguard-tools are installed) ·
#   plain, encrypted and boringtun again with each end's daemon pinned to a core of its own
#   (daemon.cpus, taskset for boringtun), as if each end were a host of its own.
# The kernel's default congestion control drives every row; the rows marked CUBIC use CUBIC
# (the usual default, which answers loss and ECN) to show the receive queue's CoDel at work:
# with it (the default), with ECN on, and with it off (limits.queue_target_us = 0).
# A second table has UDP sent as QUIC stacks send it, trains of datagrams in one send
# (UDP_SEGMENT), direct, through ocala plain and encrypted, and through boringtun: what the
# receiver got.
# Needs root, iproute2, iperf3, dig, python3. Everything it creates is removed on exit, also
# on failure. SECS sets the length of each iperf3 run (default 5).
set -euo pipefail
cd "$(dirname "$0")/../.."

SECS=${SECS:-5}
A=octp-a
B=octp-b
G=octp-g
DIR=$(mktemp -d)
pids=()
daemons=()

cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    # The iperf3 server detached itself (-D); it outlives its namespace unless killed.
    [ -s "$DIR/iperf3.pid" ] && kill "$(cat "$DIR/iperf3.pid")" 2>/dev/null || true
    wait 2>/dev/null || true
    for ns in "$A" "$B" "$G"; do ip netns del "$ns" 2>/dev/null || true; done
    rm -rf "$DIR"
}
trap cleanup EXIT

cargo build --release -q -p ocala-mio --bins
BIN=target/release

for ns in "$A" "$B" "$G"; do
    ip netns add "$ns"
    ip -n "$ns" link set lo up
done
pair() { # ns1 dev1 addr1 ns2 dev2 addr2
    ip link add "$2" netns "$1" type veth peer name "$5" netns "$4"
    ip -n "$1" addr add "$3/24" dev "$2"
    ip -n "$4" addr add "$6/24" dev "$5"
    ip -n "$1" link set "$2" up
    ip -n "$4" link set "$5" up
}
pair "$A" veth-ab 10.92.0.1 "$B" veth-ba 10.92.0.2
pair "$A" veth-ag 10.94.0.1 "$G" veth-ga 10.94.0.2
pair "$G" veth-gb 10.95.0.1 "$B" veth-bg 10.95.0.2

ip netns exec "$B" iperf3 -s -D -I "$DIR/iperf3.pid" --logfile "$DIR/iperf3.log"
sleep 0.3

# CPU ticks (user + system) the tunnel daemons have used so far.
ticks() {
    local sum=0 p
    for p in "${daemons[@]}"; do
        [ -r "/proc/$p/stat" ] || continue
        sum=$((sum + $(awk '{ print $14 + $15 }' "/proc/$p/stat")))
    done
    echo "$sum"
}

# Mbit/s received, from iperf3's JSON; with CC set, iperf3 uses that congestion control.
CC=
iperf() { # target streams
    ip netns exec "$A" iperf3 -c "$1" -P "$2" ${CC:+-C "$CC"} -t "$SECS" -J |
        python3 -c 'import json,sys; print("%.0f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e6))'
}

# Average RTT in ms over the given pings.
rtt() { # target count interval
    ip netns exec "$A" ping -q -c "$2" -i "$3" "$1" | awk -F/ '/^rtt/ { print $5 }'
}

rows=()
measure() { # name target
    local name=$1 target=$2 idle loaded one four t0 t1 cpu
    idle=$(rtt "$target" 20 0.05)
    rtt "$target" $((SECS * 10 - 10)) 0.1 >"$DIR/loaded" &
    local ping=$!
    t0=$(ticks)
    one=$(iperf "$target" 1)
    t1=$(ticks)
    wait "$ping"
    loaded=$(cat "$DIR/loaded")
    four=$(iperf "$target" 4)
    # CPU seconds of the daemons per Gbit moved (= cores busy per Gbit/s).
    cpu=$(python3 -c "print('-' if $t1 == $t0 else '%.2f' % (($t1 - $t0) / 100 / ($one * $SECS / 1000)))")
    rows+=("$name|$one|$four|$idle|$loaded|$cpu")
}

# UDP as QUIC stacks send it: each send a train of 40 datagrams of 1200 B (UDP_SEGMENT), the
# receiver reading trains (UDP_GRO); the Mbit/s the receiver got.
UDP_SEND='
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_UDP, 103, 1200)
train, end = b"q" * 1200 * 40, time.time() + float(sys.argv[2])
while time.time() < end:
    try:
        s.sendto(train, (sys.argv[1], 7000))
    except OSError:
        pass
'
UDP_RECV='
import socket, time
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
s.setsockopt(socket.IPPROTO_UDP, 104, 1)
s.bind(("::", 7000))
s.settimeout(2)
buf, total, first, last = bytearray(65536), 0, 0.0, 0.0
try:
    while True:
        total += s.recv_into(buf)
        last = time.time()
        first = first or last
except socket.timeout:
    pass
print("%.0f" % (total * 8 / (last - first) / 1e6 if last > first else 0))
'
udp_rows=()
udp_measure() { # name target
    ip netns exec "$B" python3 -c "$UDP_RECV" >"$DIR/udp" &
    local receiver=$!
    sleep 0.3
    ip netns exec "$A" python3 -c "$UDP_SEND" "$2" "$SECS"
    wait "$receiver"
    udp_rows+=("$1|$(cat "$DIR/udp")")
}

measure "direct veth" 10.92.0.2
udp_measure "direct veth" 10.92.0.2

"$BIN/ocala" ca init "$DIR/ca" >/dev/null
for me in alice bob gw; do
    "$BIN/ocala" ca issue --ca "$DIR/ca" --name "$me.udp" --out "$DIR/$me-keys" >/dev/null
done
write_config() { # name gateway offload address-book threads cpus
    cat >"$DIR/$1.toml" <<CONF
gateway = $2

[[overlays]]
name = "udp"
module = "udp"
local_name = "$1"
address_book = { $4 }

[security]
accept_plain = true
cipher = "$CIPHER"

[daemon]
offload = $3
threads = $5
cpus = [$6]
control_socket = "$DIR/$1.sock"
static_key_file = "$DIR/$1-keys/static.key"
certificate_file = "$DIR/$1-keys/cert"
trust_files = ["$DIR/ca/ca.pub"]

[limits]
queue_target_us = $QUEUE_TARGET
CONF
}
QUEUE_TARGET=500
CIPHER=auto
# With PIN=1 alice's daemon runs on CPU 0 and bob's on CPU 1 (the gateway's where it may).
PIN=
start_ocala() { # offload threads
    local ca= cb=
    [ -n "$PIN" ] && ca=0 cb=1
    write_config alice false "$1" 'bob = "10.92.0.2:4789", gw = "10.94.0.2:4789"' "$2" "$ca"
    write_config bob false "$1" 'alice = "10.92.0.1:4789", gw = "10.95.0.1:4789"' "$2" "$cb"
    write_config gw true "$1" 'alice = "10.94.0.1:4789", bob = "10.95.0.2:4789"' "$2" ""
    daemons=()
    local ns me
    for me in alice bob gw; do
        ns=$A
        [ "$me" = bob ] && ns=$B
        [ "$me" = gw ] && ns=$G
        ip netns exec "$ns" "$BIN/ocalad" --config "$DIR/$me.toml" 2>"$DIR/$me.log" &
        pids+=($!)
        daemons+=($!)
    done
    sleep 0.5
}
stop_ocala() {
    kill "${daemons[@]}"
    wait "${daemons[@]}" 2>/dev/null || true
    daemons=()
}
handle() { ip netns exec "$A" dig +short @198.18.0.2 "$1" A; }

start_ocala true 1
measure "ocala plain, one hop" "$(handle bob.udp_plain.oci)"
measure "ocala encrypted, one hop" "$(handle bob.udp)"
measure "ocala encrypted, via gateway" "$(handle bob.udp_gw.udp)"
CC=cubic measure "ocala encrypted, CUBIC" "$(handle bob.udp)"
udp_measure "ocala plain, one hop" "$(handle bob.udp_plain.oci)"
udp_measure "ocala encrypted, one hop" "$(handle bob.udp)"
ip netns exec "$A" sysctl -q net.ipv4.tcp_ecn=1
CC=cubic measure "ocala encrypted, CUBIC + ECN" "$(handle bob.udp)"
ip netns exec "$A" sysctl -q net.ipv4.tcp_ecn=2
stop_ocala
QUEUE_TARGET=0 start_ocala true 1
CC=cubic measure "ocala enc., CUBIC, CoDel off" "$(handle bob.udp)"
stop_ocala
start_ocala true 2
measure "ocala encrypted, 2 threads" "$(handle bob.udp)"
measure "ocala enc. via gw, 2 threads" "$(handle bob.udp_gw.udp)"
stop_ocala
start_ocala false 1
measure "ocala encrypted, offload off" "$(handle bob.udp)"
stop_ocala
CIPHER=chacha20-poly1305 start_ocala true 1
measure "ocala encrypted, ChaCha20" "$(handle bob.udp)"
stop_ocala
CORES=$(nproc)
if [ "$CORES" -ge 2 ]; then
    PIN=1 start_ocala true 1
    measure "ocala plain, pinned" "$(handle bob.udp_plain.oci)"
    measure "ocala encrypted, pinned" "$(handle bob.udp)"
    stop_ocala
fi

if command -v boringtun-cli >/dev/null && command -v wg >/dev/null; then
    umask 077
    for ns in "$A" "$B"; do
        wg genkey >"$DIR/$ns.key"
        wg pubkey <"$DIR/$ns.key" >"$DIR/$ns.pub"
    done
    for side in a b; do
        ns=$([ "$side" = a ] && echo "$A" || echo "$B")
        other=$([ "$side" = a ] && echo "$B" || echo "$A")
        addr=$([ "$side" = a ] && echo 10.93.0.1 || echo 10.93.0.2)
        endpoint=$([ "$side" = a ] && echo 10.92.0.2 || echo 10.92.0.1)
        peer_addr=$([ "$side" = a ] && echo 10.93.0.2 || echo 10.93.0.1)
        WG_SUDO=1 ip netns exec "$ns" boringtun-cli wgb --disable-drop-privileges --foreground 2>"$DIR/wg-$side.log" &
        pids+=($!)
        daemons+=($!)
        sleep 0.5
        ip netns exec "$ns" wg set wgb listen-port 51820 private-key "$DIR/$ns.key" \
            peer "$(cat "$DIR/$other.pub")" endpoint "$endpoint:51820" allowed-ips "$peer_addr/32"
        ip -n "$ns" addr add "$addr/24" dev wgb
        ip -n "$ns" link set wgb mtu 1420 up
    done
    measure "boringtun (userspace WireGuard)" 10.93.0.2
    udp_measure "boringtun (userspace WireGuard)" 10.93.0.2
    CC=cubic measure "boringtun, CUBIC" 10.93.0.2
    if [ "$CORES" -ge 2 ]; then
        # Every thread of A's boringtun on CPU 0, of B's on CPU 1.
        taskset -a -p -c 0 "${daemons[0]}" >/dev/null
        taskset -a -p -c 1 "${daemons[1]}" >/dev/null
        measure "boringtun, pinned" 10.93.0.2
    fi
else
    echo "(boringtun-cli or wg not installed: skipping the userspace WireGuard comparison)"
fi

direct=${rows[0]#*|}
direct=${direct%%|*}
printf '%-32s %9s %9s %8s %9s %11s %10s\n' path "Mbit/s" "4 streams" "x direct" "RTT idle" "RTT loaded" "CPU s/Gbit"
for r in "${rows[@]}"; do
    IFS='|' read -r name one four idle loaded cpu <<<"$r"
    ratio=$(python3 -c "print('%.2f' % ($one / $direct))")
    printf '%-32s %9s %9s %8s %9s %11s %10s\n' "$name" "$one" "$four" "$ratio" "$idle" "$loaded" "$cpu"
done
echo
printf '%-32s %9s\n' "UDP, 40-datagram trains" "Mbit/s"
for r in "${udp_rows[@]}"; do
    IFS='|' read -r name mbit <<<"$r"
    printf '%-32s %9s\n' "$name" "$mbit"
done
