#!/usr/bin/env bash
# Upload speed: `bits start --type upload` (BITS Upload Protocol, 8 MiB
# fragments, through bitsd) beside `curl -T` (one plain HTTP PUT) of the
# same file to the same `bits serve --upload` on loopback. Medians of N
# runs, sync and a pause between runs.
# Usage: bench/upload-vs-curl.sh [SIZE_MIB] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib=${1:-1024}
runs=${2:-5}

cargo build --release -p bits >/dev/null 2>&1
bin="$PWD/target/release"
work=$(mktemp -d -p "${BENCH_DIR:-/var/tmp}")
export BITS_HOME="$work/home"
cleanup() {
    [ -n "${serve_pid:-}" ] && kill "$serve_pid" 2>/dev/null || true
    [ -f "$BITS_HOME/bitsd.pid" ] && kill "$(cat "$BITS_HOME/bitsd.pid")" 2>/dev/null || true
    sleep 0.3; rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/served" "$work/src"
head -c "${size_mib}M" /dev/urandom > "$work/src/f.bin"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bin/bits" serve "$work/served" --listen "127.0.0.1:$port" --upload --allow-overwrite 2>/dev/null &
serve_pid=$!
sleep 0.5
"$bin/bits" list >/dev/null   # autostart the daemon outside the timings

time_of() {
    local t0 t1
    t0=$(date +%s.%N); "$@" >/dev/null 2>&1; t1=$(date +%s.%N)
    echo "$t1 - $t0" | bc -l
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

curl_times=(); bits_times=()
for i in $(seq "$runs"); do
    rm -f "$work/served/"*.bin; sync; sleep 1
    curl_times+=("$(time_of curl -s -f -T "$work/src/f.bin" "http://127.0.0.1:$port/c.bin")")
    cmp "$work/src/f.bin" "$work/served/c.bin"
    rm -f "$work/served/"*.bin; sync; sleep 1
    bits_times+=("$(time_of "$bin/bits" start --type upload "$work/src/f.bin" "http://127.0.0.1:$port/b.bin")")
    cmp "$work/src/f.bin" "$work/served/b.bin"
done
c=$(printf '%s\n' "${curl_times[@]}" | median)
b=$(printf '%s\n' "${bits_times[@]}" | median)
printf 'upload of %d MiB to bits serve --upload, %d runs, medians\n' "$size_mib" "$runs"
printf '%-22s %8.3f s  %8.1f MiB/s\n' "curl -T (PUT)" "$c" "$(echo "$size_mib / $c" | bc -l)"
printf '%-22s %8.3f s  %8.1f MiB/s\n' "bits (BITS_POST)" "$b" "$(echo "$size_mib / $b" | bc -l)"
printf 'bits/curl wall time ratio: %.2f\n' "$(echo "$b / $c" | bc -l)"
