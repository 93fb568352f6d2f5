#!/usr/bin/env bash
# bits "Speed and scale" benchmark: bits against curl, wget, aria2c and cp,
# side by side in one run, against a private nginx on loopback; then the
# daemon's memory and latency with many jobs. See bench/README.md.
#
# Usage: bench/run.sh                      full run (2 GiB / 256 MiB / 2,000 x 16 KiB, 5 runs;
#                                          capped: 256 MiB at 20 MiB/s per connection, 3 runs)
#        BENCH_QUICK=1 BENCH_RUNS=1 bench/run.sh   quick smoke run
#
# Environment (all optional):
#   BENCH_QUICK=1         smaller defaults: 256 MiB / 64 MiB / 200 files, 1,000 jobs, capped 32 MiB
#   BENCH_RUNS=N          timed runs per tool and case (default 5)
#   BENCH_BIG_MIB=N       size of the big file (default 2048; quick 256)
#   BENCH_MID_MIB=N       size of the second big-file case (default 256; quick 64)
#   BENCH_SMALL_N=N       number of small files (default 2000; quick 200)
#   BENCH_SMALL_KIB=N     size of each small file (default 16)
#   BENCH_JOBS="N ..."    job counts for the scale test, cumulative
#                         (default "1000 10000"; quick "1000"; "0" skips it)
#   BENCH_DIR=DIR         where the temp dir (data + outputs) goes (default /var/tmp)
#   BENCH_SETTLE=S        pause after each `sync` between runs (default 1)
#   BENCH_CAPPED_MIB=N    file size of the capped case (default 256; quick 32)
#   BENCH_CAPPED_RUNS=N   timed runs per tool in the capped case (default 3, or BENCH_RUNS if lower)
#   BENCH_CAP_RATE=R      per-connection rate cap of the capped case, in nginx's limit_rate
#                         units (bytes/s; k = KiB, m = MiB, g = GiB) (default 20m)
#   BENCH_CASES="..."     subset of: big mid small scale capped (default all)
#   BENCH_NO_BUILD=1      use the existing target/release binaries
#   BENCH_BIN_DIR=DIR     where bits and bitsd are (default $CARGO_TARGET_DIR or target, /release)
#   BENCH_NO_INSTALL=1    never apt-get install; fail if a tool is missing
#   BENCH_RESULTS=FILE    markdown output (default bench/results-latest.md)
#   BENCH_KEEP=1          keep the temp dir (for debugging)
set -euo pipefail
export LC_ALL=C
unset BITS_RUNTIME_DIR

bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$bench_dir/.." && pwd)

log() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { printf 'bench: error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- settings
quick=${BENCH_QUICK:-0}
[ "$quick" = 0 ] || [ "$quick" = 1 ] || die "BENCH_QUICK must be 0 or 1"
if [ "$quick" = 1 ]; then
    def_big=256 def_mid=64 def_small=200 def_jobs="1000" def_capped=32
else
    def_big=2048 def_mid=256 def_small=2000 def_jobs="1000 10000" def_capped=256
fi
runs=${BENCH_RUNS:-5}
capped_mib=${BENCH_CAPPED_MIB:-$def_capped}
cap_rate=${BENCH_CAP_RATE:-20m}
big_mib=${BENCH_BIG_MIB:-$def_big}
mid_mib=${BENCH_MID_MIB:-$def_mid}
small_n=${BENCH_SMALL_N:-$def_small}
small_kib=${BENCH_SMALL_KIB:-16}
jobs_list=${BENCH_JOBS:-$def_jobs}
settle=${BENCH_SETTLE:-1}
cases=${BENCH_CASES:-big mid small scale capped}
base=${BENCH_DIR:-/var/tmp}
results_md=${BENCH_RESULTS:-$bench_dir/results-latest.md}
[[ $runs =~ ^[1-9][0-9]*$ ]] || die "runs must be a positive integer (got '$runs')"
capped_runs=${BENCH_CAPPED_RUNS:-$(( runs < 3 ? runs : 3 ))}
for v in runs capped_runs big_mib mid_mib small_n small_kib capped_mib; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer (got '${!v}')"
done
[[ $cap_rate =~ ^[1-9][0-9]*[kKmMgG]?$ ]] \
    || die "BENCH_CAP_RATE must be an nginx size such as 20m, 512k or 5000000 (got '$cap_rate')"
case ${cap_rate: -1} in
    k|K) cap_bps=$(( ${cap_rate%?} * 1024 )) ;;
    m|M) cap_bps=$(( ${cap_rate%?} * 1024 * 1024 )) ;;
    g|G) cap_bps=$(( ${cap_rate%?} * 1024 * 1024 * 1024 )) ;;
    *)   cap_bps=$cap_rate ;;
