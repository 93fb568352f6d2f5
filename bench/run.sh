#!/usr/bin/env bash
# bits "Speed and scale" benchmark: bits against curl, wget, aria2c and cp,
# side by side in one run, against a private nginx on loopback; then the
# daemon's memory and latency with many jobs. See bench/README.md.
#
# Usage: bench/run.sh                      full run (2 GiB / 256 MiB / 2,000 x 16 KiB, 5 runs;
#                                          capped: 256 MiB at 20 MiB/s per connection, 3 runs;
#                                          upload 1 GiB; HTTPS 2 GiB; HTTP/2 2,000 x 16 KiB;
#                                          20,000 x 4 KiB; one job of 100,000 files)
#        BENCH_QUICK=1 BENCH_RUNS=1 bench/run.sh   quick smoke run
#
# Environment (all optional):
#   BENCH_QUICK=1         smaller defaults: 256 MiB / 64 MiB / 200 files, 1,000 jobs, capped 32 MiB,
#                         upload 64 MiB, HTTPS 256 MiB, 1,000 x 4 KiB, a job of 10,000 files
#   BENCH_RUNS=N          timed runs per tool and case (default 5)
#   BENCH_BIG_MIB=N       size of the big file (default 2048; quick 256)
#   BENCH_MID_MIB=N       size of the second big-file case (default 256; quick 64)
#   BENCH_SMALL_N=N       number of small files (default 2000; quick 200)
#   BENCH_SMALL_KIB=N     size of each small file (default 16)
#   BENCH_JOBS="N ..."    job counts for the scale test, cumulative
#                         (default "1000 10000"; quick "1000"; "0" skips it)
#   BENCH_DIR=DIR         where the temp dir (data + outputs) goes (default /var/tmp)
#   BENCH_SETTLE=S        pause after each `sync` between runs (default 1)
#   BENCH_DROP_CACHES=X   before each run, drop the page cache and read the case's
#                         source back into it: 1, 0, or auto (default: 1 when this
#                         script may write /proc/sys/vm/drop_caches, i.e. as root)
#   BENCH_CAPPED_MIB=N    file size of the capped case (default 256; quick 32)
#   BENCH_CAPPED_RUNS=N   timed runs per tool in the capped case (default 3, or BENCH_RUNS if lower)
#   BENCH_CAP_RATE=R      per-connection rate cap of the capped case, in nginx's limit_rate
#                         units (bytes/s; k = KiB, m = MiB, g = GiB) (default 20m)
#   BENCH_UPLOAD_MIB=N    file of the upload case (default 1024; quick 64)
#   BENCH_TLS_MIB=N       file of the HTTPS case (default 2048; quick 256)
#   BENCH_SMALL4K_N=N     number of files of the small4k case (default 20000; quick 1000)
#   BENCH_SMALL4K_KIB=N   size of each of them (default 4)
#   BENCH_MEMORY_FILES=N  files in the one suspended job of the memory case
#                         (default 100000; quick 10000)
#   BENCH_CASES="..."     subset of: big mid small scale capped upload tls h2 small4k memory
#                         (default all)
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
    def_upload=64 def_tls=256 def_small4k=1000 def_memory=10000
else
    def_big=2048 def_mid=256 def_small=2000 def_jobs="1000 10000" def_capped=256
    def_upload=1024 def_tls=2048 def_small4k=20000 def_memory=100000
fi
runs=${BENCH_RUNS:-5}
capped_mib=${BENCH_CAPPED_MIB:-$def_capped}
cap_rate=${BENCH_CAP_RATE:-20m}
big_mib=${BENCH_BIG_MIB:-$def_big}
mid_mib=${BENCH_MID_MIB:-$def_mid}
small_n=${BENCH_SMALL_N:-$def_small}
small_kib=${BENCH_SMALL_KIB:-16}
jobs_list=${BENCH_JOBS:-$def_jobs}
upload_mib=${BENCH_UPLOAD_MIB:-$def_upload}
tls_mib=${BENCH_TLS_MIB:-$def_tls}
small4k_n=${BENCH_SMALL4K_N:-$def_small4k}
small4k_kib=${BENCH_SMALL4K_KIB:-4}
memory_n=${BENCH_MEMORY_FILES:-$def_memory}
settle=${BENCH_SETTLE:-1}
drop_caches=${BENCH_DROP_CACHES:-auto}
all_cases="big mid small scale capped upload tls h2 small4k memory"
cases=${BENCH_CASES:-$all_cases}
base=${BENCH_DIR:-/var/tmp}
results_md=${BENCH_RESULTS:-$bench_dir/results-latest.md}
[[ $runs =~ ^[1-9][0-9]*$ ]] || die "runs must be a positive integer (got '$runs')"
capped_runs=${BENCH_CAPPED_RUNS:-$(( runs < 3 ? runs : 3 ))}
for v in runs capped_runs big_mib mid_mib small_n small_kib capped_mib \
         upload_mib tls_mib small4k_n small4k_kib memory_n; do
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
case $drop_caches in
    auto) if [ -w /proc/sys/vm/drop_caches ]; then drop_caches=1; else drop_caches=0; fi ;;
    0) ;;
    1) [ -w /proc/sys/vm/drop_caches ] || die "BENCH_DROP_CACHES=1 needs to write /proc/sys/vm/drop_caches (run as root)" ;;
    *) die "BENCH_DROP_CACHES must be 1, 0 or auto (got '$drop_caches')" ;;
