#!/usr/bin/env python3
"""Instructions the relay process executes per durable send, counted by callgrind.

    python3 bench/relay_instructions.py [SENDS] [WINDOW] [--database URL] [--top N]
        (after `swift build -c release --product curbside-bench`)

Runs `curbside-bench serve-relay` (SQLite, or PostgreSQL with --database) under `valgrind --tool=callgrind`, then,
from another process, `curbside-bench send-load` twice: once with 0 sends (16 senders connect and log in), once with
SENDS 1 KiB sends, each sender keeping WINDOW sends in flight. callgrind's counters are zeroed before and dumped
after each load (callgrind_control), so the difference of the two dumps divided by SENDS is what one send costs the
relay: reading and decrypting the request, the store's transaction and its share of the fsync, the answer. Counting
instructions, not time, makes the figure stable on a shared, noisy machine; use it to show what a change saves.
Prints one JSON line (`relay_instructions_per_send`), and with --top N the N functions that cost most per send,
each by its own instructions (inclusive counts mislead here: asynchronous functions resume one another).

Under callgrind the relay runs about 50 times slower; SENDS 2000 takes a minute or two.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def options(argv):
    words, named = [], {}
    rest = iter(argv)
    for word in rest:
        if word.startswith("--"):
            named[word] = next(rest)
        else:
            words.append(word)
    return words, named


def total_instructions(path):
    """The `totals:` (or `summary:`) line of a callgrind dump: instructions executed since the counters were zeroed."""
    with open(path) as dump:
        for line in dump:
            if line.startswith(("totals:", "summary:")):
                return int(line.split()[1])
    raise SystemExit(f"{path}: no totals line")


def newest_dump(directory, pid, before):
    dumps = [name for name in os.listdir(directory) if name.startswith(f"cg.{pid}.") and name not in before]
    if len(dumps) != 1:
        raise SystemExit(f"expected one new callgrind dump in {directory}, found {dumps}")
    return os.path.join(directory, dumps[0])


def self_costs(path):
    """Instructions spent in each function itself (not in what it calls), from a callgrind dump: the cost lines
    under each `fn=`, skipping the line after each `calls=` (the callee's inclusive cost). Names are
    `function [object]`, with callgrind's compressed `(id) name` references expanded."""
    names = {"fn": {}, "ob": {}}
    costs = {}
    function, obj, skip_next = None, "", False

    def expand(kind, text):
        text = text.strip()
        if text.startswith("("):
            key, _, name = text.partition(")")
            if name.strip():
                names[kind][key] = name.strip()
            return names[kind].get(key, text)
        return text

    with open(path) as dump:
        for line in dump:
            if skip_next:
                skip_next = False
                continue
            if line.startswith("fn="):
                function = f"{expand('fn', line[3:])} [{os.path.basename(obj)}]"
            elif line.startswith("ob="):
                obj = expand("ob", line[3:])
            elif line.startswith(("cfn=", "cfi=", "cfl=", "cob=")):
                key = line[:3] if line.startswith("cob") else "fn"
                if line.startswith("cfn="):
                    expand("fn", line[4:])
                elif line.startswith("cob="):
                    expand("ob", line[4:])
            elif line.startswith("calls="):
                skip_next = True
            elif function and line[:1] in "0123456789+-*":
                fields = line.split()
                if len(fields) >= 2:
                    costs[function] = costs.get(function, 0) + int(fields[1])
    return costs


def main():
    words, named = options(sys.argv[1:])
    sends = int(words[0]) if words else 2000
    window = int(words[1]) if len(words) > 1 else 20
    top = int(named.get("--top", "0"))
    binary = os.path.join(subprocess.run(["swift", "build", "-c", "release", "--show-bin-path"], cwd=ROOT,
                                         capture_output=True, text=True, check=True).stdout.strip(), "curbside-bench")
    work = tempfile.mkdtemp(prefix="curbside-callgrind.")
    relay = None
    try:
        # valgrind 3.19 cannot read the DWARF 5 the Swift toolchain writes; the symbol table is enough for names.
        stripped = os.path.join(work, "curbside-bench")
        subprocess.run(["objcopy", "--strip-debug", binary, stripped], check=True)
        serve = [stripped, "serve-relay", "--prefix", "load"]
        if "--database" in named:
            serve += ["--database", named["--database"]]
        relay = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={work}/cg.%p"] + serve,
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        first = relay.stdout.readline().split()
        if not first:
            raise SystemExit("the relay under callgrind exited before it listened")
        said = dict(zip(first[::2], first[1::2]))
        pid = said["pid"]

        def measured(count):
            before = set(os.listdir(work))
            subprocess.run(["callgrind_control", "-z", pid], check=True, capture_output=True)
            load = subprocess.run([binary, "send-load", said["port"], said["keys"], str(count), said["fingerprint"],
                                   "--window", str(window)], check=True, capture_output=True, text=True)
            subprocess.run(["callgrind_control", "-d", pid], check=True, capture_output=True)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    path = newest_dump(work, pid, before)
                    time.sleep(0.5)  # the dump is written in one go; let it finish
                    return total_instructions(path), path, load.stdout.strip()
                except SystemExit:
                    time.sleep(0.5)
            raise SystemExit("callgrind wrote no dump within 60 s")

        idle, idle_path, _ = measured(0)
        loaded, loaded_path, said_load = measured(sends)
        stored = int(re.search(r"stored (\d+)", said_load).group(1))
        per_send = (loaded - idle) / stored
        store = "postgres" if "--database" in named else "sqlite"
        print(json.dumps({"metric": "relay_instructions_per_send", "value": round(per_send), "unit": "instructions",
                          "store": store, "sends": stored, "window": window}), flush=True)
        if top:
            costs = self_costs(loaded_path)
            for name, count in self_costs(idle_path).items():  # the logins, as for the total
                costs[name] = costs.get(name, 0) - count
            for name, count in sorted(costs.items(), key=lambda item: -item[1])[:top]:
                print(f"{count / stored:>10,.0f}  {name[:150]}")
    finally:
        if relay:
            relay.stdin.close()
            try:
                relay.wait(timeout=120)
            except subprocess.TimeoutExpired:
                relay.kill()
        if not os.environ.get("KEEP_CALLGRIND"):
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"callgrind dumps kept in {work}", file=sys.stderr)


if __name__ == "__main__":
    main()
