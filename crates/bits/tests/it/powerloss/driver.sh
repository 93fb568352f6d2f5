#!/usr/bin/env bash
# Drives one LazyFS mount for the power-loss tests (../powerloss.rs).
#
#   bash driver.sh POWERLOSS_SH BACKING MOUNTPOINT
#
# powerloss.sh keeps the state of its mount in shell variables, so one
# long-lived shell owns the mount: it sources the library, mounts, answers
# on stdout, then runs the commands it reads from stdin, one per line, and
# answers each with one line:
#
#   (start)     ok LAZYFS_PID RUN_DIR | unavailable REASON | fail REASON
#   crash       ok | fail          pl_crash: drop every byte not fsynced
#   checkpoint  ok | fail          pl_checkpoint: write the cache down
#   umount      ok | fail          pl_umount, then exit
#
# The library's diagnostics go to standard error. The mount is also
# unmounted when stdin ends (the test process died) or on TERM/INT/HUP.
set -u

answer() { printf '%s\n' "$*"; }

if [ $# -ne 3 ]; then answer "fail usage: driver.sh POWERLOSS_SH BACKING MOUNTPOINT"; exit 2; fi
if [ ! -r "$1" ]; then answer "unavailable $1 not found"; exit 0; fi
# shellcheck source=/dev/null
if ! source "$1"; then answer "fail cannot source $1"; exit 1; fi
if ! pl_available; then
    answer "unavailable pl_available failed (no lazyfs on PATH, no /dev/fuse, fusermount3 or findmnt)"
    exit 0
fi
# LazyFS's cache is not thread-safe: with FUSE's default multi-threaded loop,
# concurrent operations on many files (a job of hundreds of small files)
# now and then deadlock it, or kill it ("Resource deadlock avoided", or a
# segfault in pthread_rwlock). Serve one request at a time (-s) instead:
# the program under test still runs all its threads, the file system
# answers them in turn.
# powerloss.sh starts PL_LAZYFS_BIN with exec, so the wrapper's PID is
# lazyfs's.
wrapper_dir=$(mktemp -d /tmp/bits-lazyfs-s.XXXXXX) || { answer "fail mktemp"; exit 1; }
printf '#!/usr/bin/env bash\nexec %q "$@" -s\n' "$PL_LAZYFS_BIN" >"$wrapper_dir/lazyfs"
chmod +x "$wrapper_dir/lazyfs"
PL_LAZYFS_BIN="$wrapper_dir/lazyfs"
if ! pl_mount "$2" "$3"; then
    rm -rf "$wrapper_dir"
    answer "fail pl_mount $2 $3 failed (see above)"
    exit 1
fi

mounted=1
cleanup() {
    if [ "$mounted" = 1 ]; then
        mounted=0
        pl_umount >&2 || true
    fi
    rm -rf "$wrapper_dir"
}
trap cleanup EXIT
trap 'exit 1' TERM INT HUP
answer "ok $PL_PID $PL_DIR"

while IFS= read -r cmd; do
    case "$cmd" in
        crash) if pl_crash; then answer ok; else answer fail; fi ;;
        checkpoint) if pl_checkpoint; then answer ok; else answer fail; fi ;;
        umount)
            mounted=0
            if pl_umount >&2; then answer ok; else answer fail; fi
            exit 0
            ;;
        "") ;;
        *) answer "fail unknown command: $cmd" ;;
    esac
done
