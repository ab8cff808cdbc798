#!/bin/sh
# `make bench`: Curbside beside its limits and peers, measured in one run; prints a table and writes
# bench/results.jsonl. Never part of `make test`. Servers bind 127.0.0.1; every loop is bounded in time.
set -eu
cd "$(dirname "$0")/.."
root=$(pwd)
seconds=${BENCH_SECONDS:-5}
export BENCH_SECONDS=$seconds

need="mosquitto libmosquitto-dev nginx curl gcc libssl-dev openssl time rabbitmq-server librabbitmq-dev age valgrind binutils"
missing=""
for p in $need; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"; done
if [ -n "$missing" ]; then
    sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing >/dev/null
fi
# Debian starts the peers as services when it installs them; the bench runs its own, on its own ports.
for service in mosquitto nginx rabbitmq-server; do systemctl stop "$service" 2>/dev/null || service "$service" stop 2>/dev/null || true; done

swift build -c release --product curbside-bench >/dev/null
swift build -c release --product curbside >/dev/null
bin=$(swift build -c release --show-bin-path)

work=$(mktemp -d "${TMPDIR:-/tmp}/curbside-bench.XXXXXX")
pids=""
cleanup() {
    for pid in $pids; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT INT TERM
raw="$work/raw.jsonl"
: >"$raw"
log() { printf '%s\n' "$*" >&2; }

# A throw-away certificate (Ed25519, as the relay's) for the peers.
openssl req -x509 -newkey ed25519 -nodes -days 2 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
    -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
gcc -O2 -o "$work/tls_bulk" bench/tls_bulk.c -lssl -lcrypto
gcc -O2 -o "$work/mqtt_bench" bench/mqtt_bench.c -lmosquitto
gcc -O2 -o "$work/amqp_bench" bench/amqp_bench.c -lrabbitmq -lssl -lcrypto
gcc -O2 -o "$work/fsync_floor" bench/fsync_floor.c

log "crypto (one core)…"
"$bin/curbside-bench" crypto >>"$raw"

log "TLS bulk…"
# Three runs each, alternating; the table takes each side's median (the figure swings by 2x between runs here).
for _ in 1 2 3; do
    "$bin/curbside-bench" tls-bulk 1024 >>"$raw"
    "$work/tls_bulk" "$work/cert.pem" "$work/key.pem" 1024 >>"$raw"
done

log "handshakes…"
openssl s_server -accept 127.0.0.1:18443 -cert "$work/cert.pem" -key "$work/key.pem" -tls1_3 -www -quiet >/dev/null 2>&1 &
pids="$pids $!"
sleep 0.5
# Three rounds, alternating, each side's median (single rounds put the ratio anywhere from 0.74 to 0.90).
for _ in 1 2 3; do
    "$bin/curbside-bench" handshakes >>"$raw"
    # The handshake alone, without the login, so that the table shows what the login adds.
    "$bin/curbside-bench" handshakes --no-login >>"$raw"
    s_time=$(openssl s_time -connect 127.0.0.1:18443 -new -tls1_3 -time "$seconds" 2>/dev/null | awk '/connections in [0-9]+ real seconds/ {print $1 / $4; exit}')
    echo "{\"metric\": \"s_time_per_s\", \"value\": ${s_time:-0}, \"unit\": \"connections/s\"}" >>"$raw"
done

log "durable relay throughput and push latency, beside mosquitto…"
mkdir -p "$work/mosquitto"
cat >"$work/mosquitto.conf" <<CONF
listener 18883 127.0.0.1
cafile $work/cert.pem
certfile $work/cert.pem
keyfile $work/key.pem
tls_version tlsv1.3
allow_anonymous true
persistence true
persistence_location $work/mosquitto/
autosave_interval 1
user root
max_queued_messages 1000000
CONF
mosquitto -c "$work/mosquitto.conf" >/dev/null 2>&1 &
pids="$pids $!"
sleep 0.5
# Three rounds, each side once a round, alternating; the table takes each side's median (one run swings widely on a
# shared machine). The floor under push latency: a 1 KiB append and fdatasync at the same 1000/s, on the disk the
# relay's data is on (the bench relay keeps it under ${TMPDIR:-/tmp}, as $work is).
for _ in 1 2 3; do
    "$bin/curbside-bench" relay-durable >>"$raw"
    "$work/mqtt_bench" throughput 18883 "$work/cert.pem" "$seconds" >>"$raw"
    "$bin/curbside-bench" push-latency >>"$raw"
    "$work/mqtt_bench" latency 18883 "$work/cert.pem" "$seconds" 1000 >>"$raw"
    "$work/fsync_floor" "$work" 1000 "$seconds" >>"$raw"
done

log "RabbitMQ: durable queue, persistent messages, publisher confirms…"
# Its own node on its own ports and directories (Debian's service stays stopped), TLS 1.3 only, the same certificate.
mkdir -p "$work/rabbitmq/home"
cat >"$work/rabbitmq/rabbitmq.conf" <<CONF
listeners.tcp = none
listeners.ssl.default = 127.0.0.1:18671
ssl_options.cacertfile = $work/cert.pem
ssl_options.certfile = $work/cert.pem
ssl_options.keyfile = $work/key.pem
ssl_options.versions.1 = tlsv1.3
ssl_options.verify = verify_none
ssl_options.fail_if_no_peer_cert = false
CONF
echo "[]." >"$work/rabbitmq/enabled_plugins"
HOME="$work/rabbitmq/home" RABBITMQ_NODENAME=curbside-bench@localhost RABBITMQ_DIST_PORT=18672 \
    RABBITMQ_CONFIG_FILE="$work/rabbitmq/rabbitmq.conf" RABBITMQ_ENABLED_PLUGINS_FILE="$work/rabbitmq/enabled_plugins" \
    RABBITMQ_MNESIA_BASE="$work/rabbitmq/mnesia" RABBITMQ_LOG_BASE="$work/rabbitmq/log" \
    /usr/lib/rabbitmq/bin/rabbitmq-server >"$work/rabbitmq/out.txt" 2>&1 &
rabbit=$!; pids="$pids $rabbit"
for _ in $(seq 1 600); do grep -q "completed with" "$work/rabbitmq/out.txt" 2>/dev/null && break; sleep 0.1; done
# Warm: one short run first, not recorded. The window is 320, as relay_durable's 16 senders with 20 sends each.
"$work/amqp_bench" 18671 "$work/cert.pem" 1 320 >/dev/null
"$work/amqp_bench" 18671 "$work/cert.pem" "$seconds" 320 >>"$raw"
kill "$rabbit" 2>/dev/null || true
wait "$rabbit" 2>/dev/null || true
# Erlang started epmd for the node; it refuses to stop while any other node is registered with it.
epmd -kill >/dev/null 2>&1 || true

log "instructions per durable send at the relay (callgrind)…"
python3 bench/relay_instructions.py 2000 20 >>"$raw"

log "durable relay: 1, 4, 16, 64 senders; a backlog of 1,000,000 envelopes for others…"
for n in 1 4 16 64; do "$bin/curbside-bench" relay-durable --senders "$n" >>"$raw"; done
# The ratio's two sides in the same way, the empty store run right before the full one; three rounds, each side's
# median (one round of each swung between 0.84 and 1.15 on this machine).
for _ in 1 2 3; do
    "$bin/curbside-bench" relay-durable --backlog 0 >>"$raw"
    "$bin/curbside-bench" relay-durable --backlog 1000000 >>"$raw"
done

log "PostgreSQL: durable relay beside pgbench, push latency across relay processes…"
# One throw-away cluster (fsync on, synchronous_commit on) for the relay and pgbench alike, held by curbside-bench
# until its stdin closes; both reach it through its Unix socket.
mkfifo "$work/pg-in"
"$bin/curbside-bench" postgres <"$work/pg-in" >"$work/pg-out" &
pids="$pids $!"
exec 6>"$work/pg-in"
for _ in $(seq 1 300); do grep -q "^socket" "$work/pg-out" 2>/dev/null && break; sleep 0.1; done
set -- $(cat "$work/pg-out")
pg_socket=$2 pg_port=$4 pg_user=$6 pg_bin=$8
pg_host=$(printf %s "$pg_socket" | sed 's|/|%2F|g')
pg() { "$pg_bin/psql" -h "$pg_socket" -p "$pg_port" -U "$pg_user" -d "${2:-postgres}" -v ON_ERROR_STOP=1 -Atqc "$1"; }
# pgbench's transaction: one 1 KiB bytea row, as a consult's envelope is, committed alone.
printf "INSERT INTO consult (body) VALUES ('\\x%s');\n" "$(head -c 1024 /dev/zero | od -An -v -tx1 | tr -d ' \n' | tr 0 5)" \
    >"$work/pgbench-insert.sql"
# Three runs of each side, alternating, each in a new database and after a checkpoint; the table takes medians.
for n in 1 2 3; do
    pg "CREATE DATABASE relay_$n"
    pg "CHECKPOINT"
    "$bin/curbside-bench" relay-durable --database "postgres://$pg_user@$pg_host:$pg_port/relay_$n" >>"$raw"
    pg "CREATE DATABASE pgbench_$n"
    pg "CREATE TABLE consult (id bigserial PRIMARY KEY, body bytea NOT NULL)" "pgbench_$n"
    pg "CHECKPOINT"
    "$pg_bin/pgbench" -h "$pg_socket" -p "$pg_port" -U "$pg_user" -n -M prepared -f "$work/pgbench-insert.sql" \
        -c 16 -j 2 -T "$seconds" "pgbench_$n" 2>/dev/null |
        awk '/^tps = / { printf "{\"metric\": \"pgbench_insert_tps\", \"value\": %s, \"unit\": \"tx/s\"}\n", $3; exit }' >>"$raw"
done
# Push latency at 200 msgs/s: SQLite on one process, PostgreSQL on one process, PostgreSQL from process A to B;
# three rounds, alternating (a p99 of 1,000 pushes is the tenth slowest, and one stall moves it), medians in the table.
for n in 1 2 3; do
    "$bin/curbside-bench" push-latency --rate 200 >>"$raw"
    pg "CREATE DATABASE push_one_$n"
    "$bin/curbside-bench" push-latency --rate 200 --database "postgres://$pg_user@$pg_host:$pg_port/push_one_$n" >>"$raw"
    pg "CREATE DATABASE push_cross_$n"
    "$bin/curbside-bench" push-latency --rate 200 --database "postgres://$pg_user@$pg_host:$pg_port/push_cross_$n" \
        --cross-process >>"$raw"
done
exec 6>&-

log "attachments and client memory…"
CURBSIDE="$bin/curbside" ./scripts/attachment-memory.sh 256 >"$work/attach256.txt"
awk '{ for (i = 1; i <= NF; i++) if ($i == "wall") { split($(i + 1), t, ":"); s += t[1] * 60 + t[2] } }
     END { printf "{\"metric\": \"attachment_mb_per_s\", \"value\": %.3f, \"unit\": \"MiB/s\"}\n", 256 / s }' \
    "$work/attach256.txt" >>"$raw"
# Up is the send; down is inbox (download, verify) plus show --save-dir (decrypt).
awk '{ w = 0; for (i = 1; i <= NF; i++) if ($i == "wall") { split($(i + 1), t, ":"); w = t[1] * 60 + t[2] } }
     /^send/ { up = w } /^inbox/ || /^show/ { down += w }
     END { printf "{\"metric\": \"attachment_up_mb_per_s\", \"value\": %.3f, \"unit\": \"MiB/s\"}\n", 256 / up
           printf "{\"metric\": \"attachment_down_mb_per_s\", \"value\": %.3f, \"unit\": \"MiB/s\"}\n", 256 / down }' \
    "$work/attach256.txt" >>"$raw"
# The CPU seconds behind those figures, every process on both ends (Curbside: the command and the relay while it ran).
awk '{ c = 0; for (i = 1; i <= NF; i++) if ($i == "cpu") c += $(i + 1) }
     /^send/ { up = c } /^inbox/ || /^show/ { down += c }
     END { printf "{\"metric\": \"attachment_up_cpu_s\", \"value\": %.2f, \"unit\": \"s\"}\n", up
           printf "{\"metric\": \"attachment_down_cpu_s\", \"value\": %.2f, \"unit\": \"s\"}\n", down }' \
    "$work/attach256.txt" >>"$raw"
# Only the send is read here. 1000 MiB, not 1 GiB: a sealed 1 GiB file with its consult is past one sender's
# default share of a queue (1 GiB); and the recipient does not download anything above 512 MiB (too_large), so the
# script's final check fails at this size whatever the send did.
CURBSIDE="$bin/curbside" ./scripts/attachment-memory.sh 1000 >"$work/attach1024.txt" || true
awk '/^send/ { for (i = 1; i <= NF; i++) if ($i == "RSS") { printf "{\"metric\": \"client_peak_rss_mib\", \"value\": %s, \"unit\": \"MiB\"}\n", $(i + 1); exit } }' \
    "$work/attach1024.txt" >>"$raw"
mkdir -p "$work/nginx/uploads" "$work/nginx/tmp"
cat >"$work/nginx.conf" <<CONF
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path $work/nginx/tmp;
    server {
        listen 127.0.0.1:18444 ssl;
        ssl_certificate $work/cert.pem;
        ssl_certificate_key $work/key.pem;
        ssl_protocols TLSv1.3;
        client_max_body_size 0;
        location /uploads/ { root $work/nginx; dav_methods PUT; create_full_put_path on; }
    }
}
CONF
nginx -c "$work/nginx.conf" -p "$work/nginx" -g "daemon off; user root;" >/dev/null 2>&1 &
pids="$pids $!"
sleep 0.5
head -c $((256 << 20)) /dev/urandom >"$work/image.bin"
curl -s -k --tlsv1.3 -T "$work/image.bin" "https://127.0.0.1:18444/uploads/image.bin" -o /dev/null -w '%{time_total}\n' >"$work/curl.txt"
awk '{ printf "{\"metric\": \"curl_put_mb_per_s\", \"value\": %.3f, \"unit\": \"MiB/s\"}\n", 256 / $1 }' "$work/curl.txt" >>"$raw"
# The peer of attachment_up/down: age encryption piped into one PUT, and one GET piped into age decryption to a
# file, each timed whole (both processes of the pipe), same nginx, same TLS.
age-keygen -o "$work/age.key" 2>/dev/null
age_recipient=$(age-keygen -y "$work/age.key")
timed() { start=$(date +%s.%N); sh -c "$1"; end=$(date +%s.%N); echo "$start $end" | awk '{ print $2 - $1 }'; }
# CPU seconds of each pipeline: both of its processes (/usr/bin/time) and nginx's worker while it ran.
worker=$(pgrep -f "nginx: worker" | head -n 1)
worker_cpu() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$worker/stat"; }
before=$(worker_cpu)
up=$(timed "/usr/bin/time -a -o '$work/peer_cpu_up.txt' -f '%U %S' age -r $age_recipient <'$work/image.bin' | /usr/bin/time -a -o '$work/peer_cpu_up.txt' -f '%U %S' curl -s -k --tlsv1.3 -T - https://127.0.0.1:18444/uploads/image.age -o /dev/null")
after=$(worker_cpu)
echo "nginx $before $after" >>"$work/peer_cpu_up.txt"
before=$(worker_cpu)
down=$(timed "/usr/bin/time -a -o '$work/peer_cpu_down.txt' -f '%U %S' curl -s -k --tlsv1.3 https://127.0.0.1:18444/uploads/image.age | /usr/bin/time -a -o '$work/peer_cpu_down.txt' -f '%U %S' age -d -i '$work/age.key' >'$work/image.out'")
after=$(worker_cpu)
echo "nginx $before $after" >>"$work/peer_cpu_down.txt"
for way in up down; do
    awk -v way="$way" '/^nginx/ { s += $3 - $2; next } { s += $1 + $2 }
        END { printf "{\"metric\": \"age_curl_%s_cpu_s\", \"value\": %.2f, \"unit\": \"s\"}\n", way, s }' \
        "$work/peer_cpu_$way.txt" >>"$raw"
