#!/usr/bin/env python3
"""What one durable consult costs at the relay and at PostgreSQL, for docs/scaling.md.

    python3 bench/relay_cost.py [CONSULTS]        (after `swift build -c release --product curbside-bench`)

Starts a throw-away cluster (`curbside-bench postgres`), a relay process on it (`curbside-bench serve-relay
--database …`) and a second relay process on the same database that only listens (the cost of one more process
hearing every notification), then sends CONSULTS 1 KiB consults from 16 senders in a third process
(`curbside-bench send-load`) while `perf stat -e task-clock` counts each relay process and the PostgreSQL processes.
A run with 0 consults (connect and log in only) is subtracted. Then the same for pgbench's 1 KiB INSERT (PostgreSQL's
cost of a bare durable row) and for a relay on SQLite. Prints one JSON line per figure; bounded in count and time.
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = subprocess.run(["swift", "build", "-c", "release", "--show-bin-path"], cwd=ROOT, capture_output=True, text=True,
                     check=True).stdout.strip()
BENCH = os.path.join(BIN, "curbside-bench")
CONSULTS = int(sys.argv[1]) if len(sys.argv) > 1 else 16000
TICK = os.sysconf("SC_CLK_TCK")
children = []


def emit(metric, value, unit, command=""):
    print(json.dumps({"metric": metric, "value": round(value, 4), "unit": unit, "command": command}), flush=True)


def start(args):
    """A curbside-bench process held by its stdin; returns it and its first line's words."""
    process = subprocess.Popen([BENCH] + args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    children.append(process)
    words = process.stdout.readline().split()
    return process, dict(zip(words[::2], words[1::2]))


def cpu_seconds(pid, with_children=False):
    """utime + stime of a process (and of its reaped children), from /proc."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    if with_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / TICK


def postgres_pids(postmaster):
    found = subprocess.run(["ps", "--ppid", str(postmaster), "-o", "pid="], capture_output=True, text=True).stdout.split()
    return [postmaster] + [int(pid) for pid in found]


def postgres_cpu(postmaster):
    """CPU of the postmaster, its live children and those it reaped (exited backends)."""
    total = cpu_seconds(postmaster, with_children=True)
    for pid in postgres_pids(postmaster)[1:]:
        try:
            total += cpu_seconds(pid)
        except FileNotFoundError:
            pass
    return total


def io(pid):
    values = dict(line.split(": ") for line in open(f"/proc/{pid}/io").read().splitlines())
    return {key: int(value) for key, value in values.items()}


def perf_stat(pids, output):
    """`perf stat -e task-clock,context-switches` on `pids` until stopped (SIGINT)."""
    return subprocess.Popen(["perf", "stat", "-e", "task-clock,context-switches", "-x", ",", "-o", output,
                             "-p", ",".join(map(str, pids))], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def perf_result(process, output):
    process.send_signal(2)
    process.wait(timeout=30)
    values = {"task-clock": 0.0, "context-switches": 0.0}  # perf prints "<not counted>" for a process that never ran
    for line in open(output):
        parts = line.strip().split(",")
        if len(parts) > 2 and parts[0] and parts[0][0].isdigit():
            values[parts[2]] = float(parts[0])
    return values


def main():
    work = tempfile.mkdtemp(prefix="curbside-cost.")
    cluster, where = start(["postgres"])
    socket, port, user, pgbin = where["socket"], where["port"], where["user"], where["bin"]
    postmaster = int(open(f"{socket}/data/postmaster.pid").readline())

    def psql(sql, database="postgres"):
        return subprocess.run([f"{pgbin}/psql", "-h", socket, "-p", port, "-U", user, "-d", database, "-v",
                               "ON_ERROR_STOP=1", "-Atqc", sql], capture_output=True, text=True, check=True).stdout.strip()

    def pg_snapshot(database):
        row = psql(f"SELECT pg_current_wal_lsn(), xact_commit FROM pg_stat_database WHERE datname = '{database}'")
        lsn, commits = row.split("|")
        return lsn, int(commits)

    def wal_bytes(before, after):
        return int(psql(f"SELECT pg_wal_lsn_diff('{after}', '{before}')"))

    psql("CREATE DATABASE cost")
    url = f"postgres://{user}@{socket.replace('/', '%2F')}:{port}/cost"
    relay, a = start(["serve-relay", "--database", url, "--prefix", "load"])
    listener, b = start(["serve-relay", "--database", url, "--prefix", "listen"])
    relay_pid, listener_pid = int(a["pid"]), int(b["pid"])

    def load(count):
        command = [BENCH, "send-load", a["port"], a["keys"], str(count), a["fingerprint"]]
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        return dict(zip(out.split()[::2], out.split()[1::2]))

    load(1600)  # warm-up: the pool's connections and their backends exist before perf attaches

    def drain(count, batch):
        command = [BENCH, "drain-load", a["port"], a["keys"], str(count), a["fingerprint"], "--batch", str(batch)]
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout.split()
        return {"stored": out[1], "seconds": out[3]}

    def measured(count, run=load):
        pids = postgres_pids(postmaster)
        perfs = {name: perf_stat(p, f"{work}/{name}.perf") for name, p in
                 (("relay", [relay_pid]), ("listener", [listener_pid]), ("postgres", pids))}
        time.sleep(0.3)
        lsn0, commits0 = pg_snapshot("cost")
        cpu0, io0 = postgres_cpu(postmaster), io(relay_pid)
        started = time.monotonic()
        result = run(count)
        elapsed = time.monotonic() - started
        lsn1, commits1 = pg_snapshot("cost")
        cpu1, io1 = postgres_cpu(postmaster), io(relay_pid)
        perf = {name: perf_result(process, f"{work}/{name}.perf") for name, process in perfs.items()}
        return {
            "stored": int(result["stored"]), "seconds": float(result["seconds"]), "wall": elapsed,
            "relay_ms": perf["relay"]["task-clock"], "relay_cs": perf["relay"]["context-switches"],
            "listener_ms": perf["listener"]["task-clock"], "postgres_ms": perf["postgres"]["task-clock"],
            "postgres_proc_s": cpu1 - cpu0, "wal": wal_bytes(lsn0, lsn1), "commits": commits1 - commits0,
            "relay_write_bytes": io1["write_bytes"] - io0["write_bytes"], "relay_wchar": io1["wchar"] - io0["wchar"],
        }

    idle = measured(0)
    full = measured(CONSULTS)
    n = full["stored"]
    how = f"python3 bench/relay_cost.py {CONSULTS}"
    emit("pg_consults_per_s", n / full["seconds"], "consults/s", how)
    emit("pg_relay_cpu_us_per_consult", (full["relay_ms"] - idle["relay_ms"]) * 1000 / n, "µs", how)
    emit("pg_relay_context_switches_per_consult", (full["relay_cs"] - idle["relay_cs"]) / n, "switches", how)
    emit("pg_listener_cpu_us_per_consult", (full["listener_ms"] - idle["listener_ms"]) * 1000 / n, "µs", how)
    emit("pg_postgres_cpu_us_per_consult", (full["postgres_ms"] - idle["postgres_ms"]) * 1000 / n, "µs", how)
    emit("pg_postgres_cpu_us_per_consult_proc", (full["postgres_proc_s"] - idle["postgres_proc_s"]) * 1e6 / n, "µs", how)
    emit("pg_commits_per_s", full["commits"] / full["seconds"], "commits/s", how)
    emit("pg_consults_per_commit", n / max(full["commits"], 1), "consults", how)
    emit("pg_wal_bytes_per_consult", (full["wal"] - idle["wal"]) / n, "bytes", how)
    emit("pg_relay_disk_bytes_per_consult", (full["relay_write_bytes"] - idle["relay_write_bytes"]) / n, "bytes", how)
    emit("pg_relay_written_bytes_per_consult", (full["relay_wchar"] - idle["relay_wchar"]) / n, "bytes", how)
    emit("pg_envelope_table_bytes_per_queued_consult", int(psql(
        "SELECT pg_total_relation_size('envelope') / GREATEST(COUNT(*), 1) FROM envelope", "cost")), "bytes", how)

    # The rest of a consult's life: its recipient fetches and acknowledges it (a notice for its sender), one at a time
    # as a client does for a pushed consult, and 100 at a time as a client catching up does.
    for batch, count in ((1, CONSULTS // 4), (100, CONSULTS // 2)):
        idle = measured(0, lambda c: drain(c, batch))
        full = measured(count, lambda c: drain(c, batch))
        n = full["stored"]
        emit(f"pg_ack_{batch}_per_s", n / full["seconds"], "consults/s", how)
        emit(f"pg_ack_{batch}_relay_cpu_us_per_consult", (full["relay_ms"] - idle["relay_ms"]) * 1000 / n, "µs", how)
        emit(f"pg_ack_{batch}_postgres_cpu_us_per_consult", (full["postgres_ms"] - idle["postgres_ms"]) * 1000 / n, "µs", how)
        emit(f"pg_ack_{batch}_wal_bytes_per_consult", (full["wal"] - idle["wal"]) / n, "bytes", how)
        emit(f"pg_ack_{batch}_commits_per_consult", (full["commits"] - idle["commits"]) / n, "commits", how)

    # Two relay processes sending at once, 16 senders each: to one recipient (its advisory lock serialises their
    # transactions) and to two recipients (one each), beside the one-process rate above.
    def both(to_a, to_b):
        commands = [[BENCH, "send-load", w["port"], w["keys"], str(CONSULTS // 2), w["fingerprint"]] + (["--to", to] if to else [])
                    for w, to in ((a, to_a), (b, to_b))]
        runs = [subprocess.Popen(c, stdout=subprocess.PIPE, text=True) for c in commands]
        outs = [r.communicate(timeout=600)[0].split() for r in runs]
        return sum(int(o[1]) for o in outs) / max(float(o[3]) for o in outs)
    sink_a = sorted(line.split()[0] for line in open(a["keys"]))[-1]
    emit("pg_two_processes_one_recipient_per_s", both(None, sink_a), "consults/s", how)
    emit("pg_two_processes_two_recipients_per_s", both(None, None), "consults/s", how)
    for process in (relay, listener):
        process.stdin.close()
        process.wait(timeout=30)

    # pgbench's bare durable row on the same cluster: PostgreSQL's CPU and WAL for one 1 KiB INSERT and COMMIT.
    psql("CREATE DATABASE bare")
    psql("CREATE TABLE consult (id bigserial PRIMARY KEY, body bytea NOT NULL)", "bare")
    script = f"{work}/insert.sql"
    open(script, "w").write("INSERT INTO consult (body) VALUES ('\\x" + "55" * 1024 + "');\n")
    pgbench = [f"{pgbin}/pgbench", "-h", socket, "-p", port, "-U", user, "-n", "-M", "prepared", "-f", script,
               "-c", "16", "-j", "2", "-t", str(CONSULTS // 16), "bare"]
    psql("CHECKPOINT")
    lsn0, commits0 = pg_snapshot("bare")
    cpu0 = postgres_cpu(postmaster)
    out = subprocess.run(pgbench, capture_output=True, text=True, check=True).stdout
    cpu1 = postgres_cpu(postmaster)
    lsn1, commits1 = pg_snapshot("bare")
    rows = (CONSULTS // 16) * 16
    how = "pgbench -n -M prepared -f insert.sql -c 16 -j 2 -t %d (1 KiB bytea INSERT per transaction)" % (CONSULTS // 16)
    emit("pgbench_tps", float(re.search(r"tps = ([0-9.]+)", out).group(1)), "tx/s", how)
    emit("pgbench_postgres_cpu_us_per_row", (cpu1 - cpu0) * 1e6 / rows, "µs", how)
    emit("pgbench_wal_bytes_per_row", wal_bytes(lsn0, lsn1) / rows, "bytes", how)
    emit("pgbench_commits_per_row", (commits1 - commits0) / rows, "commits", how)
    cluster.stdin.close()
    cluster.wait(timeout=60)

    # The same consults through a relay on SQLite, for comparison.
    relay, a = start(["serve-relay", "--prefix", "load"])
    relay_pid = int(a["pid"])
    load(1600)
    results = {}
    for count in (0, CONSULTS):
        perf = perf_stat([relay_pid], f"{work}/sqlite.perf")
        time.sleep(0.3)
        io0 = io(relay_pid)
        result = load(count)
        io1 = io(relay_pid)
        results[count] = (perf_result(perf, f"{work}/sqlite.perf"), io1["write_bytes"] - io0["write_bytes"], result)
    n = int(results[CONSULTS][2]["stored"])
    how = f"python3 bench/relay_cost.py {CONSULTS}"
    emit("sqlite_consults_per_s", n / float(results[CONSULTS][2]["seconds"]), "consults/s", how)
    emit("sqlite_relay_cpu_us_per_consult",
         (results[CONSULTS][0]["task-clock"] - results[0][0]["task-clock"]) * 1000 / n, "µs", how)
    emit("sqlite_relay_disk_bytes_per_consult", (results[CONSULTS][1] - results[0][1]) / n, "bytes", how)
    relay.stdin.close()
    relay.wait(timeout=30)


try:
    main()
finally:
    for child in children:
        if child.poll() is None:
            child.kill()
