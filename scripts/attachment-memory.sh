#!/bin/sh
# Peak resident memory of the client while a large attachment (default 1 GiB) goes through a local relay:
# send (metadata filter, encrypt, upload), inbox (download, check, decrypt-check), show --save-dir (decrypt).
# Usage: scripts/attachment-memory.sh [MiB]   (uses CURBSIDE, default .build/debug/curbside; needs /usr/bin/time)
set -eu
mib=${1:-1024}
curbside=${CURBSIDE:-.build/debug/curbside}
work=$(mktemp -d "${TMPDIR:-/tmp}/curbside-memory.XXXXXX")
relay_pid=
cleanup() {
    if [ -n "$relay_pid" ]; then kill "$relay_pid" 2>/dev/null || true; wait "$relay_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT INT TERM
export CURBSIDE_PASSPHRASE="correct horse battery staple"

"$curbside" relay init --data "$work/relay" --listen 127.0.0.1:0 >"$work/init.txt"
fingerprint=$(awk '/^fingerprint/ {print $2}' "$work/init.txt")
"$curbside" relay serve --data "$work/relay" 2>"$work/relay.log" &
relay_pid=$!
port=
for _ in $(seq 1 100); do
    port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/relay.log"); [ -n "$port" ] && break; sleep 0.1
done
# The relay's default quota is 4 GiB per account and a 256 MiB disk reserve: enough for one 1 GiB file.
for who in amara.gp osei.derm; do
    code=$("$curbside" relay enroll --data "$work/relay" "$who" | awk 'NR == 1 {print $NF}')
    "$curbside" init --home "$work/$who" --handle "$who" --relay "127.0.0.1:$port" --relay-fingerprint "$fingerprint" --code "$code" >/dev/null
done
head -c "$((mib * 1024 * 1024))" /dev/urandom >"$work/big.bin"

# Peak RSS of the whole process (/usr/bin/time -v), and the largest RSS sampled from /proc after its first
# second: unlocking the profile runs Argon2id, whose working memory (24 MiB) is freed before any transfer starts.
# Also the CPU seconds (user + system) of the command and of the relay while it ran.
relay_cpu() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$relay_pid/stat"; }
measure() {
    label=$1; shift
    relay_before=$(relay_cpu)
    /usr/bin/time -v "$@" >"$work/out.txt" 2>"$work/time.txt" &
    timer=$!
    sleep 0.05
    pid=$(pgrep -P "$timer" | head -n 1 || true)
    late=0; ticks=0
    while kill -0 "$timer" 2>/dev/null; do
        if [ -n "$pid" ] && [ "$ticks" -ge 20 ]; then
            now=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
            [ "${now:-0}" -gt "$late" ] && late=$now
        fi
        ticks=$((ticks + 1)); sleep 0.05
    done
    wait "$timer"
    rss=$(awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}' "$work/time.txt")
    wall=$(awk '/Elapsed \(wall clock\)/ {print $NF}' "$work/time.txt")
    cpu=$(awk -F': ' '/User time|System time/ {s += $2} END {printf "%.2f", s}' "$work/time.txt")
    relay=$(echo "$relay_before $(relay_cpu)" | awk '{printf "%.2f", $2 - $1}')
    printf '%-36s peak RSS %4d MiB, after unlocking %4d MiB   wall %s   cpu %s s, relay cpu %s s\n' \
        "$label" "$((rss / 1024))" "$((late / 1024))" "$wall" "$cpu" "$relay"
}
measure "send ${mib} MiB (encrypt + upload)" "$curbside" send --home "$work/amara.gp" osei.derm --subject "Large scan" --question "Seen?" --image "$work/big.bin" --keep-metadata
measure "inbox (download + check)" "$curbside" inbox --home "$work/osei.derm"
# An unread consult's line starts with a `*` before its id.
id=$(awk 'NR == 1 {print ($1 == "*" ? $2 : $1)}' "$work/out.txt")
measure "show --save-dir (decrypt)" "$curbside" show --home "$work/osei.derm" "$id" --save-dir "$work/saved"
cmp "$work/big.bin" "$work/saved/big.bin" && echo "the saved file is identical to the original"
