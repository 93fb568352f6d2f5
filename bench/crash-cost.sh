#!/usr/bin/env bash
# Crash cost: how much a `kill -9` of bitsd in the middle of a download
# makes it download again. Downloads a big file from `bits serve` on
# loopback, kills bitsd after a random moment, then compares what had reached
# the temporary file with the offset committed in the job database (the
# resume point). The difference is the bytes downloaded twice.
# Usage: bench/crash-cost.sh [SIZE_MIB] [TRIALS]
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib=${1:-2048}
trials=${2:-5}
cargo build --release -p bits >/dev/null 2>&1
bin="$PWD/target/release"
work=$(mktemp -d -p "${BENCH_DIR:-/var/tmp}")
cleanup() {
    [ -n "${serve_pid:-}" ] && kill "$serve_pid" 2>/dev/null || true
    pkill -f "bitsd" -U "$(id -u)" --parent 1 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/served"
head -c "${size_mib}M" /dev/urandom > "$work/served/f.bin"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bin/bits" serve "$work/served" --listen "127.0.0.1:$port" 2>/dev/null &
serve_pid=$!
sleep 0.5
printf '%-6s %-12s %-14s %-14s %s\n' trial "killed at" "on disk" "committed" "downloaded again"
for t in $(seq "$trials"); do
    export BITS_HOME="$work/home$t"
    mkdir -p "$work/out$t"
    job=$("$bin/bits" start --async "http://127.0.0.1:$port/f.bin" "$work/out$t/f.bin")
    delay=$(python3 -c "import random; print(round(random.uniform(0.8, 2.5), 2))")
    sleep "$delay"
    kill -9 "$(cat "$BITS_HOME/bitsd.pid")"
    temp=$(ls "$work/out$t"/.f.bin.bits-*.tmp)
    on_disk=$(stat -c %s "$temp")
    committed=$(python3 -c "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); print(c.execute('select bytes_transferred from files').fetchone()[0])" "$BITS_HOME/jobs.sqlite3")
    printf '%-6s %-12s %-14s %-14s %s\n' "$t" "${delay}s" "$on_disk" "$committed" "$(( (on_disk - committed) / 1048576 )) MiB"
    "$bin/bits" wait "$job" --timeout 120 >/dev/null
    "$bin/bits" complete "$job"
    cmp "$work/served/f.bin" "$work/out$t/f.bin"
    kill "$(cat "$BITS_HOME/bitsd.pid")" 2>/dev/null || true
    rm -rf "$work/out$t"
done
echo "checkpoint: every 1 s or 256 MiB, whichever first; every resumed file compared byte for byte"
