#!/usr/bin/env bash
# Throughput and RTT through ocala versus the direct link, on this machine, in one run.
#
# Builds release binaries, makes two network namespaces joined by a veth pair, and measures
# iperf3 TCP throughput and ping RTT (1) over the veth link directly, (2) through ocala over
# one udp hop, plain and encrypted (the default), and (3) through userspace WireGuard
# (boringtun-cli + wg) when both are installed. Prints a table with the ratios to the direct link. Needs root, iproute2, iperf3.
# Everything it creates is removed on exit, also on failure.
set -euo pipefail
cd "$(dirname "$0")/../.."

SECS=${SECS:-5}
A=octp-a
B=octp-b
DIR=$(mktemp -d)
pids=()

cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    ip netns del "$A" 2>/dev/null || true
    ip netns del "$B" 2>/dev/null || true
    rm -rf "$DIR"
}
trap cleanup EXIT

cargo build --release -q -p ocala-mio --bins
BIN=target/release

ip netns add "$A"
ip netns add "$B"
ip -n "$A" link set lo up
ip -n "$B" link set lo up
ip link add veth-a netns "$A" type veth peer name veth-b netns "$B"
ip -n "$A" addr add 10.92.0.1/24 dev veth-a
ip -n "$B" addr add 10.92.0.2/24 dev veth-b
ip -n "$A" link set veth-a up
ip -n "$B" link set veth-b up

ip netns exec "$B" iperf3 -s -D --logfile "$DIR/iperf3.log"
sleep 0.3

# Mbit/s received, from iperf3's JSON.
throughput() {
    ip netns exec "$A" iperf3 -c "$1" -t "$SECS" -J |
        python3 -c 'import json,sys; print("%.0f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e6))'
}

# Average RTT in ms over 20 pings.
rtt() {
    ip netns exec "$A" ping -q -c 20 -i 0.05 "$1" | awk -F/ '/^rtt/ { print $5 }'
}

rows=()
measure() {
    local name=$1 target=$2
    local mbps ms
    mbps=$(throughput "$target")
    ms=$(rtt "$target")
    rows+=("$name|$mbps|$ms")
}

measure "direct veth" 10.92.0.2

"$BIN/ocala" ca init "$DIR/ca" >/dev/null
for host in a b; do
    peer=$([ "$host" = a ] && echo 10.92.0.2 || echo 10.92.0.1)
    peername=$([ "$host" = a ] && echo bob || echo alice)
    me=$([ "$host" = a ] && echo alice || echo bob)
    "$BIN/ocala" ca issue --ca "$DIR/ca" --name "$me.udp" --out "$DIR/$host-keys" >/dev/null
    cat > "$DIR/$host.toml" <<CONF
[[overlays]]
name = "udp"
module = "udp"
local_name = "$me"
address_book = { $peername = "$peer:4789" }

[security]
accept_plain = true

[daemon]
control_socket = "$DIR/$host.sock"
static_key_file = "$DIR/$host-keys/static.key"
certificate_file = "$DIR/$host-keys/cert"
trust_files = ["$DIR/ca/ca.pub"]
CONF
done
ip netns exec "$A" "$BIN/ocalad" --config "$DIR/a.toml" 2>"$DIR/a.log" & pids+=($!)
ip netns exec "$B" "$BIN/ocalad" --config "$DIR/b.toml" 2>"$DIR/b.log" & pids+=($!)
sleep 0.5
handle=$(ip netns exec "$A" dig +short @198.18.0.2 bob.udp_plain.oci A)
measure "ocala plain, one hop" "$handle"
handle=$(ip netns exec "$A" dig +short @198.18.0.2 bob.udp A)
measure "ocala encrypted, one hop" "$handle"

if command -v boringtun-cli >/dev/null && command -v wg >/dev/null; then
    umask 077
    for ns in "$A" "$B"; do wg genkey > "$DIR/$ns.key"; wg pubkey < "$DIR/$ns.key" > "$DIR/$ns.pub"; done
    for side in a b; do
        ns=$([ "$side" = a ] && echo "$A" || echo "$B")
        other=$([ "$side" = a ] && echo "$B" || echo "$A")
        addr=$([ "$side" = a ] && echo 10.93.0.1 || echo 10.93.0.2)
        endpoint=$([ "$side" = a ] && echo 10.92.0.2 || echo 10.92.0.1)
        peer_addr=$([ "$side" = a ] && echo 10.93.0.2 || echo 10.93.0.1)
        WG_SUDO=1 ip netns exec "$ns" boringtun-cli wgb --disable-drop-privileges --foreground 2>"$DIR/wg-$side.log" & pids+=($!)
        sleep 0.5
        ip netns exec "$ns" wg set wgb listen-port 51820 private-key "$DIR/$ns.key" \
            peer "$(cat "$DIR/$other.pub")" endpoint "$endpoint:51820" allowed-ips "$peer_addr/32"
        ip -n "$ns" addr add "$addr/24" dev wgb
        ip -n "$ns" link set wgb mtu 1420 up
    done
    measure "boringtun (userspace WireGuard)" 10.93.0.2
else
    echo "(boringtun-cli or wg not installed: skipping the userspace WireGuard comparison)"
fi

direct=${rows[0]#*|}
direct=${direct%%|*}
printf '%-34s %12s %10s %10s\n' path "Mbit/s" "x direct" "RTT ms"
for r in "${rows[@]}"; do
    IFS='|' read -r name mbps ms <<<"$r"
    ratio=$(python3 -c "print('%.2f' % ($mbps / $direct))")
    printf '%-34s %12s %10s %10s\n' "$name" "$mbps" "$ratio" "$ms"
done