done
cmp -s "$work/image.bin" "$work/image.out" || { log "age + curl: the downloaded file differs"; exit 1; }
echo "{\"metric\": \"age_curl_up_mb_per_s\", \"value\": $(echo "$up" | awk '{ printf "%.3f", 256 / $1 }'), \"unit\": \"MiB/s\"}" >>"$raw"
echo "{\"metric\": \"age_curl_down_mb_per_s\", \"value\": $(echo "$down" | awk '{ printf "%.3f", 256 / $1 }'), \"unit\": \"MiB/s\"}" >>"$raw"

log "idle connections (10,000), an offline recipient fetching 10,000…"
# One descriptor per connection on each side, in two processes; 65536 (or the hard limit) leaves room for the relay's
# own files.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
mkfifo "$work/relay-in" "$work/clients-in"
"$bin/curbside-bench" serve-relay <"$work/relay-in" >"$work/relay-out" &
relay=$!; pids="$pids $relay"
exec 7>"$work/relay-in"
for _ in $(seq 1 100); do grep -q "^port" "$work/relay-out" 2>/dev/null && break; sleep 0.1; done
set -- $(cat "$work/relay-out")
port=$2 keys=$4 fingerprint=$6
before=$(awk '/^VmRSS/ {print $2}' "/proc/$relay/status")
"$bin/curbside-bench" idle-clients "$port" "$keys" 10000 "$fingerprint" <"$work/clients-in" >"$work/clients-out" &
clients=$!; pids="$pids $clients"
exec 8>"$work/clients-in"
for _ in $(seq 1 3000); do grep -q "^open" "$work/clients-out" 2>/dev/null && break; sleep 0.1; done
sleep 1
after=$(awk '/^VmRSS/ {print $2}' "/proc/$relay/status")
echo "{\"metric\": \"idle_conn_kib\", \"value\": $(( (after - before) / 10000 )).$(( ((after - before) % 10000) * 1000 / 10000 )), \"unit\": \"KiB\"}" >>"$raw"
exec 8>&-
wait "$clients" 2>/dev/null || true
# An offline recipient: 10,000 consults queued for it by 16 senders, then, logged in alone, it fetches them 100 a
# request and acknowledges each batch, until all are acknowledged.
"$bin/curbside-bench" send-load "$port" "$keys" 10000 "$fingerprint" >"$work/load.txt"
"$bin/curbside-bench" drain-load "$port" "$keys" 10000 "$fingerprint" --batch 100 >"$work/drain.txt"
awk '/^acknowledged 10000 / { printf "{\"metric\": \"offline_fetch_10000_s\", \"value\": %s, \"unit\": \"s\"}\n", $4 }' "$work/drain.txt" >>"$raw"
exec 7>&-

python3 bench/report.py "$raw" bench/results.jsonl
