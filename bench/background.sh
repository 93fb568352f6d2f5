#!/usr/bin/env bash
# Does a background bits job use only idle bandwidth? Measured on a private
# test network: two network namespaces joined by a veth pair, the server
# side's egress shaped by tbf into a bottleneck with a queue (netem is not
# needed). A foreground download (curl) runs alone, then beside a Low bits
# job, beside a second curl (what plain TCP sharing gives) and beside a
# Foreground bits job (which competes like any download). Prints each
# download's rate and the foreground's share.
#
# Needs root (ip netns, tc), nginx, curl, and release builds of bits/bitsd.
# Traffic stays inside the namespaces this script creates.
#
# Environment: BG_RATE (tbf rate, default 40mbit), BG_QUEUE (tbf latency,
# default 150ms), BG_SECONDS (length of each measurement, default 15),
# BG_BIN_DIR (bits binaries, default target/release), BG_UPLOADS=0 (skip the
# upload cases).
set -euo pipefail
export LC_ALL=C
root=$(cd "$(dirname "$0")/.." && pwd)
rate=${BG_RATE:-40mbit}
queue=${BG_QUEUE:-150ms}
secs=${BG_SECONDS:-15}
bin=${BG_BIN_DIR:-${CARGO_TARGET_DIR:-$root/target}/release}
log() { printf '[background %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { printf 'background: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (ip netns, tc)"
for c in ip tc curl python3; do command -v "$c" >/dev/null || die "'$c' not found"; done
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$nginx_bin" ] || die "nginx not found (apt-get install nginx-light)"
[ -x "$bin/bits" ] && [ -x "$bin/bitsd" ] || die "no bits/bitsd in $bin (cargo build --release -p bits)"

id=$$
srv=bitsbg-srv-$id cli=bitsbg-cli-$id
work=$(mktemp -d -p /var/tmp bits-background.XXXXXX)
cleanup() {
    set +e
    if [ -n "${BG_KEEP_LOGS:-}" ]; then
        mkdir -p "$BG_KEEP_LOGS"
        for h in "$work"/home-*; do cp "$h/bitsd.log" "$BG_KEEP_LOGS/$(basename "$h").log" 2>/dev/null; done
    fi
    for h in "$work"/home-*; do
        [ -f "$h/bitsd.pid" ] && kill "$(tr -dc 0-9 < "$h/bitsd.pid")" 2>/dev/null
    done
    [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null
    [ -n "${serve_pid:-}" ] && kill "$serve_pid" 2>/dev/null
    sleep 0.5
    ip netns del "$srv" 2>/dev/null
    ip netns del "$cli" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

log "network: $cli <-> $srv, server egress: tbf rate $rate, queue up to $queue"
ip netns add "$srv"
ip netns add "$cli"
ip link add "veth-s$id" type veth peer name "veth-c$id"
ip link set "veth-s$id" netns "$srv"
ip link set "veth-c$id" netns "$cli"
ip -n "$srv" addr add 10.231.0.1/24 dev "veth-s$id"
ip -n "$cli" addr add 10.231.0.2/24 dev "veth-c$id"
ip -n "$srv" link set lo up
ip -n "$cli" link set lo up
ip -n "$srv" link set "veth-s$id" up
ip -n "$cli" link set "veth-c$id" up
# Segmentation offloads would hand tbf 64 KiB super-packets; shape real ones.
ip netns exec "$srv" ethtool -K "veth-s$id" tso off gso off gro off >/dev/null 2>&1 || true
ip netns exec "$cli" ethtool -K "veth-c$id" tso off gso off gro off >/dev/null 2>&1 || true
tc -n "$srv" qdisc add dev "veth-s$id" root tbf rate "$rate" burst 64kb latency "$queue"
# the same bottleneck on the way up, for the upload cases
tc -n "$cli" qdisc add dev "veth-c$id" root tbf rate "$rate" burst 64kb latency "$queue"

mkdir -p "$work/data" "$work/out"
# nginx workers run as an unprivileged user: let them read the data
chmod 755 "$work" "$work/data"
# Large enough that no download finishes within a measurement.
head -c $((1024 * 1024 * 1024)) /dev/zero > "$work/data/big1.bin"
cp --reflink=auto "$work/data/big1.bin" "$work/data/big2.bin"
cat > "$work/nginx.conf" <<EOF
daemon on;
pid $work/nginx.pid;
error_log $work/nginx.err warn;
events { worker_connections 256; }
http {
    access_log off; sendfile on; default_type application/octet-stream;
    client_body_temp_path $work/nb; proxy_temp_path $work/np;
    fastcgi_temp_path $work/nf; uwsgi_temp_path $work/nu; scgi_temp_path $work/ns;
    server { listen 10.231.0.1:8080; root $work/data; }
}
EOF
ip netns exec "$srv" "$nginx_bin" -c "$work/nginx.conf"
sleep 0.5
url=http://10.231.0.1:8080
mkdir -p "$work/up"
ip netns exec "$srv" "$bin/bits" serve "$work/up" --listen 10.231.0.1:8081 --upload --allow-overwrite \
    > "$work/serve.log" 2>&1 &
serve_pid=$!
up=http://10.231.0.1:8081
probe=$(ip netns exec "$cli" curl -s -o /dev/null -r 0-0 -w '%{http_code}' "$url/big1.bin" || true)
[ "$probe" = 206 ] || die "the server in $srv does not answer as expected (HTTP $probe); see $work/nginx.err"

# curl for $secs seconds; prints bytes/s
fg_curl() {
    ip netns exec "$cli" curl -s -o /dev/null --max-time "$secs" -w '%{speed_download}\n' "$url/$1" || true
}
# A bits job in its own home; prints its JobId
bits_job() { # name priority file
    local home=$work/home-$1
    mkdir -p "$home"
    BITS_HOME=$home BITS_LOG=${BG_LOG:-info} ip netns exec "$cli" "$bin/bits" start --async --priority "$2" \
        "$url/$3" "$work/out/$1-$3"
}
bits_bytes() { # name id
    BITS_HOME=$work/home-$1 "$bin/bits" info "$2" --json \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["BytesTransferred"])'
}
bits_stop() { # name id
    BITS_HOME=$work/home-$1 "$bin/bits" remove "$2" >/dev/null
    kill "$(tr -dc 0-9 < "$work/home-$1/bitsd.pid")"
    sleep 0.5
}
# Measures a bits job while CMD runs (default: sleep); stops the job; prints
# CMD's output and the job's rate in bytes/s. An upload's BytesTransferred
# moves by whole 4 MiB fragments (what the server acknowledged): its rate is
# coarse over short spans.
during() { # name id cmd...
    local name=$1 id=$2 b0 b1 t0 t1 out
    shift 2
    sleep 3 # let the job reach its pace first
    b0=$(bits_bytes "$name" "$id"); t0=$EPOCHREALTIME
    out=$("$@")
    b1=$(bits_bytes "$name" "$id"); t1=$EPOCHREALTIME
    bits_stop "$name" "$id"
    echo "$out $(python3 -c "print(($b1 - $b0) / ($t1 - $t0))")"
}

log "1/8 foreground curl alone"
alone=$(fg_curl big1.bin)
log "2/8 Low bits job alone"
read -r bg_alone < <(during bg-alone "$(bits_job bg-alone low big2.bin)" sleep "$secs")
log "3/8 curl beside a Low bits job"
read -r fg_low bg_low < <(during bg-low "$(bits_job bg-low low big2.bin)" fg_curl big1.bin)
log "4/8 curl beside a second curl"
ip netns exec "$cli" curl -s -o /dev/null --max-time $((secs + 6)) "$url/big2.bin" &
other=$!
sleep 3
fg_curl2=$(fg_curl big1.bin)
wait "$other" || true
log "5/8 curl beside a Foreground bits job"
read -r fg_fg bg_fg < <(during bg-fg "$(bits_job bg-fg foreground big2.bin)" fg_curl big1.bin)

# Uploads: curl PUT (to `bits serve --upload`) as the foreground.
fg_put() { # name on the server
    ip netns exec "$cli" curl -s -o /dev/null --max-time "$secs" -T "$work/data/big1.bin" \
        -w '%{speed_upload}\n' "$up/$1" || true
}
bits_up() { # name priority; prints the JobId
    local home=$work/home-$1
    mkdir -p "$home"
    BITS_HOME=$home BITS_LOG=${BG_LOG:-info} ip netns exec "$cli" "$bin/bits" start --async \
        --type upload --priority "$2" "$work/data/big2.bin" "$up/$1.bin"
}
up_alone=0 up_bg_alone=0 up_fg_low=0 up_bg_low=0
if [ "${BG_UPLOADS:-1}" != 0 ]; then
    log "6/8 foreground curl PUT alone"
    up_alone=$(fg_put fg-alone.bin)
    log "7/8 Low bits upload alone"
    read -r up_bg_alone < <(during up-alone "$(bits_up up-alone low)" sleep "$secs")
    log "8/8 curl PUT beside a Low bits upload"
    read -r up_fg_low up_bg_low < <(during up-low "$(bits_up up-low low)" fg_put fg-low.bin)
fi

python3 - "$rate" "$queue" "$secs" "$alone" "$bg_alone" "$fg_low" "$bg_low" "$fg_curl2" "$fg_fg" "$bg_fg" \
    "$up_alone" "$up_bg_alone" "$up_fg_low" "$up_bg_low" <<'PY'
import sys
rate, queue, secs = sys.argv[1:4]
alone, bg_alone, fg_low, bg_low, fg_curl2, fg_fg, bg_fg, up_alone, up_bg_alone, up_fg_low, up_bg_low = map(float, sys.argv[4:])
mb = lambda x: f"{x / 1e6:.2f} MB/s"
rows = [
    ("curl alone", mb(alone), "", "1.00"),
    ("Low bits job alone", "", mb(bg_alone), ""),
    ("curl + Low bits job", mb(fg_low), mb(bg_low), f"{fg_low / alone:.2f}"),
    ("curl + second curl", mb(fg_curl2), "(second curl)", f"{fg_curl2 / alone:.2f}"),
    ("curl + Foreground bits job", mb(fg_fg), mb(bg_fg), f"{fg_fg / alone:.2f}"),
]
if up_alone:
    rows += [
        ("upload: curl PUT alone", mb(up_alone), "", "1.00"),
        ("upload: Low bits upload alone", "", mb(up_bg_alone), ""),
        ("upload: curl PUT + Low bits upload", mb(up_fg_low), mb(up_bg_low), f"{up_fg_low / up_alone:.2f}"),
    ]
print(f"\nbottleneck: tbf {rate}, queue up to {queue}; {secs} s per measurement\n")
print("| case | foreground curl | bits | curl's share of its rate alone |")
print("|---|---:|---:|---:|")
for r in rows:
    print("| " + " | ".join(r) + " |")
PY
