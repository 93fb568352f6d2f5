#!/usr/bin/env bash
# Does a background bits job use only idle bandwidth, and does it still fill
# a link nobody else uses? One run measures, on a private test network (two
# network namespaces joined by a veth pair, the server side's egress shaped
# by tbf into a bottleneck with a queue; netem is not needed):
#
# - on each shaped link (BG_LINKS): a foreground curl alone; a Foreground
#   bits job alone; a Low bits job alone (the Low/Foreground ratio is what
#   background costs on an idle link); curl beside a Low job (what curl
#   keeps), and how long the Low job takes to fall under 10 % of the link
#   once curl starts; and for reference curl beside a second curl (plain TCP
#   sharing) and beside `curl --limit-rate` at half the link (a fixed cap);
# - loopback, no bottleneck: the wall time of a complete 1 GiB download,
#   `bits start --priority low` against `bits start` (Foreground), from
#   `bits serve`; what the pace costs where the path is never the limit;
# - loopback from a server that caps each connection (bench/capped-server.py,
#   BG_CAP_RATE; nginx's limit_rate would not do: it starts a fresh
#   allowance with every request, and a paced job asks for many short
#   ranges on one connection): a Low job alone against a Foreground job
#   alone, where the server, not the path, sets the rate, so the pace must
#   not hold back.
#
# It prints a summary table against the targets, then the figures behind it.
#
# Needs root (ip netns, tc), nginx, curl, python3, ss, and release builds of
# bits/bitsd. All traffic stays inside the namespaces this script creates
# (the loopback cases use the server namespace's own lo).
#
# Environment:
#   BG_LINKS      shaped links, "RATE/QUEUE ..." in tc units (tbf rate and
#                 latency); default "10mbit/100ms 80mbit/100ms 1gbit/20ms"
#   BG_CASES      a subset of "links loopback capped" (default all three)
#   BG_SECONDS    length of each measurement, whole seconds (default 10)
#   BG_WARMUP     seconds a job or the other curl runs before a measurement
#                 starts, so it is at its pace (default 3)
#   BG_LOOP_MIB   the loopback file (default 1024); BG_LOOP_RUNS runs of each
#                 priority, interleaved, median taken (default 3); a run
#                 still going after BG_LOOP_TIMEOUT s (30) is cut short and
#                 counts with what it moved
#   BG_CAP_RATE   the capped server's per-connection limit, bytes/s; default
#                 4000000 (4 MB/s)
#   BG_UPLOADS=1  also the upload cases on each link (curl PUT alone, a Low
#                 bits upload alone, the two together); default off
#   BG_CC         TCP congestion control on the shaped path (e.g. cubic), set
#                 by route; default: the host's, which namespaces inherit
#   BG_LOG        bitsd log level (default info; debug logs each pace sample:
#                 "pace" with rtt_us and rate); BG_KEEP_LOGS=DIR keeps the
#                 daemons' logs and the reaction cases' samples (ss-RATE:
#                 "time bytes" of the job's flow, taken every BG_POLL s, 0.025)
#   BG_BIN_DIR    bits binaries (default target/release)
# A full run with the defaults takes about 6 minutes.
set -euo pipefail
shopt -s inherit_errexit
export LC_ALL=C
root=$(cd "$(dirname "$0")/.." && pwd)
links=${BG_LINKS:-10mbit/100ms 80mbit/100ms 1gbit/20ms}
cases=${BG_CASES:-links loopback capped}
secs=${BG_SECONDS:-10}
warm=${BG_WARMUP:-3}
loop_mib=${BG_LOOP_MIB:-1024}
loop_runs=${BG_LOOP_RUNS:-3}
loop_timeout=${BG_LOOP_TIMEOUT:-30}
cap_rate=${BG_CAP_RATE:-4000000}
uploads=${BG_UPLOADS:-0}
loglevel=${BG_LOG:-info}
bin=${BG_BIN_DIR:-${CARGO_TARGET_DIR:-$root/target}/release}
log() { printf '[background %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { printf 'background: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (ip netns, tc)"
for c in ip tc ss curl python3; do command -v "$c" >/dev/null || die "'$c' not found"; done
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$nginx_bin" ] || die "nginx not found (apt-get install nginx-light)"
[ -x "$bin/bits" ] && [ -x "$bin/bitsd" ] || die "no bits/bitsd in $bin (cargo build --release -p bits)"
for v in BG_SECONDS="$secs" BG_WARMUP="$warm" BG_LOOP_MIB="$loop_mib" BG_LOOP_RUNS="$loop_runs" \
    BG_LOOP_TIMEOUT="$loop_timeout" BG_CAP_RATE="$cap_rate"; do
    [[ ${v#*=} =~ ^[1-9][0-9]*$ ]] || die "$v: want a whole number above 0"
done
for c in $cases; do
    case $c in links | loopback | capped) ;; *) die "BG_CASES: unknown case '$c' (links, loopback, capped)" ;; esac
done
has_case() { [[ " $cases " == *" $1 "* ]]; }

# tc's units (SI: 1mbit = 10^6 bit/s) to bytes per second.
bytes_per_s() {
    python3 - "$1" <<'PY' || die "link rate '$1': want a number with bit, kbit, mbit or gbit"
import re, sys
m = re.fullmatch(r"(\d+(?:\.\d+)?)(bit|kbit|mbit|gbit)", sys.argv[1].lower())
if not m:
    sys.exit(1)
print(int(float(m[1]) * {"bit": 1, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9}[m[2]] / 8))
PY
}
for spec in $links; do
    [[ $spec == */* ]] || die "BG_LINKS: '$spec' is not RATE/QUEUE (e.g. 10mbit/100ms)"
    bytes_per_s "${spec%%/*}" >/dev/null
done

id=$$
srv=bitsbg-srv-$id cli=bitsbg-cli-$id
work=$(mktemp -d -p /var/tmp bits-background.XXXXXX)
results=$work/results
: > "$results"
cleanup() {
    set +e
    [ -n "${poll_pid:-}" ] && kill "$poll_pid" 2>/dev/null
    if [ -n "${BG_KEEP_LOGS:-}" ]; then
        mkdir -p "$BG_KEEP_LOGS"
        for h in "$work"/home-*; do cp "$h/bitsd.log" "$BG_KEEP_LOGS/$(basename "$h").log" 2>/dev/null; done
        cp "$work"/ss-* "$BG_KEEP_LOGS/" 2>/dev/null
    fi
    for h in "$work"/home-*; do
        [ -f "$h/bitsd.pid" ] && kill "$(tr -dc 0-9 < "$h/bitsd.pid")" 2>/dev/null
    done
    [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null
    [ -n "${serve_pid:-}" ] && kill "$serve_pid" 2>/dev/null
    [ -n "${loop_pid:-}" ] && kill "$loop_pid" 2>/dev/null
    [ -n "${cap_pid:-}" ] && kill "$cap_pid" 2>/dev/null
    sleep 0.5
    ip netns del "$srv" 2>/dev/null
    ip netns del "$cli" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Not for `&`: a function in the background is a subshell, and $! would be
# its pid, not the command's (ip netns exec execs the command itself).
in_srv() { ip netns exec "$srv" "$@"; }
in_cli() { ip netns exec "$cli" "$@"; }
put() { printf '%s=%s\n' "$1" "$2" >> "$results"; }

log "network: $cli <-> $srv; work dir $work"
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
in_srv ethtool -K "veth-s$id" tso off gso off gro off >/dev/null 2>&1 || true
in_cli ethtool -K "veth-c$id" tso off gso off gro off >/dev/null 2>&1 || true
# The server side sends the downloads: its congestion control shapes them.
if [ -n "${BG_CC:-}" ]; then
    # The sysctl in a namespace may only pick from the host's
    # tcp_allowed_congestion_control; a route's congctl has no such limit
    # and changes nothing outside the namespaces.
    ip -n "$srv" route replace 10.231.0.0/24 dev "veth-s$id" proto kernel scope link src 10.231.0.1 \
        congctl "$BG_CC" || die "BG_CC=$BG_CC: not available here (see net.ipv4.tcp_available_congestion_control)"
    ip -n "$cli" route replace 10.231.0.0/24 dev "veth-c$id" proto kernel scope link src 10.231.0.2 \
        congctl "$BG_CC"
    put cc "$BG_CC (route congctl; the loopback cases keep $(in_srv sysctl -n net.ipv4.tcp_congestion_control))"
else
    put cc "$(in_srv sysctl -n net.ipv4.tcp_congestion_control)"
fi

mkdir -p "$work/data" "$work/out"
# nginx workers run as an unprivileged user: let them read the data
chmod 755 "$work" "$work/data"
# Sparse, so no disk space goes to them: large enough that no download on a
# shaped link or from the capped server finishes within a measurement.
truncate -s 16G "$work/data/big1.bin" "$work/data/big2.bin"
# The loopback file is read whole, so make it real data (in the page cache).
if has_case loopback; then
    head -c $((loop_mib * 1024 * 1024)) /dev/zero > "$work/data/loop.bin"
fi
cat > "$work/nginx.conf" <<EOF
daemon on;
pid $work/nginx.pid;
error_log $work/nginx.err warn;
events { worker_connections 256; }
http {
    access_log off; sendfile on; default_type application/octet-stream;
    client_body_temp_path $work/nb; proxy_temp_path $work/np;
    fastcgi_temp_path $work/nf; uwsgi_temp_path $work/nu; scgi_temp_path $work/ns;
    # bits on 8080, the foreground curl on 8082: the server side's sockets
    # then tell the two flows apart (the reaction-time case counts 8080's)
    server { listen 10.231.0.1:8080; listen 10.231.0.1:8082; root $work/data; }
}
EOF
in_srv "$nginx_bin" -c "$work/nginx.conf" || die "nginx did not start; see $work/nginx.err"
sleep 0.5
url=http://10.231.0.1:8080
curl_url=http://10.231.0.1:8082/big1.bin
probe=$(in_cli curl -s -o /dev/null -r 0-0 -w '%{http_code}' "$url/big1.bin" || true)
[ "$probe" = 206 ] || die "the server in $srv does not answer as expected (HTTP $probe); see $work/nginx.err"
if [ "$uploads" != 0 ]; then
    mkdir -p "$work/up"
    truncate -s 4G "$work/data/up.bin"
    ip netns exec "$srv" "$bin/bits" serve "$work/up" --listen 10.231.0.1:8081 --upload --allow-overwrite \
        > "$work/serve.log" 2>&1 &
    serve_pid=$!
fi
up=http://10.231.0.1:8081

# Counts what the server has sent on PORT (bytes_acked of each established
# socket, summed; sockets come and go, so each is followed by its peer
# address and what a gone one had reached stays in the total). Writes
# "time bytes" every INTERVAL s until SIGTERM. Runs in the server namespace:
# no nft/iptables needed, and the bits flow and curl's are on other ports.
cat > "$work/sspoll.py" <<'PY'
import re, signal, subprocess, sys, time
port, out, interval = sys.argv[1], sys.argv[2], float(sys.argv[3])
acked = re.compile(r"\bbytes_acked:(\d+)")
last, gone, seen_cc = {}, 0, False
running = True
def stop(*_):
    global running
    running = False
signal.signal(signal.SIGTERM, stop)
with open(out, "w", buffering=1) as f:
    while running:
        t0 = time.time()
        text = subprocess.run(["ss", "-tinH", "state", "established", f"( sport = :{port} )"],
                              capture_output=True, text=True).stdout
        t1 = time.time()
        now, peer = {}, None
        for line in text.splitlines():
            if line[:1].isspace():  # the info line under a socket's line
                m = acked.search(line)
                if peer and m:
                    now[peer] = int(m[1])
                    if not seen_cc and int(m[1]) > 0:  # the congestion control in use
                        seen_cc = True
                        with open(out + ".cc", "w") as c:
                            c.write(line.split()[0] + "\n")
            elif line.strip():
                peer = line.split()[-1]
        for p, b in last.items():
            if p not in now or now[p] < b:  # closed, or a new socket on the same port
                gone += b
        last = now
        f.write(f"{(t0 + t1) / 2:.4f} {gone + sum(now.values())}\n")
        time.sleep(max(0.0, interval - (time.time() - t0)))
PY

# A foreground curl for $secs seconds on 8082; prints bytes/s
fg_curl() {
    in_cli curl -s -o /dev/null --max-time "$secs" -w '%{speed_download}\n' "$curl_url" || true
}
# The same, noting first when it starts (for the reaction time)
fg_curl_marked() { # file
    echo "$EPOCHREALTIME" > "$1"
    fg_curl
}
# A bits job in its own home (so its own daemon); prints its JobId
bits_job() { # name netns priority url
    local home=$work/home-$1
    mkdir -p "$home"
    BITS_HOME=$home BITS_LOG=$loglevel ip netns exec "$2" "$bin/bits" start --async --priority "$3" \
        "$4" "$work/out/$1.bin"
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
    [ -n "$id" ] || die "bits job $name did not start (see $work/home-$name/bitsd.log)"
    sleep "$warm" # let the job reach its pace first
    b0=$(bits_bytes "$name" "$id"); t0=$EPOCHREALTIME
    out=$("$@")
    b1=$(bits_bytes "$name" "$id"); t1=$EPOCHREALTIME
    bits_stop "$name" "$id"
    echo "$out $(python3 -c "print(($b1 - $b0) / ($t1 - $t0))")"
}
# curl on 8082 beside another curl on 8080 (started $warm s earlier, with
# ARGS); prints the foreground's bytes/s
beside_curl() { # args for the other curl...
    local other v
    ip netns exec "$cli" curl -s -o /dev/null --max-time $((warm + secs + 5)) "$@" "$url/big2.bin" &
    other=$!
    sleep "$warm"
    v=$(fg_curl)
    kill "$other" 2>/dev/null || true
    wait "$other" 2>/dev/null || true
    echo "$v"
}
# Uploads: curl PUT (to `bits serve --upload`) as the foreground.
fg_put() { # name on the server
    in_cli curl -s -o /dev/null --max-time "$secs" -T "$work/data/up.bin" \
        -w '%{speed_upload}\n' "$up/$1" || true
}
bits_up() { # name priority; prints the JobId
    local home=$work/home-$1
    mkdir -p "$home"
    BITS_HOME=$home BITS_LOG=$loglevel in_cli "$bin/bits" start --async \
        --type upload --priority "$2" "$work/data/up.bin" "$up/$1.bin"
}

run_link() { # RATE/QUEUE
    local rate=${1%%/*} queue=${1#*/} bps burst k v c b
    bps=$(bytes_per_s "$rate")
    # At least 64 KiB, and 2 ms' worth on a fast link (1 Gbit/s refills
    # 64 KiB in half a millisecond, shorter than the timer can be trusted).
    burst=$((bps / 500 > 65536 ? bps / 500 : 65536))
    k=$rate
    log "== $rate tbf, queue up to $queue (burst $burst bytes)"
    tc -n "$srv" qdisc replace dev "veth-s$id" root tbf rate "$rate" burst "$burst" latency "$queue"
    if [ "$uploads" != 0 ]; then # the same bottleneck on the way up
        tc -n "$cli" qdisc replace dev "veth-c$id" root tbf rate "$rate" burst "$burst" latency "$queue"
    fi
    put "$k.queue" "$queue"
    put "$k.bps" "$bps"

    log "$rate: foreground curl alone"
    put "$k.curl" "$(fg_curl)"
    log "$rate: Foreground bits job alone"
    v=$(during "$k-fg" "$(bits_job "$k-fg" "$cli" foreground "$url/big2.bin")" sleep "$secs")
    put "$k.fg" "$v"
    log "$rate: Low bits job alone"
    v=$(during "$k-low" "$(bits_job "$k-low" "$cli" low "$url/big2.bin")" sleep "$secs")
    put "$k.low" "$v"

    # The job's own flow, seen from the server, while curl joins: how long
    # it takes to give way, and how much it carried before.
    log "$rate: curl beside a Low bits job"
    ip netns exec "$srv" python3 "$work/sspoll.py" 8080 "$work/ss-$k" "${BG_POLL:-0.025}" &
    poll_pid=$!
    v=$(during "$k-low-curl" "$(bits_job "$k-low-curl" "$cli" low "$url/big2.bin")" \
        fg_curl_marked "$work/t-$k")
    kill "$poll_pid"
    wait "$poll_pid" || true
    poll_pid=
    read -r c b <<<"$v"
    put "$k.curl_low" "$c"
    put "$k.low_curl" "$b"
    put "$k.t_curl" "$(cat "$work/t-$k")"
    put "$k.ss" "$work/ss-$k"
    [ -s "$work/ss-$k.cc" ] && put cc_seen "$(cat "$work/ss-$k.cc")"

    log "$rate: curl beside a second curl"
    put "$k.curl_curl" "$(beside_curl)"
    local half=$((bps / 2))
    log "$rate: curl beside curl --limit-rate $half (half the link, bytes/s)"
    put "$k.half" "$half"
    put "$k.curl_capped" "$(beside_curl --limit-rate "$half")"

    if [ "$uploads" != 0 ]; then
        log "$rate: foreground curl PUT alone"
        put "$k.put" "$(fg_put "$k-put.bin")"
        log "$rate: Low bits upload alone"
        v=$(during "$k-up-low" "$(bits_up "$k-up-low" low)" sleep "$secs")
        put "$k.up_low" "$v"
        log "$rate: curl PUT beside a Low bits upload"
        v=$(during "$k-up-low-put" "$(bits_up "$k-up-low-put" low)" fg_put "$k-put2.bin")
        read -r c b <<<"$v"
        put "$k.put_low" "$c"
        put "$k.up_low_put" "$b"
    fi
}

# The wall time of a complete synchronous `bits start` (fsync included),
# its daemon started beforehand so that start-up is not timed; checks the
# file's size. A run that has not completed after $loop_timeout s is cut
# short (a whole run at a trickle would take the rest of the day): then
# what it moved so far counts. Prints seconds and bytes.
timed_start() { # name priority url size
    local home=$work/home-$1 dest=$work/out/$1.bin t0 t1 got rc=0
    mkdir -p "$home"
    rm -f "$dest"
    sync
    sleep 1 # let writeback of the previous run settle
    BITS_HOME=$home BITS_LOG=$loglevel in_srv "$bin/bits" list >/dev/null
    t0=$EPOCHREALTIME
    BITS_HOME=$home BITS_LOG=$loglevel timeout "$loop_timeout" ip netns exec "$srv" \
        "$bin/bits" start --priority "$2" "$3" "$dest" >/dev/null || rc=$?
    t1=$EPOCHREALTIME
    if [ "$rc" = 124 ]; then
        got=$(BITS_HOME=$home "$bin/bits" list --json \
            | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["BytesTransferred"])')
        log "loopback: $2 did not complete in $loop_timeout s ($got bytes by then)"
    else
        [ "$rc" = 0 ] || die "bits start --priority $2 $3 failed (see $home/bitsd.log)"
        got=$(stat -c %s "$dest")
        [ "$got" = "$4" ] || die "$dest: $got bytes, want $4"
    fi
    kill "$(tr -dc 0-9 < "$home/bitsd.pid")"
    sleep 0.3
    rm -f "$dest"
    python3 -c "print($t1 - $t0, $got)"
}
run_loopback() {
    local size=$((loop_mib * 1024 * 1024)) i p order v
    log "== loopback: ${loop_mib} MiB from bits serve, $loop_runs runs of each priority"
    ip netns exec "$srv" "$bin/bits" serve "$work/data" --listen 127.0.0.1:8091 > "$work/serve-loop.log" 2>&1 &
    loop_pid=$!
    for i in $(seq 50); do
        [ "$(in_srv curl -s -o /dev/null -r 0-0 -w '%{http_code}' http://127.0.0.1:8091/loop.bin || true)" = 206 ] && break
        [ "$i" = 50 ] && die "bits serve on 127.0.0.1:8091 does not answer; see $work/serve-loop.log"
        sleep 0.1
    done
    put loop.size "$size"
    for i in $(seq "$loop_runs"); do
        # alternate which goes first, so that neither always follows the other
        order="low foreground"
        [ $((i % 2)) = 0 ] && order="foreground low"
        for p in $order; do
            log "loopback: run $i, $p"
            v=$(timed_start "loop-$p-$i" "$p" http://127.0.0.1:8091/loop.bin "$size")
            put "loop.$p" "$v"
        done
    done
    kill "$loop_pid"
    wait "$loop_pid" 2>/dev/null || true
    loop_pid=
}
run_capped() {
    local v i capped=http://127.0.0.1:8090/big1.bin
    log "== loopback, a server that caps each connection at $cap_rate bytes/s"
    ip netns exec "$srv" python3 "$root/bench/capped-server.py" "$work/data" 127.0.0.1 8090 "$cap_rate" \
        > "$work/capped.log" 2>&1 &
    cap_pid=$!
    for i in $(seq 50); do
        [ "$(in_srv curl -s -o /dev/null -r 0-0 -w '%{http_code}' "$capped" || true)" = 206 ] && break
        [ "$i" = 50 ] && die "the capped server on 127.0.0.1:8090 does not answer; see $work/capped.log"
        sleep 0.1
    done
    put cap.rate "$cap_rate"
    log "capped: Foreground bits job alone"
    v=$(during cap-fg "$(bits_job cap-fg "$srv" foreground "$capped")" sleep "$secs")
    put cap.fg "$v"
    log "capped: Low bits job alone"
    v=$(during cap-low "$(bits_job cap-low "$srv" low "$capped")" sleep "$secs")
    put cap.low "$v"
    kill "$cap_pid"
    wait "$cap_pid" 2>/dev/null || true
    cap_pid=
}

started=$EPOCHREALTIME
if has_case links; then
    for spec in $links; do run_link "$spec"; done
fi
has_case loopback && run_loopback
has_case capped && run_capped
put elapsed "$(python3 -c "print($EPOCHREALTIME - $started)")"
put rev "$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"

python3 - "$results" "$links" "$secs" "$warm" <<'PY'
import os, re, statistics, sys
path, links, secs, warm = sys.argv[1], sys.argv[2].split(), sys.argv[3], sys.argv[4]
r = {}
for line in open(path):
    key, _, val = line.rstrip("\n").partition("=")
    r.setdefault(key, []).append(val)
get = lambda k: float(r[k][0])
has = lambda k: k in r

def mb(x):
    return f"{x / 1e6:.2f} MB/s"

def check(x, target):
    return f"**{x:.2f}** (≥ {target:.2f} {'ok' if x >= target else 'MISS'})"

def label(rate, queue):
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(bit|kbit|mbit|gbit)", rate.lower())
    n, u = m[1], {"bit": "bit", "kbit": "kbit", "mbit": "Mbit", "gbit": "Gbit"}[m[2]]
    q = re.fullmatch(r"(\d+(?:\.\d+)?)(us|ms|s)?", queue)
    q = f"{q[1]} {q[2] or 'us'}" if q else queue
    return f"{n} {u} tbf, {q} queue"

def reaction(k):
    """Seconds from curl's start to the first 100 ms window in which the
    job's flow is under 10 % of the link; the job's share of the link in the
    second before curl started; its lowest window."""
    link, t_curl = get(k + ".bps"), get(k + ".t_curl")
    s = [tuple(map(float, l.split())) for l in open(r[k + ".ss"][0]) if l.strip()]
    def rate_over(a, b):
        pts = [p for p in s if a <= p[0] <= b]
        if len(pts) < 2 or pts[-1][0] - pts[0][0] < 0.5 * (b - a):
            return None
        return (pts[-1][1] - pts[0][1]) / (pts[-1][0] - pts[0][0])
    before = rate_over(t_curl - 1.0, t_curl)
    j, low, hit = 0, None, None
    for i in range(len(s)):
        while s[i][0] - s[j][0] > 0.1:
            j += 1
        if s[i][0] <= t_curl or s[i][0] - s[j][0] < 0.07:
            continue
        w = (s[i][1] - s[j][1]) / (s[i][0] - s[j][0])
        low = w if low is None else min(low, w)
        if hit is None and w < 0.1 * link:
            hit = s[i][0] - t_curl
    return hit, (before / link if before is not None else None), (low / link if low is not None else None)

def pct(x):
    return "?" if x is None else f"{100 * x:.0f} %"

print(f"\n## bench/background.sh ({r['rev'][0]})\n")
seen = ", ".join(sorted(set(r.get("cc_seen", [])))) or "?"
print(f"- {os.cpu_count()} cores, Linux {os.uname().release}; the server's TCP congestion control: {r['cc'][0]}"
      f" (seen on the job's sockets: {seen})")
print(f"- {secs} s per measurement, after {warm} s for the job (or the other curl) to reach its pace; "
      f"run took {get('elapsed') / 60:.1f} min\n")
print("| link | background alone: share of what Foreground gets | a foreground curl beside a Low job keeps "
      "| the Low job under 10 % of the link after curl starts |")
print("|---|---|---|---|")
detail = []
for spec in links:
    rate = spec.split("/")[0]
    k = rate
    if not has(k + ".fg"):
        continue
    name = label(rate, r[k + ".queue"][0])
    share = get(k + ".low") / get(k + ".fg")
    keeps = get(k + ".curl_low") / get(k + ".curl")
    hit, before, low = reaction(k)
    if before is not None and before < 0.1:
        # it never had the link: there was nothing to give way
        react = f"n/a: the job had only {pct(before)} of the link before curl started"
    else:
        react = (f"{hit:.2f} s" if hit is not None else f"never (lowest 100 ms window: {pct(low)} of the link)")
        react += f" (the job had {pct(before)} of the link before)"
    target = 0.80 if get(k + ".bps") * 8 >= 1e9 else 0.85
    print(f"| {name} | {check(share, target)} | {check(keeps, 0.90)} | {react} |")
    print(f"| ↳ reference: a second plain curl beside the first |  | {get(k + '.curl_curl') / get(k + '.curl'):.2f} |  |")
    print(f"| ↳ reference: curl --limit-rate {get(k + '.half') / 1e6:.3g} MB/s (half the link) beside the foreground curl "
          f"|  | {get(k + '.curl_capped') / get(k + '.curl'):.2f} |  |")
    alone = get(k + ".curl")
    detail += [
        (name, "curl alone", mb(alone), "", "1.00"),
        ("", "Foreground bits job alone", "", mb(get(k + ".fg")), ""),
        ("", "Low bits job alone", "", mb(get(k + ".low")), ""),
        ("", "curl + Low bits job", mb(get(k + ".curl_low")), mb(get(k + ".low_curl")), f"{keeps:.2f}"),
        ("", "curl + second curl", mb(get(k + ".curl_curl")), "(second curl)", f"{get(k + '.curl_curl') / alone:.2f}"),
        ("", f"curl + curl --limit-rate {int(get(k + '.half'))}", mb(get(k + ".curl_capped")), "(capped curl)",
         f"{get(k + '.curl_capped') / alone:.2f}"),
    ]
    if has(k + ".put"):
        p = get(k + ".put")
        detail += [
            ("", "upload: curl PUT alone", mb(p), "", "1.00"),
            ("", "upload: Low bits upload alone", "", mb(get(k + ".up_low")), ""),
            ("", "upload: curl PUT + Low bits upload", mb(get(k + ".put_low")), mb(get(k + ".up_low_put")),
             f"{get(k + '.put_low') / p:.2f}"),
        ]
if has("loop.low"):
    size = get("loop.size")
    runs = {p: [tuple(map(float, x.split())) for x in r["loop." + p]] for p in ("foreground", "low")}
    rate = {p: statistics.median(b / t for t, b in v) for p, v in runs.items()}
    share = rate["low"] / rate["foreground"]
    print(f"| loopback ({size / 2**30:.3g} GiB file) | {check(share, 0.70)} | (no bottleneck to share) |  |")
    for i, p in enumerate(("foreground", "low")):
        walls = ", ".join(f"{t:.2f}" if b == size else f"{t:.0f} (cut short at {b / 2**20:.0f} MiB)"
                          for t, b in runs[p])
        detail.append(("" if i else f"loopback, {size / 2**20:.0f} MiB from bits serve",
                       f"{p.capitalize()} `bits start`, wall s: {walls}",
                       "", f"{rate[p] / 1e6:.1f} MB/s (median)", ""))
if has("cap.fg"):
    c = f"{get('cap.rate') / 1e6:.3g} MB/s"
    share = get("cap.low") / get("cap.fg")
    print(f"| a server that caps each connection at {c} (bench/capped-server.py; loopback) | {check(share, 0.85)} "
          f"| (the cap is the server's) |  |")
    detail += [
        (f"loopback, {c} per connection", "Foreground bits job alone", "", mb(get("cap.fg")), ""),
        ("", "Low bits job alone", "", mb(get("cap.low")), ""),
    ]
print("\nThe figures behind it (rates are bytes per second, MB = 10^6 bytes):\n")
print("| link | case | foreground curl | bits | curl's share of its rate alone |")
print("|---|---|---:|---:|---:|")
for row in detail:
    print("| " + " | ".join(row) + " |")
PY
