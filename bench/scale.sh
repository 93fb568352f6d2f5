#!/usr/bin/env bash
# Daemon memory at rest and with N queued jobs, the time to create them one
# CLI call at a time, and the time of `bits list --json` over them.
# Usage: bench/scale.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000}
cargo build --release -p bits >/dev/null 2>&1
bin="$PWD/target/release"
work=$(mktemp -d)
export BITS_HOME="$work/home"
trap '[ -f "$BITS_HOME/bitsd.pid" ] && kill "$(cat "$BITS_HOME/bitsd.pid")" 2>/dev/null; sleep 0.3; rm -rf "$work"' EXIT
rss() { awk '/VmRSS/ {printf "%.1f MiB", $2/1024}' "/proc/$(cat "$BITS_HOME/bitsd.pid")/status"; }

"$bin/bits" list >/dev/null
sleep 0.5
echo "daemon RSS at rest: $(rss)"
echo "x" > "$work/src.txt"
t0=$(date +%s.%N)
for i in $(seq "$n"); do
    # Low priority against a port nobody listens on would retry; suspended
    # jobs are queued work that stays put while we measure.
    "$bin/bits" start --suspended --name "job$i" "$work/src.txt" "$work/dst$i.txt" >/dev/null
done
t1=$(date +%s.%N)
printf 'created %d jobs one CLI call at a time: %.2f s (%.1f ms per call)\n' "$n" "$(echo "$t1-$t0" | bc -l)" "$(echo "($t1-$t0)*1000/$n" | bc -l)"
echo "daemon RSS with $n jobs: $(rss)"
t0=$(date +%s.%N); "$bin/bits" list --json > "$work/list.json"; t1=$(date +%s.%N)
printf 'bits list --json over %d jobs: %.0f ms (%s bytes)\n' "$n" "$(echo "($t1-$t0)*1000" | bc -l)" "$(wc -c < "$work/list.json")"