esac
for c in $cases; do
    case $c in big|mid|small|scale|capped|upload|tls|h2|small4k|memory) ;;
    *) die "unknown case '$c' in BENCH_CASES ($all_cases)";; esac
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
if has_case tls || has_case h2; then
    command -v openssl >/dev/null 2>&1 || die "'openssl' is required for the tls and h2 cases"
    "$nginx_bin" -V 2>&1 | grep -q -- --with-http_ssl_module \
        || die "$nginx_bin has no ssl module (needed by the tls and h2 cases)"
fi
if has_case h2; then
    "$nginx_bin" -V 2>&1 | grep -q -- --with-http_v2_module \
        || die "$nginx_bin has no http_v2 module (needed by the h2 case)"
fi

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
# files on disk take whole 4 KiB blocks
small_mib_total=$(( (small_n * ((small_kib + 3) / 4 * 4) + 1023) / 1024 ))
small4k_mib_total=$(( (small4k_n * ((small4k_kib + 3) / 4 * 4) + 1023) / 1024 ))
# the one-file cases reuse big.bin or mid.bin when they have the same size
same_as_big() { { has_case big && [ "$1" = "$big_mib" ]; } || { has_case mid && [ "$1" = "$mid_mib" ]; }; }
data_mib=0
has_case big && data_mib=$((data_mib + big_mib))
has_case mid && data_mib=$((data_mib + mid_mib))
{ has_case small || has_case scale || has_case h2 || has_case memory; } && data_mib=$((data_mib + small_mib_total))
has_case capped && data_mib=$((data_mib + capped_mib))
# upload and tls: one output copy at a time, as the big cases (whose share
# covers them when they reuse big.bin or mid.bin)
has_case upload && ! same_as_big "$upload_mib" && data_mib=$((data_mib + upload_mib))
has_case tls && ! same_as_big "$tls_mib" && data_mib=$((data_mib + tls_mib))
has_case small4k && data_mib=$((data_mib + small4k_mib_total))
[ -d "$base" ] || die "BENCH_DIR $base does not exist"
need_mib=$(( data_mib * 5 / 2 + 64 ))
# small: every run of every tool keeps its copy until the case ends (7 tools)
has_case small && need_mib=$(( need_mib + small_mib_total * 7 * runs ))
# h2 and small4k: the same rule (3 and 4 tools)
has_case h2 && need_mib=$(( need_mib + small_mib_total * 3 * runs ))
has_case small4k && need_mib=$(( need_mib + small4k_mib_total * 4 * runs ))
# memory: the job store of one job of BENCH_MEMORY_FILES files (~1 KiB a file, generously)
has_case memory && need_mib=$(( need_mib + memory_n / 1024 + 16 ))
avail_mib=$(df -Pm "$base" | awk 'NR==2 {print $4}')
[ "$avail_mib" -ge "$need_mib" ] \
    || die "not enough free space in $base: ${avail_mib} MiB free, need ~${need_mib} MiB; set BENCH_DIR or smaller sizes"
# and inodes, on file systems that count them (small files: one per copy)
need_inodes=1000
has_case small && need_inodes=$(( need_inodes + small_n * (7 * runs + 1) ))
has_case h2 && need_inodes=$(( need_inodes + small_n * 3 * runs ))
has_case small4k && need_inodes=$(( need_inodes + small4k_n * (4 * runs + 1) ))
avail_inodes=$(df -Pi "$base" | awk 'NR==2 {print $4}')
if [[ $avail_inodes =~ ^[0-9]+$ ]] && [ "$avail_inodes" -gt 0 ]; then
    [ "$avail_inodes" -ge "$need_inodes" ] \
        || die "not enough free inodes in $base: $avail_inodes free, need ~$need_inodes; set BENCH_DIR or smaller sizes"
fi

