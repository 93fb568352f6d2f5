#!/usr/bin/env bash
# Builds bits and runs a real transfer end to end on this machine:
# `bits serve` publishes a directory on 127.0.0.1, `bits start` downloads a
# file from it through bitsd (autostarted), and the copy is checked byte for
# byte. Then an asynchronous job is created, watched and completed, as in the
# PowerShell examples. Everything happens in a temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release -p bits
bin="$PWD/target/release"

work=$(mktemp -d)
export BITS_HOME="$work/home"
cleanup() {
    [ -n "${serve_pid:-}" ] && kill "$serve_pid" 2>/dev/null || true
    if [ -f "$BITS_HOME/bitsd.pid" ]; then kill "$(cat "$BITS_HOME/bitsd.pid")" 2>/dev/null || true; fi
    sleep 0.3
    rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/served" "$work/downloads"
head -c 64M /dev/urandom > "$work/served/big.bin"
head -c 1M /dev/urandom > "$work/served/small.bin"

# A free port on loopback.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bin/bits" serve "$work/served" --listen "127.0.0.1:$port" &
serve_pid=$!
for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
done

echo "== synchronous download (Start-BitsTransfer)"
time "$bin/bits" start "http://127.0.0.1:$port/big.bin" "$work/downloads/"
cmp "$work/served/big.bin" "$work/downloads/big.bin"
echo "big.bin: 64 MiB, byte-exact"

echo "== asynchronous job (Start-BitsTransfer -Asynchronous, then Complete-BitsTransfer)"
job=$("$bin/bits" start --async --name quickstart "http://127.0.0.1:$port/small.bin" "$work/downloads/small.bin")
echo "job $job"
"$bin/bits" wait "$job" --timeout 30
"$bin/bits" list
"$bin/bits" complete "$job"
cmp "$work/served/small.bin" "$work/downloads/small.bin"
echo "small.bin: 1 MiB, byte-exact"
echo "quickstart: OK"