esac
for n in $jobs_list; do [[ $n =~ ^[0-9]+$ ]] || die "BENCH_JOBS must be integers (got '$n')"; done
[[ $settle =~ ^[0-9]+([.][0-9]+)?$ ]] || die "BENCH_SETTLE must be a number of seconds"
for c in $cases; do
    case $c in big|mid|small|scale|capped) ;; *) die "unknown case '$c' in BENCH_CASES (big mid small scale capped)";; esac
done
has_case() { [[ " $cases " == *" $1 "* ]]; }

# ---------------------------------------------------------------- tools
# command -> Debian package
declare -A pkg_of=([nginx]=nginx-light [aria2c]=aria2 [wget]=wget [curl]=curl [bc]=bc)
find_nginx() { command -v nginx 2>/dev/null || { [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx; } || true; }
missing=()
for cmd in nginx aria2c wget curl bc; do
    if [ "$cmd" = nginx ]; then [ -n "$(find_nginx)" ] && continue
    else command -v "$cmd" >/dev/null 2>&1 && continue; fi
    missing+=("${pkg_of[$cmd]}")
done
if [ ${#missing[@]} -gt 0 ]; then
    [ "${BENCH_NO_INSTALL:-0}" = 1 ] && die "missing packages: ${missing[*]} (BENCH_NO_INSTALL=1 is set; install them first)"
    command -v apt-get >/dev/null 2>&1 || die "missing packages: ${missing[*]}, and no apt-get to install them"
    if [ "$(id -u)" = 0 ]; then sudo=()
    elif command -v sudo >/dev/null 2>&1; then sudo=(sudo)
    else die "missing packages: ${missing[*]}; run as root or install them first"; fi
    log "installing ${missing[*]} (apt-get update first)"
    "${sudo[@]}" apt-get update -qq || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null \
        || die "apt-get install ${missing[*]} failed"
fi
nginx_bin=$(find_nginx)
[ -n "$nginx_bin" ] || die "nginx not found after install"
for cmd in aria2c wget curl bc python3 cmp diff sync awk split; do
    command -v "$cmd" >/dev/null 2>&1 || die "'$cmd' is required but not found"
done
[ -n "${EPOCHREALTIME:-}" ] || die "bash >= 5 is required (EPOCHREALTIME)"

# ---------------------------------------------------------------- bits
if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
    log "cargo build --release -p bits"
    (cd "$root" && cargo build --release -p bits) >"${TMPDIR:-/tmp}/bench-build.$$.log" 2>&1 || {
        tail -n 30 "${TMPDIR:-/tmp}/bench-build.$$.log" >&2
        rm -f "${TMPDIR:-/tmp}/bench-build.$$.log"
        die "cargo build --release -p bits failed (BENCH_NO_BUILD=1 uses the existing binaries)"
    }
    rm -f "${TMPDIR:-/tmp}/bench-build.$$.log"
fi
bin=${BENCH_BIN_DIR:-${CARGO_TARGET_DIR:-$root/target}/release}
bits=$bin/bits
# the revision the binaries were built from (read now: the tree may move during the run)
git_rev=$(cd "$root" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
git_dirty=$(cd "$root" && { git diff --quiet HEAD -- 2>/dev/null && echo "" || echo " (+ uncommitted changes)"; })
[ -x "$bits" ] || die "$bits not found (build with: cargo build --release -p bits)"
[ -x "$bin/bitsd" ] || die "$bin/bitsd not found beside bits (the CLI autostarts it from there)"

# ---------------------------------------------------------------- disk
small_mib_total=$(( (small_n * small_kib + 1023) / 1024 ))
data_mib=0
has_case big && data_mib=$((data_mib + big_mib))
has_case mid && data_mib=$((data_mib + mid_mib))
has_case small && data_mib=$((data_mib + small_mib_total))
has_case capped && data_mib=$((data_mib + capped_mib))
[ -d "$base" ] || die "BENCH_DIR $base does not exist"
need_mib=$(( data_mib * 5 / 2 + 64 ))
# small: every run of every tool keeps its copy until the case ends (7 tools)
has_case small && need_mib=$(( need_mib + small_mib_total * 7 * runs ))
avail_mib=$(df -Pm "$base" | awk 'NR==2 {print $4}')
[ "$avail_mib" -ge "$need_mib" ] \
    || die "not enough free space in $base: ${avail_mib} MiB free, need ~${need_mib} MiB; set BENCH_DIR or smaller sizes"

# ---------------------------------------------------------------- cleanup
work=$(mktemp -d -p "$base" bits-bench.XXXXXX)
nginx_pid=
bits_homes=()
stop_bitsd() { # $1 = BITS_HOME: SIGTERM the daemon of its pid file, wait for it
    local home=$1 pid i
    [ -f "$home/bitsd.pid" ] || return 0
    pid=$(tr -dc 0-9 < "$home/bitsd.pid")
    [ -n "$pid" ] && [ -d "/proc/$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for i in $(seq 100); do [ -d "/proc/$pid" ] || return 0; sleep 0.1; done
    log "bitsd $pid did not stop within 10 s of SIGTERM; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
}
cleanup() {
    local rc=$? h
    trap - EXIT INT TERM
    for h in "${bits_homes[@]}"; do stop_bitsd "$h"; done
    if [ -n "$nginx_pid" ]; then
        kill -TERM "$nginx_pid" 2>/dev/null || true
        wait "$nginx_pid" 2>/dev/null || true
    fi
    if [ "${BENCH_KEEP:-0}" = 1 ]; then log "kept $work"; else rm -rf "$work"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- data
data=$work/data out=$work/out tmp=$work/tmp
mkdir -p "$data/small" "$out" "$tmp" "$work/nginx" "$work/homes"
# nginx workers drop to an unprivileged user when started as root
chmod 755 "$work" "$data" "$data/small"
make_big() { # $1 = name, $2 = MiB
    log "making $1 ($2 MiB)"
    head -c "$(( $2 * 1024 * 1024 ))" /dev/urandom > "$data/$1"
    chmod 644 "$data/$1"
}
has_case big && make_big big.bin "$big_mib"
has_case mid && make_big mid.bin "$mid_mib"
has_case capped && make_big capped.bin "$capped_mib"
if has_case small || has_case scale; then
    log "making $small_n files of $small_kib KiB"
    (cd "$data/small" && head -c "$(( small_n * small_kib * 1024 ))" /dev/urandom \
        | split -b "$(( small_kib * 1024 ))" -d -a 6 - f)
    chmod 644 "$data/small"/*
    [ "$(find "$data/small" -type f | wc -l)" -eq "$small_n" ] || die "could not make the small files"
fi
echo ok > "$data/ping"; chmod 644 "$data/ping"

# ---------------------------------------------------------------- nginx
start_nginx() {
    local attempt conf=$work/nginx/nginx.conf extra="" m
    for m in fastcgi uwsgi scgi; do
        "$nginx_bin" -V 2>&1 | grep -q -- "--without-http_${m}_module" \
            || extra+="    ${m}_temp_path $work/nginx/$m;"$'\n'
    done
    for attempt in 1 2 3 4 5; do
        port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
        cat > "$conf" <<EOF
daemon off;
worker_processes auto;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    default_type application/octet-stream;
    client_body_temp_path $work/nginx/body;
    proxy_temp_path $work/nginx/proxy;
$extra    server {
        listen 127.0.0.1:$port;
        root $data;
        # the capped case: the same files, each connection (request) held
        # to BENCH_CAP_RATE; static files keep Range, ETag and Last-Modified
        location /capped/ {
            alias $data/;
            limit_rate $cap_rate;
        }
    }
}
EOF
        "$nginx_bin" -c "$conf" -p "$work/nginx" -e "$work/nginx/error.log" &
        nginx_pid=$!
        local i
        for i in $(seq 50); do
            if curl -fs "http://127.0.0.1:$port/ping" >/dev/null 2>&1; then
                log "nginx $nginx_pid serving $data on 127.0.0.1:$port"
                return 0
            fi
            [ -d "/proc/$nginx_pid" ] || break
            sleep 0.1
        done
        kill -TERM "$nginx_pid" 2>/dev/null || true
        wait "$nginx_pid" 2>/dev/null || true
        nginx_pid=
    done
    cat "$work/nginx/error.log" >&2 || true
    die "could not start nginx"
}
start_nginx
url=http://127.0.0.1:$port

# ---------------------------------------------------------------- measuring
clk_tck=$(getconf CLK_TCK)
results=$work/results.tsv    # case tool run wall_us cpu_ms daemon_cpu_ms rc
verify=$work/verify.tsv      # case tool ok|MISMATCH|FAILED
scale=$work/scale.tsv        # key value
: > "$results"; : > "$verify"; : > "$scale"

times_ms() { # "1m2.345s" -> 62345
    local v=${1%s} min sec
    min=${v%%m*}; sec=${v#*m}
    echo $(( min * 60000 + 10#${sec%.*} * 1000 + 10#${sec#*.} ))
}
daemon_ticks() { # utime+stime of a pid in clock ticks, 0 if gone
    local line f
    read -r line < "/proc/$1/stat" 2>/dev/null || { echo 0; return; }
    read -r -a f <<< "${line##*) }"
    echo $(( f[11] + f[12] ))
}
daemon_pid() { tr -dc 0-9 < "$BITS_HOME/bitsd.pid"; }

# measure CASE TOOL RUN CMD...: wall time of CMD, its CPU (user+sys of it and
# its children, from bash's `times`) and, for bits, the daemon's CPU. No
# command substitution may run between the two `times`: a subshell is a
# child too.
measure() {
    local cs=$1 tool=$2 run=$3 c0u c0s c1u c1s d0=0 d1=0 t0 t1 rc dpid=
    shift 3
    dpid=${MEASURE_DAEMON:-}
    if [ -n "$dpid" ]; then d0=$(daemon_ticks "$dpid"); fi
    times > "$tmp/times0"
    t0=$EPOCHREALTIME
    if "$@" > /dev/null 2> "$tmp/stderr"; then rc=0; else rc=$?; fi
    t1=$EPOCHREALTIME
    times > "$tmp/times1"
    if [ -n "$dpid" ]; then d1=$(daemon_ticks "$dpid"); fi
    { read -r _ _; read -r c0u c0s; } < "$tmp/times0"
    { read -r _ _; read -r c1u c1s; } < "$tmp/times1"
    local cpu=$(( $(times_ms "$c1u") + $(times_ms "$c1s") - $(times_ms "$c0u") - $(times_ms "$c0s") ))
    local dcpu=$(( (d1 - d0) * 1000 / clk_tck ))
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$cs" "$tool" "$run" \
        $(( ${t1/./} - ${t0/./} )) "$cpu" "$dcpu" "$rc" >> "$results"
    if [ "$rc" != 0 ]; then
        log "$cs / $tool run $run FAILED (exit $rc): $(head -c 500 "$tmp/stderr")"
    fi
    return 0
}
last_rc() { tail -n 1 "$results" | cut -f7; }
settle() { sync; sleep "$settle"; }

# fresh BITS_HOME with its daemon started (outside any timing)
new_bits_home() {
    export BITS_HOME=$work/homes/$1
    mkdir -p "$BITS_HOME"
    bits_homes+=("$BITS_HOME")
    "$bits" list > /dev/null 2> "$tmp/autostart.err" \
        || die "bits list (daemon autostart) failed in $BITS_HOME: $(cat "$tmp/autostart.err")"
    local i
    for i in $(seq 50); do [ -s "$BITS_HOME/bitsd.pid" ] && [ -d "/proc/$(daemon_pid)" ] && return 0; sleep 0.1; done
    die "bitsd did not write $BITS_HOME/bitsd.pid"
}

record_verify() { # case tool: checks the tool's exit status, then runs "$@" after `--`
    local cs=$1 tool=$2; shift 3
    if [ "$(last_rc)" != 0 ]; then
        printf '%s\t%s\tFAILED\n' "$cs" "$tool" >> "$verify"
    elif "$@" > /dev/null 2>&1; then
        printf '%s\t%s\tok\n' "$cs" "$tool" >> "$verify"
    else
        printf '%s\t%s\tMISMATCH\n' "$cs" "$tool" >> "$verify"
        log "$cs / $tool: output differs from the source"
    fi
}

# ---------------------------------------------------------------- one big file
curl_fsync() { curl -fsS -o "$1" "$2" && sync "$1"; }
# the small files' like-for-like durability row: every file on disk before
# the command returns, as bits promises (one syncfs of the output's file system)
curl_parallel_sync() { curl -fsS --parallel --parallel-max 16 -K "$1" && sync -f "$2"; }

bench_big() { # case-name file MiB
    local cs=$1 name=$2 src=$data/$2 u=$url/$2 dst=$out/$2 r tool
    log "case $cs: one $3 MiB file, $runs run(s)"
    new_bits_home "$cs"
    local -a tools=("curl" "curl+fsync" "wget" "aria2c -x1" "aria2c -x8" "bits" "cp" "curl >/dev/null")
    for r in $(seq "$runs"); do
        for tool in "${tools[@]}"; do
            rm -f "$dst" "$out/.$name"* "$out/$name.aria2"
            settle
            MEASURE_DAEMON=
            case $tool in
            "curl")        measure "$cs" "$tool" "$r" curl -fsS -o "$dst" "$u" ;;
            "curl+fsync")  measure "$cs" "$tool" "$r" curl_fsync "$dst" "$u" ;;
            "wget")        measure "$cs" "$tool" "$r" wget -q -O "$dst" "$u" ;;
            "aria2c -x1")  measure "$cs" "$tool" "$r" aria2c -x1 --allow-overwrite=true --file-allocation=none -q -d "$out" -o "$name" "$u" ;;
            "aria2c -x8")  measure "$cs" "$tool" "$r" aria2c -x8 -s8 --allow-overwrite=true --file-allocation=none -q -d "$out" -o "$name" "$u" ;;
            "bits")        MEASURE_DAEMON=$(daemon_pid)
                           measure "$cs" "$tool" "$r" "$bits" start "$u" "$dst" ;;
            "cp")          measure "$cs" "$tool" "$r" cp "$src" "$dst" ;;
            "curl >/dev/null") measure "$cs" "$tool" "$r" curl -fsS -o /dev/null "$u" ;;
            esac
            MEASURE_DAEMON=
            if [ "$r" = 1 ]; then
                if [ "$tool" = "curl >/dev/null" ]; then
                    record_verify "$cs" "$tool" -- true
                else
                    record_verify "$cs" "$tool" -- cmp "$src" "$dst"
                fi
            fi
        done
    done
    rm -f "$dst"
    stop_bitsd "$BITS_HOME"
}

# ---------------------------------------------------------------- segmented, capped per connection
# One file from /capped/, where nginx holds each connection to BENCH_CAP_RATE
# (limit_rate), as many mirrors and CDNs do: the case where several
# connections for one file can win, which plain loopback never shows.
bench_capped() {
    local cs="capped ${capped_mib} MiB" name=capped.bin r tool
    local src=$data/capped.bin u=$url/capped/capped.bin dst=$out/capped.bin
    log "case capped: one $capped_mib MiB file, each connection capped at $cap_rate/s, $capped_runs run(s)"
    new_bits_home capped
    local -a tools=("curl" "aria2c -x1" "aria2c -x8" "bits --connections 1" "bits --connections 8")
    for r in $(seq "$capped_runs"); do
        for tool in "${tools[@]}"; do
            rm -f "$dst" "$out/.$name"* "$out/$name.aria2"
            settle
            MEASURE_DAEMON=
            case $tool in
            "curl")       measure "$cs" "$tool" "$r" curl -fsS -o "$dst" "$u" ;;
            "aria2c -x1") measure "$cs" "$tool" "$r" aria2c -x1 -s1 --allow-overwrite=true --file-allocation=none -q -d "$out" -o "$name" "$u" ;;
            "aria2c -x8") measure "$cs" "$tool" "$r" aria2c -x8 -s8 --min-split-size=1M --allow-overwrite=true --file-allocation=none -q -d "$out" -o "$name" "$u" ;;
            "bits --connections 1") MEASURE_DAEMON=$(daemon_pid)
                          measure "$cs" "$tool" "$r" "$bits" start --connections 1 "$u" "$dst" ;;
            "bits --connections 8") MEASURE_DAEMON=$(daemon_pid)
                          measure "$cs" "$tool" "$r" "$bits" start --connections 8 "$u" "$dst" ;;
            esac
            MEASURE_DAEMON=
            if [ "$r" = 1 ]; then record_verify "$cs" "$tool" -- cmp "$src" "$dst"; fi
        done
    done
    rm -f "$dst"
    stop_bitsd "$BITS_HOME"
}

# ---------------------------------------------------------------- many small files
bench_small() {
    local cs=small r tool i d top=$out/small
    log "case $cs: $small_n files of $small_kib KiB, $runs run(s)"
    local list=$work/small.urls cfg=$work/small.curl csv=$work/small.csv f
    local -a names
    mapfile -t names < <(cd "$data/small" && ls)
    : > "$list"
    for f in "${names[@]}"; do echo "$url/small/$f" >> "$list"; done
    new_bits_home "$cs"
    local -a tools=("curl -K (sequential)" "curl --parallel 16" "curl --parallel 16 + sync" "wget -i" "aria2c -j16" "bits --from-csv" "cp -r")
    # Every run writes into a directory of its own, and nothing is deleted
    # until the case is over. On ext4 without a journal (this machine's root)
    # the inode allocator skips inodes deleted in the last 60 s (up to 360 s
    # while their table block is dirty): deleting the previous run's 2,000
    # files right before a run made that run scan past them, and small-file
    # timings then depended on what ran in the minute before more than on
    # the tool. The disk-space check counts these copies.
    mkdir -p "$top"
    for r in $(seq "$runs"); do
        i=0
        for tool in "${tools[@]}"; do
            i=$((i + 1))
            d=$top/run$r-tool$i
            [ "$tool" = "cp -r" ] || mkdir "$d"
            case $tool in
            "curl -K (sequential)"|"curl --parallel 16"|"curl --parallel 16 + sync")
                for f in "${names[@]}"; do
                    printf 'url = "%s"\noutput = "%s"\n' "$url/small/$f" "$d/$f"
                done > "$cfg" ;;
            "bits --from-csv")
                { echo "Source,Destination"
                  for f in "${names[@]}"; do echo "$url/small/$f,$d/$f"; done; } > "$csv" ;;
            esac
            settle
            MEASURE_DAEMON=
            case $tool in
            "curl -K (sequential)") measure "$cs" "$tool" "$r" curl -fsS -K "$cfg" ;;
            "curl --parallel 16")   measure "$cs" "$tool" "$r" curl -fsS --parallel --parallel-max 16 -K "$cfg" ;;
            "curl --parallel 16 + sync") measure "$cs" "$tool" "$r" curl_parallel_sync "$cfg" "$d" ;;
            "wget -i")         measure "$cs" "$tool" "$r" wget -q -i "$list" -P "$d" ;;
            "aria2c -j16")     measure "$cs" "$tool" "$r" aria2c -j16 --allow-overwrite=true --file-allocation=none -q -d "$d" -i "$list" ;;
            "bits --from-csv") MEASURE_DAEMON=$(daemon_pid)
                               measure "$cs" "$tool" "$r" "$bits" start --from-csv "$csv" ;;
            "cp -r")           measure "$cs" "$tool" "$r" cp -r "$data/small" "$d" ;;
            esac
            MEASURE_DAEMON=
            if [ "$r" = 1 ]; then record_verify "$cs" "$tool" -- diff -r "$data/small" "$d"; fi
        done
    done
    rm -rf "$top"
    stop_bitsd "$BITS_HOME"
}

# ---------------------------------------------------------------- scale
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$(daemon_pid)/status"; }

bench_scale() {
    local n have=0 i t0 t1 r total_us=0
    log "case scale: jobs $jobs_list"
    new_bits_home scale
    sleep 1
    printf 'rss_rest_kib\t%s\n' "$(rss_kib)" >> "$scale"
    mkdir -p "$out/scale"
    local src=$url/small/f000000
    for n in $(tr ' ' '\n' <<< "$jobs_list" | sort -n | uniq); do
        [ "$n" -gt 0 ] || continue
        log "creating jobs $((have + 1))..$n one CLI call at a time"
        t0=$EPOCHREALTIME
        for (( i = have + 1; i <= n; i++ )); do
            "$bits" start --suspended --name "j$i" "$src" "$out/scale/j$i" > /dev/null \
                || die "bits start --suspended failed at job $i"
        done
        t1=$EPOCHREALTIME
        total_us=$(( total_us + ${t1/./} - ${t0/./} ))
        have=$n
        sleep 1
        printf 'create_us_%s\t%s\n' "$n" "$total_us" >> "$scale"
        printf 'rss_kib_%s\t%s\n' "$n" "$(rss_kib)" >> "$scale"
        for r in 1 2 3 4 5; do
            measure "scale" "list-$n" "$r" "$bits" list --json
            [ "$(last_rc)" = 0 ] || die "bits list --json failed with $n jobs"
        done
        "$bits" list --json > "$tmp/list.json"
        local got
        got=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$tmp/list.json") \
            || die "bits list --json printed invalid JSON"
        [ "$got" = "$n" ] || die "bits list --json shows $got jobs, expected $n"
        printf 'list_bytes_%s\t%s\n' "$n" "$(wc -c < "$tmp/list.json")" >> "$scale"
    done
    stop_bitsd "$BITS_HOME"
}

# ---------------------------------------------------------------- run
started=$(date '+%Y-%m-%d %H:%M:%S %Z')
has_case big && bench_big "big ${big_mib} MiB" big.bin "$big_mib"
has_case mid && bench_big "big ${mid_mib} MiB" mid.bin "$mid_mib"
has_case small && bench_small
has_case scale && [ -n "${jobs_list// /}" ] && [ "$jobs_list" != 0 ] && bench_scale
has_case capped && bench_capped

# ---------------------------------------------------------------- report
cpu_model=$(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo)
export B_STARTED="$started" B_NPROC="$(nproc)" B_KERNEL="$(uname -sr)" B_CPU="$cpu_model" \
    B_RUNS="$runs" B_CAPPED_RUNS="$(has_case capped && echo "$capped_runs")" \
    B_CAP="$(has_case capped && echo "$cap_rate $cap_bps")" B_SMALL_N="$small_n" B_SMALL_KIB="$small_kib" B_BIG="$big_mib" B_MID="$mid_mib" \
    B_REV="$git_rev$git_dirty" B_SETTLE="$settle" B_DIR="$base" \
    B_VERSIONS="$(curl --version | head -1 | cut -d' ' -f1-2); $(wget --version | head -1 | cut -d' ' -f1-3); $(aria2c --version | head -1); $("$nginx_bin" -v 2>&1 | sed 's/^nginx version: //')"
python3 - "$results" "$verify" "$scale" "$results_md" <<'PY'
import os, sys, statistics as st
res_path, ver_path, scale_path, md_path = sys.argv[1:5]
E = os.environ
rows = [l.rstrip("\n").split("\t") for l in open(res_path) if l.strip()]
verify = {(c, t): v for c, t, v in (l.rstrip("\n").split("\t") for l in open(ver_path) if l.strip())}
scale = dict(l.rstrip("\n").split("\t") for l in open(scale_path) if l.strip())
small_n = int(E["B_SMALL_N"]); small_kib = int(E["B_SMALL_KIB"])

order, data = [], {}
for c, t, r, wall_us, cpu_ms, dcpu_ms, rc in rows:
    if (c, t) not in data:
        order.append((c, t)); data[(c, t)] = []
    data[(c, t)].append((int(wall_us) / 1e6, (int(cpu_ms) + int(dcpu_ms)) / 1e3, int(rc)))

def ref_tool(case):
    return "curl -K (sequential)" if case == "small" else "curl"

def med(key, i):
    ok = [x[i] for x in data.get(key, []) if x[2] == 0]
    return st.median(ok) if ok else None

header = ["case", "tool", "median wall s", "min-max wall s", "throughput", "wall / curl", "CPU s (user+sys)", "CPU / curl", "check"]
table = []
for c, t in order:
    if c == "scale":
        continue
    runs = data[(c, t)]
    fails = sum(1 for x in runs if x[2] != 0)
    w, cpu = med((c, t), 0), med((c, t), 1)
    rw, rcpu = med((c, ref_tool(c)), 0), med((c, ref_tool(c)), 1)
    if w is None:
        table.append([c, t, "FAILED", "", "", "", "", "", verify.get((c, t), "FAILED")]); continue
    if c == "small":
        tp = f"{small_n / w:,.0f} files/s"
    else:
        mib = float(c.split()[1])
        tp = f"{mib / w:,.0f} MiB/s"
    ratio = f"{w / rw:.2f}" if rw else ""
    cpur = ""
    if t.startswith("bits"):
        cpur = f"{cpu / rcpu:.2f}" if rcpu else "n/a"
    check = verify.get((c, t), "?")
    if fails:
        check += f" ({fails}/{len(runs)} runs failed)"
    walls = [x[0] for x in runs if x[2] == 0]
    table.append([c, t, f"{w:.3f}", f"{min(walls):.3f}-{max(walls):.3f}", tp, ratio, f"{cpu:.3f}", cpur, check])

lines = []
if any(k[0] == "scale" for k in order) or scale:
    lines.append(f"daemon RSS at rest: {int(scale['rss_rest_kib']) / 1024:.1f} MiB")
    ns = sorted(int(k.split("_")[-1]) for k in scale if k.startswith("create_us_"))
    for n in ns:
        cu = int(scale[f"create_us_{n}"]) / 1e6
        lw = med(("scale", f"list-{n}"), 0)
        lines.append(f"{n:,} jobs: created one `bits start --suspended` call at a time in {cu:.2f} s "
                     f"({cu * 1000 / n:.1f} ms/call); daemon RSS {int(scale[f'rss_kib_{n}']) / 1024:.1f} MiB; "
                     f"`bits list --json` {lw * 1000:.0f} ms median of 5 ({int(scale[f'list_bytes_{n}']):,} bytes)")

info = [
    f"date: {E['B_STARTED']}",
    f"host: nproc {E['B_NPROC']}, {E['B_KERNEL']}, CPU {E['B_CPU']}",
    f"bits: {E['B_REV']}; {E['B_VERSIONS']}",
    f"runs per tool and case: {E['B_RUNS']}"
    + (f" (capped: {E['B_CAPPED_RUNS']})" if E.get("B_CAPPED_RUNS") and E["B_CAPPED_RUNS"] != E["B_RUNS"] else "")
    + f" (sync + {E['B_SETTLE']} s pause before each); outputs under {E['B_DIR']}",
]
notes = [
    "wall / curl: median wall time over curl's (`curl -s -o`; for small files the sequential `curl -K`, "
    "since a bits job moves its files one at a time); > 1 is slower than curl.",
    "CPU s: user+sys of the tool's process(es); for bits the CLI plus the daemon's share (/proc/PID/stat). "
    "CPU / curl: bits' CPU over curl's.",
    "bits fsyncs every file before it completes; `curl+fsync` is curl followed by `sync FILE`, the like-for-like durability floor.",
]
bw = med(("small", "bits --from-csv"), 0)
if bw:
    cmp = []
    for t in ("curl --parallel 16", "curl --parallel 16 + sync"):
        w = med(("small", t), 0)
        if w:
            cmp.append(f"{(small_n / bw) / (small_n / w):.2f} of `{t}`")
    if cmp:
        notes.append("small: bits' files/s is " + " and ".join(cmp) + ".")
if E.get("B_CAP") and any(c.startswith("capped") for c, _ in order):
    rate, bps = E["B_CAP"].split()
    notes.append(f"capped: the server caps each connection at {int(bps) / 1048576:g} MiB/s (nginx `limit_rate {rate}`), "
                 f"so N connections may get N times that; wall / curl is over single-connection curl; "
                 f"`aria2c -x8` is `-x8 -s8 --min-split-size=1M`.")

def text_table(h, rows):
    w = [max(len(str(r[i])) for r in [h] + rows) for i in range(len(h))]
    num = {2, 3, 4, 5, 6, 7}
    fmt = lambda r: " | ".join((str(x).rjust(w[i]) if i in num else str(x).ljust(w[i])) for i, x in enumerate(r))
    return "\n".join([fmt(h), "-+-".join("-" * x for x in w)] + [fmt(r) for r in rows])

print()
print("=" * 30 + " bits benchmark " + "=" * 30)
for l in info: print(l)
print()
if table: print(text_table(header, table)); print()
for l in lines: print(l)
print()
for l in notes: print("note: " + l)

with open(md_path, "w") as f:
    f.write("# bits benchmark: latest results\n\n")
    f.write("Written by `bench/run.sh`; see `bench/README.md`.\n\n")
    for l in info: f.write(f"- {l}\n")
    f.write("\n")
    if table:
        f.write("| " + " | ".join(header) + " |\n")
        f.write("|" + "|".join(["---", "---"] + ["---:"] * 6 + ["---"]) + "|\n")
        for r in table:
            f.write("| " + " | ".join(str(x).replace("|", "\\|") for x in r) + " |\n")
        f.write("\n")
    if lines:
        f.write("Scale:\n\n")
        for l in lines: f.write(f"- {l}\n")
        f.write("\n")
    for l in notes: f.write(f"- {l}\n")
bad = [r for r in table if r[-1] != "ok"]
for r in bad:
    msg = f"WARNING: {r[0]} / {r[1]}: {r[-1]}: its figures are not valid"
    print(msg, file=sys.stderr)
    with open(md_path, "a") as f: f.write(f"- **{msg}**\n")
print(f"\nmarkdown written to {md_path}")
sys.exit(1 if bad else 0)
PY
