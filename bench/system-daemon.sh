#!/usr/bin/env bash
# What acting for a user costs: one job of many small files from `bits
# serve` on loopback, through a user's own daemon (running as root) and
# through the system daemon acting for a throwaway user (every path of the
# job opened under the owner's identity), alternating, RUNS times each.
# Prints the wall time of each synchronous `bits start --from-csv`.
#
# Needs root (useradd, runuser) and release builds (cargo build --release -p bits).
# Environment: SB_FILES (default 2000), SB_KIB (16), SB_RUNS (3),
#              SB_BIN_DIR (default target/release).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
files=${SB_FILES:-2000} kib=${SB_KIB:-16} runs=${SB_RUNS:-3}
bin=${SB_BIN_DIR:-${CARGO_TARGET_DIR:-$root/target}/release}
die() { printf 'system-daemon: %s\n' "$*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (useradd, runuser)"
[ -x "$bin/bits" ] && [ -x "$bin/bitsd" ] || die "no bits/bitsd in $bin (cargo build --release -p bits)"

w=$(mktemp -d -p /var/tmp bits-sysbench.XXXXXX)
chmod 755 "$w"
user=btsb$$
useradd --no-create-home --home-dir /nonexistent --shell /bin/sh --user-group "$user"
cleanup() {
    set +e
    [ -f "$w/home/bitsd.pid" ] && kill "$(cat "$w/home/bitsd.pid")"
    kill $(jobs -p) 2>/dev/null
    sleep 0.5
    userdel "$user"
    rm -rf "$w"
}
trap cleanup EXIT
mkdir -p "$w/srv" "$w/bin"
# Users must be able to run the programs: copies in a directory they reach.
cp "$bin/bits" "$bin/bitsd" "$w/bin/"
for i in $(seq "$files"); do head -c $((kib * 1024)) /dev/urandom > "$w/srv/f$i"; done
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$w/bin/bits" serve "$w/srv" --listen "127.0.0.1:$port" > /dev/null 2>&1 &
"$w/bin/bitsd" --system --state-dir "$w/state" --socket "$w/run/bits.sock" > /dev/null 2>&1 &
for _ in $(seq 100); do [ -S "$w/run/bits.sock" ] && break; sleep 0.1; done
csv() { echo "Source,Destination"; for i in $(seq "$files"); do echo "http://127.0.0.1:$port/f$i,$1/f$i"; done; }
echo "$files x $kib KiB in one job, $runs runs of each, alternating"
for run in $(seq "$runs"); do
    for mode in own system; do
        out="$w/out-$mode-$run"
        mkdir -p "$out"
        csv "$out" > "$w/list.csv"
        chmod 644 "$w/list.csv"
        sync
        if [ "$mode" = own ]; then
            BITS_HOME="$w/home" "$w/bin/bits" list > /dev/null # its daemon up before timing
            t0=$EPOCHREALTIME
            BITS_HOME="$w/home" "$w/bin/bits" start --from-csv "$w/list.csv" > /dev/null 2> "$w/start.err" || die "$(cat "$w/start.err")"
            t1=$EPOCHREALTIME
        else
            chown "$user:" "$out"
            t0=$EPOCHREALTIME
            runuser -u "$user" -- env -i PATH=/usr/bin:/bin BITS_SYSTEM_SOCKET="$w/run/bits.sock" \
                "$w/bin/bits" --system start --from-csv "$w/list.csv" > /dev/null 2> "$w/start.err" || die "$(cat "$w/start.err")"
            t1=$EPOCHREALTIME
        fi
        n=$(find "$out" -type f | wc -l)
        [ "$n" = "$files" ] || die "$mode run $run: $n files, want $files"
        python3 -c "print('%-6s run $run: %.2f s, %.0f files/s' % ('$mode', $t1 - $t0, $files / ($t1 - $t0)))"
        rm -rf "$out"
    done
done
