#!/usr/bin/env bash
# Builds the Debian package, installs it with dpkg, and runs a download
# through the installed system daemon as a throwaway user: the package as a
# user gets it. Needs root. Removes the package and the user afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
die() { printf 'test-deb: %s\n' "$*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (dpkg -i, useradd)"
target=${CARGO_TARGET_DIR:-target}

bash packaging/deb.sh
deb=$(ls -t "$target"/debian/bits_*.deb | head -1)
dpkg -i "$deb"
work=$(mktemp -d)
user=btdeb$$
cleanup() {
    set +e
    [ -n "${daemon:-}" ] && kill "$daemon" && wait "$daemon"
    [ -n "${server:-}" ] && kill "$server" && wait "$server"
    userdel "$user" 2>/dev/null
    dpkg -r bits >/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

for f in /usr/bin/bits /usr/bin/bitsd /usr/share/man/man1/bits.1.gz /usr/share/man/man1/bitsd.1.gz \
    /usr/lib/systemd/system/bitsd.service /usr/lib/systemd/user/bitsd.service \
    /usr/share/bash-completion/completions/bits; do
    [ -e "$f" ] || die "$f is not installed"
done
grep -q -- '--system' /usr/lib/systemd/system/bitsd.service || die "the system unit does not run bitsd --system"
grep -q 'ExecStart=/usr/bin/bitsd$' /usr/lib/systemd/user/bitsd.service || die "the user unit does not run /usr/bin/bitsd"

useradd --no-create-home --home-dir /nonexistent --shell /bin/sh --user-group "$user"
chmod 755 "$work"
mkdir "$work/srv" "$work/out"
head -c 3000000 /dev/urandom > "$work/srv/file.bin"
chown "$user:" "$work/out"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
/usr/bin/bits serve "$work/srv" --listen "127.0.0.1:$port" > "$work/serve.log" 2>&1 &
server=$!
/usr/bin/bitsd --system --state-dir "$work/state" --socket "$work/run/bits.sock" > "$work/bitsd.out" 2>&1 &
daemon=$!
for _ in $(seq 100); do
    [ -S "$work/run/bits.sock" ] && break
    sleep 0.1
done
[ -S "$work/run/bits.sock" ] || die "bitsd --system did not start: $(cat "$work/bitsd.out")"

# As the user, through the system daemon: a synchronous download.
runuser -u "$user" -- env -i PATH=/usr/bin:/bin HOME=/nonexistent \
    BITS_SYSTEM_SOCKET="$work/run/bits.sock" \
    /usr/bin/bits --system start "http://127.0.0.1:$port/file.bin" "$work/out/file.bin"
cmp "$work/srv/file.bin" "$work/out/file.bin" || die "the downloaded file differs"
[ "$(stat -c %U "$work/out/file.bin")" = "$user" ] || die "the file is not the user's"
left=$(BITS_SYSTEM_SOCKET="$work/run/bits.sock" /usr/bin/bits --system list --all-users --json </dev/null \
    | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
[ "$left" = 0 ] || die "$left jobs left after a completed download"
echo "test-deb: $deb installed; a download through the system daemon as $user is byte-exact and theirs"

