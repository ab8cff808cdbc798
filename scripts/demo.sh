#!/bin/sh
# The main job end to end on loopback, in a temporary directory, as a person would type it:
# a relay, two providers, a consult, its receipts and the answer.
set -eu

curbside=${CURBSIDE:-.build/debug/curbside}
work=$(mktemp -d "${TMPDIR:-/tmp}/curbside-demo.XXXXXX")
relay_pid=
cleanup() {
    if [ -n "$relay_pid" ]; then kill "$relay_pid" 2>/dev/null || true; wait "$relay_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

# The demo's passphrase comes from the environment instead of a prompt.
export CURBSIDE_PASSPHRASE="correct horse battery staple"

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
run() { step "$*"; "$@"; }

step "curbside relay init --data $work/relay --listen 127.0.0.1:0"
"$curbside" relay init --data "$work/relay" --listen 127.0.0.1:0 | tee "$work/relay-init.txt"
fingerprint=$(awk '/^fingerprint/ {print $2}' "$work/relay-init.txt")

step "curbside relay serve --data $work/relay &"
"$curbside" relay serve --data "$work/relay" 2>"$work/relay.log" &
relay_pid=$!
port=
for _ in $(seq 1 100); do
    port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/relay.log")
    [ -n "$port" ] && break
    sleep 0.1
done
[ -n "$port" ] || { echo "the relay did not start:"; cat "$work/relay.log"; exit 1; }
echo "relay listening on 127.0.0.1:$port"

code_gp=$("$curbside" relay enroll --data "$work/relay" amara.gp | awk 'NR == 1 {print $NF}')
code_derm=$("$curbside" relay enroll --data "$work/relay" osei.derm | awk 'NR == 1 {print $NF}')
step "curbside relay enroll --data $work/relay amara.gp    # and osei.derm"
echo "enrollment codes: amara.gp $code_gp, osei.derm $code_derm"

gp="--home $work/amara.gp"
derm="--home $work/osei.derm"
run "$curbside" init $gp --handle amara.gp --relay "127.0.0.1:$port" --relay-fingerprint "$fingerprint" --code "$code_gp"
run "$curbside" init $derm --handle osei.derm --relay "127.0.0.1:$port" --relay-fingerprint "$fingerprint" --code "$code_derm"

python3 "$(dirname "$0")/sample-photo.py" "$work/forearm.jpg"
step "curbside send osei.derm --subject … --question … --urgency urgent --specialty dermatology --image forearm.jpg"
consult=$("$curbside" send $gp osei.derm \
    --subject "Pigmented lesion, left forearm" \
    --question "Does this need excision within two weeks?" \
    --summary "54-year-old, lesion grown over 3 months, irregular border, 7 mm, no bleeding." \
    --urgency urgent --specialty dermatology --image "$work/forearm.jpg" | head -n 1)
echo "$consult   (the photo's GPS position was removed before encryption)"

run "$curbside" inbox $derm
run "$curbside" show $derm "$consult" --save-dir "$work/received"
step "ls -l $work/received"
ls -l "$work/received"
run "$curbside" reply $derm "$consult" --text "Features suggest a dysplastic naevus; excise within 2 weeks, 2 mm margins."
run "$curbside" inbox $gp
run "$curbside" status $gp "$consult"
run "$curbside" contacts show $gp osei.derm
