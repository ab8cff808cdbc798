#!/usr/bin/env python3
"""Turns bench/run.sh's raw measurements into rows with baselines and ratios; prints the table, writes JSON lines."""
import json
import sys

# A metric measured several times (run.sh repeats the noisiest ones, both sides alike) counts as its median.
runs = {}
for line in open(sys.argv[1]):
    line = line.strip()
    if line.startswith("{"):
        item = json.loads(line)
        runs.setdefault(item["metric"], []).append(item)
raw = {}
for metric, items in runs.items():
    ordered = sorted(items, key=lambda item: item["value"])
    raw[metric] = ordered[len(ordered) // 2]

# Rows computed from others: the same figure under the name, and push latency above the disk's floor.
def derive(name, value, unit):
    raw[name] = {"metric": name, "value": value, "unit": unit}

if "relay_durable_msgs_per_s" in raw:
    derive("relay_durable_vs_rabbitmq", raw["relay_durable_msgs_per_s"]["value"], "msgs/s")
if "relay_durable_backlog_1000000_msgs_per_s" in raw:
    derive("relay_durable_backlog_ratio", raw["relay_durable_backlog_1000000_msgs_per_s"]["value"], "msgs/s")
if "push_latency_p99_ms" in raw and "fsync_floor_p99_ms" in raw:
    derive("push_overhead_p99_ms", raw["push_latency_p99_ms"]["value"] - raw["fsync_floor_p99_ms"]["value"], "ms")

# metric, baseline metric, baseline description, goal, higher_is_better
ROWS = [
    ("seal_per_s", "primitives_seal_per_s", "the same libsodium primitives called directly", "ratio >= 0.9", True),
    ("open_per_s", "primitives_open_per_s", "the same libsodium primitives called directly", "ratio >= 0.9", True),
    ("relay_durable_msgs_per_s", "mosquitto_msgs_per_s", "mosquitto 2 TLS 1.3, persistence, QoS 1 (no fsync)", "ratio >= 1.0", True),
    ("push_latency_p50_ms", "mosquitto_latency_p50_ms", "mosquitto QoS 1 at 1000 msgs/s", "-", False),
    ("push_latency_p99_ms", "mosquitto_latency_p99_ms", "mosquitto QoS 1 at 1000 msgs/s", "p99 <= 2x peer", False),
    ("relay_durable_pg_msgs_per_s", "pgbench_insert_tps", "pgbench 1 KiB INSERT/tx, 16 clients, same cluster", "ratio >= 0.8", True),
    ("push_latency_pg_200_p50_ms", "push_latency_200_p50_ms", "SQLite relay, one process, 200 msgs/s", "-", False),
    ("push_latency_pg_200_p99_ms", "push_latency_200_p99_ms", "SQLite relay, one process, 200 msgs/s", "-", False),
    ("push_latency_pg_cross_200_p50_ms", "push_latency_pg_200_p50_ms", "PostgreSQL, one relay process, 200 msgs/s", "-", False),
    ("push_latency_pg_cross_200_p99_ms", "push_latency_pg_200_p99_ms", "PostgreSQL, one relay process, 200 msgs/s", "p99 <= 2x one process", False),
    ("attachment_mb_per_s", "curl_put_mb_per_s", "curl PUT over HTTPS to nginx (disk)", "ratio >= 1.0", True),
    ("tls_bulk_mb_per_s", "openssl_bulk_mb_per_s", "plain C on OpenSSL, same defaults", "ratio >= 0.8", True),
    ("handshakes_per_s", "s_time_per_s", "openssl s_time -new vs s_server", "ratio >= 0.8", True),
    ("handshakes_tls_only_per_s", "s_time_per_s", "the same without the login (handshake only), vs s_time", "-", True),
    ("relay_durable_vs_rabbitmq", "rabbitmq_msgs_per_s", "RabbitMQ TLS 1.3, durable queue, persistent, confirms, window 320", "ratio >= 1.0", True),
    ("relay_durable_backlog_ratio", "relay_durable_backlog_0_msgs_per_s", "the same relay, empty store (1,000,000 queued for others)", "ratio >= 0.9", True),
    ("fsync_floor_p99_ms", None, "1 KiB append + fdatasync at 1000/s, relay's disk", "-", False),
    ("push_overhead_p99_ms", "mosquitto_latency_p99_ms", "push p99 minus fsync floor p99, vs mosquitto p99", "ratio >= 0.5", False),
    ("attachment_up_mb_per_s", "age_curl_up_mb_per_s", "age -r | curl -T - to nginx over HTTPS", "ratio >= 1.0", True),
    ("attachment_down_mb_per_s", "age_curl_down_mb_per_s", "curl over HTTPS | age -d > file", "ratio >= 1.0", True),
    ("attachment_up_cpu_s", "age_curl_up_cpu_s", "CPU s, 256 MiB up: age + curl + nginx's worker", "-", False),
    ("attachment_down_cpu_s", "age_curl_down_cpu_s", "CPU s, 256 MiB down: curl + age + nginx's worker", "-", False),
    ("relay_durable_senders_1_msgs_per_s", None, "-", "-", True),
    ("relay_durable_senders_4_msgs_per_s", None, "-", "-", True),
    ("relay_durable_senders_16_msgs_per_s", None, "-", "-", True),
    ("relay_durable_senders_64_msgs_per_s", None, "-", "-", True),
    ("relay_instructions_per_send", None, "callgrind, relay process, 2,000 sends, 20 in flight each", "-", False),
    ("offline_fetch_10000_s", None, "fetch + acknowledge 10,000 pending, 100 a request", "-", False),
    ("idle_conn_kib", None, "10,000 logged-in idle connections, relay RSS growth", "<= 48 KiB", False),
    ("client_peak_rss_mib", None, "-", "<= 64 MiB", False),
]

out = open(sys.argv[2], "w")
print(f"{'metric':33} {'Curbside':>12} {'baseline':>12} {'ratio':>7}  goal             baseline is")
for metric, baseline, described, goal, higher in ROWS:
    item = raw.get(metric)
    value = item["value"] if item else None
    base = raw.get(baseline)["value"] if baseline and baseline in raw else None
    ratio = None
    if value is not None and base:
        ratio = value / base if higher else base / value if value > 0 else None
    row = {"metric": metric, "value": value, "unit": item["unit"] if item else None, "baseline": described if baseline else None,
           "baseline_value": base, "ratio": round(ratio, 3) if ratio is not None else None}
    out.write(json.dumps(row) + "\n")
    fmt = lambda v: "-" if v is None else f"{v:.2f}"
    print(f"{metric:33} {fmt(value):>12} {fmt(base):>12} {fmt(ratio):>7}  {goal:16} {described}")
    # The runs behind a median, both sides, so that the spread is read with the figure.
    spread = [m for m in (metric, baseline) if m and len(runs.get(m, [])) > 1]
    if spread:
        print(" " * 35 + "; ".join(f"{m}: " + ", ".join(f"{i['value']:.2f}" for i in runs[m]) for m in spread))
out.close()