# ---------------------------------------------------------------- cleanup
work=$(mktemp -d -p "$base" bits-bench.XXXXXX)
nginx_pid=
serve_pid=
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
    if [ -n "$serve_pid" ]; then
        kill -TERM "$serve_pid" 2>/dev/null || true
        wait "$serve_pid" 2>/dev/null || true
    fi
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
# the upload and tls cases reuse big.bin or mid.bin when they have the same size
file_of() { # MiB name -> a file of data/ of that size
    if has_case big && [ "$1" = "$big_mib" ]; then echo big.bin
    elif has_case mid && [ "$1" = "$mid_mib" ]; then echo mid.bin
    else echo "$2"; fi
}
upload_name=$(file_of "$upload_mib" upload.bin)
tls_name=$(file_of "$tls_mib" tls.bin)
if has_case upload && [ "$upload_name" = upload.bin ]; then make_big upload.bin "$upload_mib"; fi
if has_case tls && [ "$tls_name" = tls.bin ]; then make_big tls.bin "$tls_mib"; fi
make_small() { # dir N KiB
    log "making $2 files of $3 KiB in data/$1"
    mkdir -p "$data/$1"; chmod 755 "$data/$1"
    (cd "$data/$1" && head -c "$(( $2 * $3 * 1024 ))" /dev/urandom \
        | split -b "$(( $3 * 1024 ))" -d -a 6 - f)
    chmod 644 "$data/$1"/*
    [ "$(find "$data/$1" -type f | wc -l)" -eq "$2" ] || die "could not make the files of data/$1"
}
if has_case small || has_case scale || has_case h2 || has_case memory; then
    make_small small "$small_n" "$small_kib"
fi
if has_case small4k; then make_small small4k "$small4k_n" "$small4k_kib"; fi
echo ok > "$data/ping"; chmod 644 "$data/ping"

# ---------------------------------------------------------------- TLS
# A private CA and a server certificate for 127.0.0.1 and localhost, made
# fresh each run: the CA a v3 CA certificate, the leaf not a CA and for
# serverAuth only, as rustls/webpki requires.
tls_dir=$work/tls
ca=$tls_dir/ca.pem
make_tls() {
    mkdir -p "$tls_dir"
    cat > "$tls_dir/openssl.cnf" <<'CNF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = bits bench
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[v3_leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
CNF
    (
        cd "$tls_dir"
        openssl req -x509 -config openssl.cnf -extensions v3_ca -subj "/CN=bits bench CA" \
            -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.pem -days 7
        openssl req -new -config openssl.cnf -subj "/CN=localhost" \
            -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout server.key -out server.csr
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -set_serial "0x$(openssl rand -hex 8)" \
            -days 7 -extfile openssl.cnf -extensions v3_leaf -out server.pem
        openssl verify -CAfile ca.pem -purpose sslserver server.pem
    ) > "$tmp/openssl.log" 2>&1 || { cat "$tmp/openssl.log" >&2; die "could not make the TLS certificates"; }
    chmod 644 "$tls_dir"/*.pem
}
tls_on=0
if has_case tls || has_case h2; then tls_on=1; make_tls; fi

# ---------------------------------------------------------------- servers
# wait_up PID [CURL-OPTION...] URL: true once URL answers, false when PID
# dies or 5 s pass.
wait_up() {
    local pid=$1 i
    shift
    for i in $(seq 50); do
        curl -s -o /dev/null "$@" 2>/dev/null && return 0
        [ -d "/proc/$pid" ] || return 1
        sleep 0.1
    done
    return 1
}

start_nginx() {
    local attempt conf=$work/nginx/nginx.conf extra="" m tls_servers="" ports
    for m in fastcgi uwsgi scgi; do
        "$nginx_bin" -V 2>&1 | grep -q -- "--without-http_${m}_module" \
            || extra+="    ${m}_temp_path $work/nginx/$m;"$'\n'
    done
    for attempt in 1 2 3 4 5; do
        ports=$(python3 -c 'import socket
ss = [socket.socket() for _ in range(3)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')
        read -r port tport hport <<< "$ports"
        if [ "$tls_on" = 1 ]; then
            # tls: HTTPS with HTTP/1.1 only (ALPN offers nothing else), so
            # curl and bits speak the same protocol; h2: the same files on a
            # port with http2, where both should negotiate HTTP/2. Each logs
            # its requests' protocol, TLS version and cipher, which the
            # script reads after each tool's first run.
            tls_servers="    ssl_certificate $tls_dir/server.pem;
    ssl_certificate_key $tls_dir/server.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    log_format proto '\$server_protocol \$ssl_protocol \$ssl_cipher \$status';
    server {
        listen 127.0.0.1:$tport ssl;
        root $data;
        access_log $work/nginx/tls.log proto;
    }
    server {
        listen 127.0.0.1:$hport ssl http2;
        root $data;
        access_log $work/nginx/h2.log proto;
    }
"
        fi
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
$tls_servers}
EOF
        "$nginx_bin" -c "$conf" -p "$work/nginx" -e "$work/nginx/error.log" &
        nginx_pid=$!
        if wait_up "$nginx_pid" -f "http://127.0.0.1:$port/ping"; then
            log "nginx $nginx_pid serving $data on 127.0.0.1:$port"
            return 0
        fi
        kill -TERM "$nginx_pid" 2>/dev/null || true
        wait "$nginx_pid" 2>/dev/null || true
        nginx_pid=
    done
    cat "$work/nginx/error.log" >&2 || true
    die "could not start nginx"
}
start_nginx
url=http://127.0.0.1:$port
turl=https://127.0.0.1:$tport
hurl=https://127.0.0.1:$hport
if [ "$tls_on" = 1 ]; then
    for u in "$turl" "$hurl"; do
        curl -fsS --cacert "$ca" -o /dev/null "$u/ping" 2> "$tmp/tls-ping.err" \
            || die "nginx does not answer over TLS on $u: $(cat "$tmp/tls-ping.err")"
    done
fi

# ---------------------------------------------------------------- measuring
clk_tck=$(getconf CLK_TCK)
results=$work/results.tsv    # case tool run wall_us cpu_ms daemon_cpu_ms rc
verify=$work/verify.tsv      # case tool ok|MISMATCH|FAILED
scale=$work/scale.tsv        # key value
proto=$work/proto.tsv        # case tool what-nginx-logged (tls, h2)
: > "$results"; : > "$verify"; : > "$scale"; : > "$proto"

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
# settle [SOURCE...]: every run starts from the same memory state. The
# file system is synced (no dirty pages of the last run to write back);
# given the case's sources (files, or directories of them) and with
# BENCH_DROP_CACHES, the page cache is emptied and the sources are read
# back in, so that every tool reads them from memory and writes into free
# pages, not into memory still held by earlier runs' copies. Without it,
# the same code measured 1.1 and 1.4 x curl over HTTPS in two runs an hour
# apart. The small-file cases pass no source: emptying the cache would
# also drop the file system's metadata, and every run would start by
# reading inode tables back from disk.
settle() {
    sync
    if [ "$drop_caches" = 1 ]; then
        echo 3 > /proc/sys/vm/drop_caches
        local s
        for s in "$@"; do
            if [ -d "$s" ]; then find "$s" -type f -exec cat {} + > /dev/null
            else cat "$s" > /dev/null; fi
        done
    fi
    sleep "$settle"
}

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
            settle "$src"
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
            settle "$src"
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

# ---------------------------------------------------------------- upload
# One file uploaded to `bits serve --upload` on loopback: `curl -T`, one
# plain PUT (which bits serve writes to a temporary file, fsyncs and renames
# into place), against `bits start --type upload`, the BITS Upload Protocol
# in fragments through the daemon.
start_serve() { # DIR: bits serve --upload on a free port; sets sport
    local attempt
    for attempt in 1 2 3 4 5; do
        sport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
        "$bits" serve "$1" --listen "127.0.0.1:$sport" --upload --allow-overwrite > "$work/serve.log" 2>&1 &
        serve_pid=$!
        # Any answer will do: the directory's listing may be refused.
        if wait_up "$serve_pid" "http://127.0.0.1:$sport/"; then
            log "bits serve $serve_pid taking uploads into $1 on 127.0.0.1:$sport"
            return 0
        fi
        kill -TERM "$serve_pid" 2>/dev/null || true
        wait "$serve_pid" 2>/dev/null || true
        serve_pid=
    done
    cat "$work/serve.log" >&2 || true
    die "could not start bits serve --upload"
}
stop_serve() {
    [ -n "$serve_pid" ] || return 0
    kill -TERM "$serve_pid" 2>/dev/null || true
    wait "$serve_pid" 2>/dev/null || true
    serve_pid=
}

bench_upload() {
    local cs="upload ${upload_mib} MiB" src=$data/$upload_name served=$work/served r tool dst u
    log "case upload: one $upload_mib MiB file to bits serve --upload, $runs run(s)"
    mkdir -p "$served"
    start_serve "$served"
    u=http://127.0.0.1:$sport
    new_bits_home upload
    local -a tools=("curl -T" "bits")
    for r in $(seq "$runs"); do
        for tool in "${tools[@]}"; do
            rm -f "$served"/*.bin
            settle "$src"
            MEASURE_DAEMON=
            case $tool in
            "curl -T") dst=$served/c.bin
                       measure "$cs" "$tool" "$r" curl -fsS -T "$src" "$u/c.bin" ;;
            "bits")    dst=$served/b.bin
                       MEASURE_DAEMON=$(daemon_pid)
                       measure "$cs" "$tool" "$r" "$bits" start --type upload "$src" "$u/b.bin" ;;
            esac
            MEASURE_DAEMON=
            if [ "$r" = 1 ]; then record_verify "$cs" "$tool" -- cmp "$src" "$dst"; fi
        done
    done
    rm -f "$served"/*.bin
    stop_bitsd "$BITS_HOME"
    stop_serve
}

# ---------------------------------------------------------------- HTTPS
log_lines() { if [ -f "$1" ]; then wc -l < "$1"; else echo 0; fi; }
# record_proto CASE TOOL LOG LINES-BEFORE: what nginx logged for the tool's
# requests since then: protocol, TLS version, cipher, and how many
record_proto() {
    local got
    sleep 0.3   # nginx logs a request after its last byte has gone out
    got=$(tail -n +"$(( $4 + 1 ))" "$3" | awk '{print $1, $2, $3}' | sort | uniq -c \
          | awk '{n = $1; $1 = ""; printf "%s%s x %d", sep, substr($0, 2), n; sep = "; "}')
    printf '%s\t%s\t%s\n' "$1" "$2" "${got:-nothing logged}" >> "$proto"
}
curl_sync_file() { local f=$1; shift; curl "$@" && sync "$f"; }
curl_sync_dir() { local d=$1; shift; curl "$@" && sync -f "$d"; }

# One big file over HTTPS (HTTP/1.1: that port offers no h2), from the same
# nginx, trusting the script's CA.
bench_tls() {
    local cs="tls ${tls_mib} MiB" src=$data/$tls_name u=$turl/$tls_name dst=$out/tls.bin r tool before
    log "case tls: one $tls_mib MiB file over HTTPS, $runs run(s)"
    new_bits_home tls
    # what curl negotiates, once, untimed
    curl -sSv --cacert "$ca" -o /dev/null "$turl/ping" 2> "$tmp/curl-v.txt" || true
    printf 'tls_curl\t%s\n' "$(sed -n 's/^\* SSL connection using //p' "$tmp/curl-v.txt" | tr '\n' ' ')" >> "$scale"
    local -a tools=("curl" "curl+fsync" "bits")
    for r in $(seq "$runs"); do
        for tool in "${tools[@]}"; do
            rm -f "$dst" "$out/.tls.bin"*
            settle "$src"
            before=$(log_lines "$work/nginx/tls.log")
            MEASURE_DAEMON=
            case $tool in
            "curl")       measure "$cs" "$tool" "$r" curl -fsS --cacert "$ca" -o "$dst" "$u" ;;
            "curl+fsync") measure "$cs" "$tool" "$r" curl_sync_file "$dst" -fsS --cacert "$ca" -o "$dst" "$u" ;;
            "bits")       MEASURE_DAEMON=$(daemon_pid)
                          measure "$cs" "$tool" "$r" "$bits" start --ca-cert "$ca" "$u" "$dst" ;;
            esac
            MEASURE_DAEMON=
            if [ "$r" = 1 ]; then
                record_verify "$cs" "$tool" -- cmp "$src" "$dst"
                record_proto "$cs" "$tool" "$work/nginx/tls.log" "$before"
            fi
        done
    done
    rm -f "$dst"
    stop_bitsd "$BITS_HOME"
}

# ---------------------------------------------------------------- many files: h2, small4k
# bench_many CASE DATA-SUBDIR BASE-URL TOOL...: as bench_small, for the
# small files over HTTPS with HTTP/2 (h2) and for many 4 KiB files (small4k).
# Every run of every tool writes into a directory of its own (see
# bench_small), and these copies stay until the script ends, so that the
# next case does not start right after tens of thousands of deletions.
bench_many() {
    local cs=$1 sub=$2 base=$3 r tool i d top=$out/$1 f before=0 logf=""
    shift 3
    local -a tools=("$@") names curl_x=() bits_x=()
    local cfg=$work/$cs.curl csv=$work/$cs.csv
    mapfile -t names < <(cd "$data/$sub" && ls)
    if [ "$cs" = h2 ]; then
        curl_x=(--http2 --cacert "$ca"); bits_x=(--ca-cert "$ca"); logf=$work/nginx/h2.log
    fi
    log "case $cs: ${#names[@]} files of data/$sub from $base, $runs run(s)"
    new_bits_home "$cs"
    mkdir -p "$top"
    for r in $(seq "$runs"); do
        i=0
        for tool in "${tools[@]}"; do
            i=$((i + 1))
            d=$top/run$r-tool$i
            [ "$tool" = "cp -r" ] || mkdir "$d"
            case $tool in
            "curl "*)
                for f in "${names[@]}"; do
                    printf 'url = "%s"\noutput = "%s"\n' "$base/$sub/$f" "$d/$f"
                done > "$cfg" ;;
            "bits --from-csv")
                { echo "Source,Destination"
                  for f in "${names[@]}"; do echo "$base/$sub/$f,$d/$f"; done; } > "$csv" ;;
            esac
            settle
            if [ -n "$logf" ]; then before=$(log_lines "$logf"); fi
            MEASURE_DAEMON=
            case $tool in
            "curl "*" + sync") measure "$cs" "$tool" "$r" curl_sync_dir "$d" \
                                   -fsS "${curl_x[@]}" --parallel --parallel-max 16 -K "$cfg" ;;
            "curl "*)          measure "$cs" "$tool" "$r" curl -fsS "${curl_x[@]}" --parallel --parallel-max 16 -K "$cfg" ;;
            "bits --from-csv") MEASURE_DAEMON=$(daemon_pid)
                               measure "$cs" "$tool" "$r" "$bits" start "${bits_x[@]}" --from-csv "$csv" ;;
            "cp -r")           measure "$cs" "$tool" "$r" cp -r "$data/$sub" "$d" ;;
            esac
            MEASURE_DAEMON=
            if [ "$r" = 1 ]; then
                record_verify "$cs" "$tool" -- diff -r "$data/$sub" "$d"
                if [ -n "$logf" ]; then record_proto "$cs" "$tool" "$logf" "$before"; fi
            fi
        done
    done
    stop_bitsd "$BITS_HOME"
}

# ---------------------------------------------------------------- memory
# One suspended job of BENCH_MEMORY_FILES files (never transferred): the
# daemon's RSS before, after creating it, and after a restart that loads it
# from the job store.
bench_memory() {
    local n=$memory_n csv=$work/memory.csv job t0 t1 pid0 pid1 i f
    log "case memory: one suspended job of $n files"
    new_bits_home memory
    sleep 1
    printf 'mem_files\t%s\n' "$n" >> "$scale"
    printf 'mem_rss_rest_kib\t%s\n' "$(rss_kib)" >> "$scale"
    mkdir -p "$out/mem"
    (cd "$data/small" && ls) | awk -v n="$n" -v u="$url/small/" -v d="$out/mem/" '
        { a[NR - 1] = $0 }
        END { print "Source,Destination"; for (i = 0; i < n; i++) printf "%s%s,%sf%06d\n", u, a[i % NR], d, i }' > "$csv"
    t0=$EPOCHREALTIME
    job=$("$bits" start --suspended --from-csv "$csv" 2> "$tmp/memory.err") \
        || die "bits start --suspended --from-csv ($n files) failed: $(head -c 500 "$tmp/memory.err")"
    t1=$EPOCHREALTIME
    job=$(tr -d '[:space:]' <<< "$job")
    printf 'mem_create_us\t%s\n' $(( ${t1/./} - ${t0/./} )) >> "$scale"
    sleep 1
    printf 'mem_rss_created_kib\t%s\n' "$(rss_kib)" >> "$scale"
    # reading the big job back: once each, untimed apart from the call itself
    measure "memory" "list-json" 1 "$bits" list --json
    [ "$(last_rc)" = 0 ] || die "bits list --json failed with a job of $n files"
    "$bits" list --json > "$tmp/mem-list.json"
    printf 'mem_list_bytes\t%s\n' "$(wc -c < "$tmp/mem-list.json")" >> "$scale"
    measure "memory" "info-json" 1 "$bits" info "$job" --json
    [ "$(last_rc)" = 0 ] || die "bits info $job --json failed with $n files"
    "$bits" info "$job" --json > "$tmp/mem-info.json"
    printf 'mem_info_bytes\t%s\n' "$(wc -c < "$tmp/mem-info.json")" >> "$scale"
    # restart: the job comes back from the store
    pid0=$(daemon_pid)
    stop_bitsd "$BITS_HOME"
    t0=$EPOCHREALTIME
    "$bits" list > /dev/null 2> "$tmp/autostart.err" \
        || die "bits list (daemon restart) failed: $(cat "$tmp/autostart.err")"
    t1=$EPOCHREALTIME
    for i in $(seq 50); do
        pid1=$(daemon_pid 2>/dev/null || true)
        [ -n "$pid1" ] && [ "$pid1" != "$pid0" ] && [ -d "/proc/$pid1" ] && break
        sleep 0.1
    done
    [ -n "$pid1" ] && [ "$pid1" != "$pid0" ] && [ -d "/proc/$pid1" ] || die "bitsd did not restart"
    printf 'mem_restart_us\t%s\n' $(( ${t1/./} - ${t0/./} )) >> "$scale"
    sleep 2
    printf 'mem_rss_restart_kib\t%s\n' "$(rss_kib)" >> "$scale"
    "$bits" info "$job" --json > "$tmp/mem-info2.json" || die "the job of $n files is gone after the restart"
    for f in "$tmp/mem-info.json" "$tmp/mem-info2.json"; do
        python3 -c 'import json, sys; sys.exit(json.load(open(sys.argv[1]))["FilesTotal"] != int(sys.argv[2]))' "$f" "$n" \
            || die "bits info $job --json does not show $n files ($f)"
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
has_case upload && bench_upload
has_case tls && bench_tls
has_case h2 && bench_many h2 small "$hurl" \
    "curl --parallel --http2" "curl --parallel --http2 + sync" "bits --from-csv"
has_case small4k && bench_many small4k small4k "$url" \
    "curl --parallel 16" "curl --parallel 16 + sync" "bits --from-csv" "cp -r"
has_case memory && bench_memory

# ---------------------------------------------------------------- report
cpu_model=$(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo)
export B_STARTED="$started" B_NPROC="$(nproc)" B_KERNEL="$(uname -sr)" B_CPU="$cpu_model" \
    B_RUNS="$runs" B_CAPPED_RUNS="$(has_case capped && echo "$capped_runs")" \
    B_CAP="$(has_case capped && echo "$cap_rate $cap_bps")" B_SMALL_N="$small_n" B_SMALL_KIB="$small_kib" B_BIG="$big_mib" B_MID="$mid_mib" \
    B_REV="$git_rev$git_dirty" B_SETTLE="$settle" B_DROP="$drop_caches" B_DIR="$base" \
    B_SMALL4K_N="$small4k_n" B_SMALL4K_KIB="$small4k_kib" \
    B_VERSIONS="$(curl --version | head -1 | cut -d' ' -f1-2); $(wget --version | head -1 | cut -d' ' -f1-3); $(aria2c --version | head -1); $("$nginx_bin" -v 2>&1 | sed 's/^nginx version: //')"
python3 - "$results" "$verify" "$scale" "$results_md" "$proto" <<'PY'
import os, sys, statistics as st
res_path, ver_path, scale_path, md_path, proto_path = sys.argv[1:6]
E = os.environ
rows = [l.rstrip("\n").split("\t") for l in open(res_path) if l.strip()]
verify = {(c, t): v for c, t, v in (l.rstrip("\n").split("\t") for l in open(ver_path) if l.strip())}
scale = dict(l.rstrip("\n").split("\t", 1) for l in open(scale_path) if l.strip())
proto = [l.rstrip("\n").split("\t") for l in open(proto_path) if l.strip()]
small_n = int(E["B_SMALL_N"]); small_kib = int(E["B_SMALL_KIB"])
small4k_n = int(E["B_SMALL4K_N"]); small4k_kib = int(E["B_SMALL4K_KIB"])
# cases counted in files (files/s), and each case's reference tool for "wall / curl"
files_of = {"small": small_n, "h2": small_n, "small4k": small4k_n}
not_in_table = ("scale", "memory")

order, data = [], {}
for c, t, r, wall_us, cpu_ms, dcpu_ms, rc in rows:
    if (c, t) not in data:
        order.append((c, t)); data[(c, t)] = []
    data[(c, t)].append((int(wall_us) / 1e6, (int(cpu_ms) + int(dcpu_ms)) / 1e3, int(rc)))

def ref_tool(case):
    if case == "small": return "curl -K (sequential)"
    if case == "h2": return "curl --parallel --http2"
    if case == "small4k": return "curl --parallel 16"
    if case.startswith("upload "): return "curl -T"
    return "curl"

def spread(key):
    ok = [x[0] for x in data.get(key, []) if x[2] == 0]
    return (max(ok) - min(ok)) / st.median(ok) if ok else None

def med(key, i):
    ok = [x[i] for x in data.get(key, []) if x[2] == 0]
    return st.median(ok) if ok else None

header = ["case", "tool", "median wall s", "min-max wall s", "throughput", "wall / curl", "CPU s (user+sys)", "CPU / curl", "check"]
table = []
for c, t in order:
    if c in not_in_table:
        continue
    runs = data[(c, t)]
    fails = sum(1 for x in runs if x[2] != 0)
    w, cpu = med((c, t), 0), med((c, t), 1)
    rw, rcpu = med((c, ref_tool(c)), 0), med((c, ref_tool(c)), 1)
    if w is None:
        table.append([c, t, "FAILED", "", "", "", "", "", verify.get((c, t), "FAILED")]); continue
    if c in files_of:
        tp = f"{files_of[c] / w:,.0f} files/s"
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
if "rss_rest_kib" in scale:
    lines.append(f"daemon RSS at rest: {int(scale['rss_rest_kib']) / 1024:.1f} MiB")
    ns = sorted(int(k.split("_")[-1]) for k in scale if k.startswith("create_us_"))
    for n in ns:
        cu = int(scale[f"create_us_{n}"]) / 1e6
        lw = med(("scale", f"list-{n}"), 0)
        lines.append(f"{n:,} jobs: created one `bits start --suspended` call at a time in {cu:.2f} s "
                     f"({cu * 1000 / n:.1f} ms/call); daemon RSS {int(scale[f'rss_kib_{n}']) / 1024:.1f} MiB; "
                     f"`bits list --json` {lw * 1000:.0f} ms median of 5 ({int(scale[f'list_bytes_{n}']):,} bytes)")
mem = {}
if "mem_rss_restart_kib" in scale:
    mn = int(scale["mem_files"])
    rest, created, restart = (int(scale[k]) for k in ("mem_rss_rest_kib", "mem_rss_created_kib", "mem_rss_restart_kib"))
    mem = {"n": mn, "restart_mib": restart / 1024,
           "per_file_restart": (restart - rest) * 1024 / mn, "per_file_created": (created - rest) * 1024 / mn}
    lines.append(f"one job of {mn:,} files, created suspended by one `bits start --suspended --from-csv` call in "
                 f"{int(scale['mem_create_us']) / 1e6:.2f} s: daemon RSS at rest {rest / 1024:.1f} MiB, "
                 f"1 s after the create {created / 1024:.1f} MiB ({mem['per_file_created']:,.0f} bytes per file), "
                 f"after a restart {restart / 1024:.1f} MiB ({mem['per_file_restart']:,.0f} bytes per file; "
                 f"the restarted daemon answered `bits list` in {int(scale['mem_restart_us']) / 1e6:.2f} s)")
    lw, iw = med(("memory", "list-json"), 0), med(("memory", "info-json"), 0)
    if lw is not None and iw is not None:
        lines.append(f"with that job: `bits list --json` {lw * 1000:.0f} ms ({int(scale['mem_list_bytes']):,} bytes), "
                     f"`bits info JOB --json` {iw * 1000:.0f} ms ({int(scale['mem_info_bytes']):,} bytes), one call each")

info = [
    f"date: {E['B_STARTED']}",
    f"host: nproc {E['B_NPROC']}, {E['B_KERNEL']}, CPU {E['B_CPU']}",
    f"bits: {E['B_REV']}; {E['B_VERSIONS']}",
    f"runs per tool and case: {E['B_RUNS']}"
    + (f" (capped: {E['B_CAPPED_RUNS']})" if E.get("B_CAPPED_RUNS") and E["B_CAPPED_RUNS"] != E["B_RUNS"] else "")
    + f" (sync + {E['B_SETTLE']} s pause before each"
    + ("; for the big-file, upload and HTTPS cases, page cache dropped and the source read back in" if E.get("B_DROP") == "1" else "")
    + f"); outputs under {E['B_DIR']}",
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
refs = [f"{name}: over `{ref}`" for name, ref, ran in (
    ("upload", "curl -T", any(c.startswith("upload ") for c, _ in order)),
    ("h2", "curl --parallel --http2", any(c == "h2" for c, _ in order)),
    ("small4k", "curl --parallel 16", any(c == "small4k" for c, _ in order))) if ran]
if refs:
    notes.append("wall / curl and CPU / curl of the newer cases: " + "; ".join(refs) + ".")
if any(c.startswith("upload ") for c, _ in order):
    notes.append("upload: to `bits serve --upload --allow-overwrite` on loopback; `curl -T` is one plain PUT, which bits serve "
                 "fsyncs and renames into place; bits is `bits start --type upload` (BITS Upload Protocol, fragments). "
                 "The server's CPU is counted for neither.")
tls_cases = sorted({c for c, _ in order if c.startswith("tls ")})
for c in tls_cases:
    sp = [f"`{t}` {spread((c, t)) * 100:.1f} %" for cc, t in order if cc == c and spread((c, t)) is not None]
    notes.append(f"{c}: HTTPS with HTTP/1.1 (nginx `ssl`, no http2 on that port), the script's own CA "
                 f"(ECDSA P-256); curl negotiated {scale.get('tls_curl', '?').strip() or '?'}. "
                 f"Run-to-run spread, (max-min)/median of the wall times: " + ", ".join(sp) + ".")
for c in dict.fromkeys(c for c, _, _ in proto):
    notes.append(f"{c}: what nginx logged for each tool's first run (protocol, TLS version, cipher x requests): "
                 + "; ".join(f"`{t}` {what}" for cc, t, what in proto if cc == c) + ".")
if E.get("B_CAP") and any(c.startswith("capped") for c, _ in order):
    rate, bps = E["B_CAP"].split()
    notes.append(f"capped: the server caps each connection at {int(bps) / 1048576:g} MiB/s (nginx `limit_rate {rate}`), "
                 f"so N connections may get N times that; wall / curl is over single-connection curl; "
                 f"`aria2c -x8` is `-x8 -s8 --min-split-size=1M`.")

# Targets (issue 13), from this run's medians; a case that did not run has no line
targets = []
def target(what, value, fmt, limit, limit_fmt):
    if value is None:
        targets.append(f"{what}: no value (the runs failed); target {limit_fmt}: not met")
    else:
        targets.append(f"{what}: {fmt.format(value)}; target {limit_fmt}: {'met' if value <= limit else 'not met'}")
def wall_ratio(case, tool, ref):
    b, r = med((case, tool), 0), med((case, ref), 0)
    return b / r if b is not None and r else None
def ran(pred):
    return any(pred(c) for c, _ in order)
if ran(lambda c: c == "small"):
    target(f"{small_n:,} x {small_kib} KiB: bits / `curl --parallel 16` (wall)",
           wall_ratio("small", "bits --from-csv", "curl --parallel 16"), "{:.2f}", 1.0, "<= 1.0")
if ran(lambda c: c == "small4k"):
    target(f"{small4k_n:,} x {small4k_kib} KiB: bits / `curl --parallel 16` (wall)",
           wall_ratio("small4k", "bits --from-csv", "curl --parallel 16"), "{:.2f}", 1.0, "<= 1.0")
for c in sorted({c for c, _ in order if c.startswith("upload ")}):
    target(f"{c.split()[1]} MiB upload: bits / `curl -T` (wall)", wall_ratio(c, "bits", "curl -T"), "{:.2f}", 1.10, "<= 1.10")
for c in tls_cases:
    size = f"{c.split()[1]} MiB HTTPS"
    target(f"{size}: wall bits / curl", wall_ratio(c, "bits", "curl"), "{:.2f}", 1.0, "<= 1.0")
    bc, cc = med((c, "bits"), 1), med((c, "curl"), 1)
    target(f"{size}: CPU bits / curl", bc / cc if bc is not None and cc else None, "{:.2f}", 1.2, "<= 1.2")
    bs, cs_ = spread((c, "bits")), spread((c, "curl"))
    if bs is None or cs_ is None:
        targets.append(f"{size}: spread bits vs curl: no value (the runs failed); target bits <= curl: not met")
    else:
        targets.append(f"{size}: spread (max-min)/median bits {bs * 100:.1f} % vs curl {cs_ * 100:.1f} %; "
                       f"target bits <= curl: {'met' if bs <= cs_ else 'not met'}")
if ran(lambda c: c == "h2"):
    target(f"HTTP/2, {small_n:,} x {small_kib} KiB over HTTPS: bits / `curl --parallel --http2` (wall)",
           wall_ratio("h2", "bits --from-csv", "curl --parallel --http2"), "{:.2f}", 1.0, "<= 1.0")
if mem:
    target(f"memory, one job of {mem['n']:,} files: RSS after restart", mem["restart_mib"], "{:.1f} MiB", 64, "<= 64 MiB")
    target(f"memory, one job of {mem['n']:,} files: bytes per file after restart ((RSS after restart - RSS at rest) / files)",
           mem["per_file_restart"], "{:,.0f}", 200, "<= 200")
if "create_us_10000" in scale:
    lw = med(("scale", "list-10000"), 0)
    target("`bits list --json` with 10,000 jobs (median of 5)", lw * 1000 if lw is not None else None,
           "{:.0f} ms", 50, "<= 50 ms")

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
if targets:
    print()
    print("Targets (issue 13):")
    for l in targets: print("  " + l)

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
    if targets:
        f.write("Targets (issue 13), from this run's medians:\n\n")
        for l in targets: f.write(f"- {l}\n")
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
