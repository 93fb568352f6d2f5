#!/usr/bin/env bash
# Which actuator can hold a download to a rate: the receive window
# (TCP_WINDOW_CLAMP, what rLEDBAT steers) or pacing the reads (what bits
# does, with short range requests)? Measured on a private test network (two
# namespaces joined by a veth pair, the server's egress shaped by tbf), one
# reader at a time, alone on the link, asked for a fraction of the link:
#
# - window: a socket with TCP_WINDOW_CLAMP set to the bandwidth-delay
#   product of the asked rate (rate x measured base round trip), read as
#   fast as possible;
# - reads: the same download read through a token bucket at the asked
#   rate, in ranges of 20 ms' worth.
#
# Prints, per asked rate, what each achieved. An actuator that cannot go
# under the link's rate on a short path is no actuator there.
#
# Needs root (ip netns, tc), nginx, python3. Traffic stays inside the
# namespaces this script creates. Environment: WC_RATE (tbf rate, default
# 80mbit), WC_QUEUE (default 100ms), WC_SECONDS (per measurement, default 5).
set -euo pipefail
export LC_ALL=C
rate=${WC_RATE:-80mbit}
queue=${WC_QUEUE:-100ms}
secs=${WC_SECONDS:-5}
die() { printf 'window-clamp: error: %s\n' "$*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (ip netns, tc)"
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$nginx_bin" ] || die "nginx not found"

id=$$
srv=bitswc-srv-$id cli=bitswc-cli-$id
work=$(mktemp -d -p /var/tmp bits-window-clamp.XXXXXX)
cleanup() {
    set +e
    [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null
    sleep 0.3
    ip netns del "$srv" 2>/dev/null
    ip netns del "$cli" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

ip netns add "$srv"
ip netns add "$cli"
ip link add "wcs$id" type veth peer name "wcc$id"
ip link set "wcs$id" netns "$srv"
ip link set "wcc$id" netns "$cli"
ip -n "$srv" addr add 10.232.0.1/24 dev "wcs$id"
ip -n "$cli" addr add 10.232.0.2/24 dev "wcc$id"
for ns in "$srv" "$cli"; do ip -n "$ns" link set lo up; done
ip -n "$srv" link set "wcs$id" up
ip -n "$cli" link set "wcc$id" up
ip netns exec "$srv" ethtool -K "wcs$id" tso off gso off gro off >/dev/null 2>&1 || true
ip netns exec "$cli" ethtool -K "wcc$id" tso off gso off gro off >/dev/null 2>&1 || true
tc -n "$srv" qdisc add dev "wcs$id" root tbf rate "$rate" burst 64kb latency "$queue"

mkdir -p "$work/data"
chmod 755 "$work" "$work/data"
truncate -s 4G "$work/data/big.bin"
cat > "$work/nginx.conf" <<EOF
daemon on;
pid $work/nginx.pid;
error_log $work/nginx.err warn;
events { worker_connections 64; }
http {
    access_log off; sendfile on; default_type application/octet-stream;
    client_body_temp_path $work/nb; proxy_temp_path $work/np;
    fastcgi_temp_path $work/nf; uwsgi_temp_path $work/nu; scgi_temp_path $work/ns;
    server { listen 10.232.0.1:8080; root $work/data; }
}
EOF
ip netns exec "$srv" "$nginx_bin" -c "$work/nginx.conf"
sleep 0.5

ip netns exec "$cli" python3 - "$rate" "$queue" "$secs" <<'PY'
import socket, sys, time

rate_arg, queue, secs = sys.argv[1], sys.argv[2], float(sys.argv[3])
units = {"kbit": 1e3 / 8, "mbit": 1e6 / 8, "gbit": 1e9 / 8}
link = next(float(rate_arg[: -len(u)]) * f for u, f in units.items() if rate_arg.endswith(u))
HOST, PORT, PATH = "10.232.0.1", 8080, "/big.bin"
TCP_WINDOW_CLAMP = getattr(socket, "TCP_WINDOW_CLAMP", 10)

def base_rtt():
    best = 1.0
    for _ in range(20):
        t = time.perf_counter()
        s = socket.create_connection((HOST, PORT))
        best = min(best, time.perf_counter() - t)
        s.close()
    return best

def request(s, start=None, end=None):
    rng = f"Range: bytes={start}-{end}\r\n" if start is not None else ""
    s.sendall(f"GET {PATH} HTTP/1.1\r\nHost: x\r\n{rng}\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    return head

def window(target, rtt):
    s = socket.socket()
    clamp = max(int(target * rtt), 1)
    s.setsockopt(socket.IPPROTO_TCP, TCP_WINDOW_CLAMP, clamp)
    s.connect((HOST, PORT))
    request(s)
    got, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < secs:
        got += len(s.recv(65536))
    s.close()
    return got / (time.perf_counter() - t0), clamp

def reads(target):
    s = socket.create_connection((HOST, PORT))
    chunk = max(int(target * 0.02), 16384)
    pos, got, t0 = 0, 0, time.perf_counter()
    while time.perf_counter() - t0 < secs:
        request(s, pos, pos + chunk - 1)
        left = chunk
        while left:
            n = len(s.recv(min(left, 65536)))
            left -= n
            got += n
        pos += chunk
        # the bucket: sleep until the bytes so far are due at the target
        due = t0 + got / target
        time.sleep(max(0.0, due - time.perf_counter()))
    s.close()
    return got / (time.perf_counter() - t0)

rtt = base_rtt()
print(f"\nlink: tbf {rate_arg}, queue up to {queue}; base round trip {rtt * 1e3:.2f} ms; {secs:.0f} s each\n")
print("| asked (share of the link) | TCP_WINDOW_CLAMP: clamp, achieved | paced reads: achieved |")
print("|---|---|---|")
for share in (0.05, 0.25, 0.5, 0.9):
    target = link * share
    w, clamp = window(target, rtt)
    r = reads(target)
    print(f"| {share:.2f} ({target / 1e6:.2f} MB/s) | {clamp} B: {w / 1e6:.2f} MB/s ({w / link:.2f}) | {r / 1e6:.2f} MB/s ({r / link:.2f}) |")
PY
