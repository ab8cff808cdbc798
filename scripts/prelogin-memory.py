#!/usr/bin/env python3
"""Relay memory under unauthenticated connections that each hold a partial frame (issue 14 item 7).

Starts `curbside relay serve` on a fresh data directory, opens CONNECTIONS TLS connections from loopback addresses
127.0.0.1 .. 127.0.0.ADDRESSES (the relay allows 32 connections per address and 1024 in all), reads each one's
challenge, then sends a frame header announcing ANNOUNCE bytes and BODY bytes of its body, and never logs in.
While every connection is held open it prints the relay's resident memory (VmRSS) and peak (VmHWM) from /proc,
and how the relay answered (error codes, closes).

    scripts/prelogin-memory.py --curbside .build/debug/curbside --connections 1000 --announce 4194304
"""

import argparse
import os
import re
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time


def memory(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                fields[name] = int(value.split()[0]) // 1024  # MiB
    return fields


def start_relay(curbside, directory):
    subprocess.run([curbside, "relay", "init", "--data", directory, "--listen", "127.0.0.1:0"], check=True,
                   stdout=subprocess.DEVNULL)
    log = open(os.path.join(directory, "serve.log"), "w+")
    relay = subprocess.Popen([curbside, "relay", "serve", "--data", directory], stdout=subprocess.DEVNULL, stderr=log)
    for _ in range(200):
        time.sleep(0.05)
        log.seek(0)
        match = re.search(r"listening on 127\.0\.0\.1:(\d+)", log.read())
        if match:
            return relay, int(match.group(1))
    relay.kill()
    sys.exit("relay serve did not report its port")


def read_frame(connection, timeout):
    """One frame (type, request id, body), or None if the relay closed or sent nothing in time."""
    connection.settimeout(timeout)
    data = b""
    try:
        while len(data) < 4 or len(data) < 4 + struct.unpack(">I", data[:4])[0]:
            chunk = connection.recv(65536)
            if not chunk:
                return None
            data += chunk
    except (socket.timeout, ssl.SSLError, OSError):
        return None
    length = struct.unpack(">I", data[:4])[0]
    frame_type, request_id = struct.unpack(">HI", data[4:10])
    return frame_type, request_id, data[10:4 + length]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--curbside", required=True)
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--addresses", type=int, default=32)
    parser.add_argument("--announce", type=int, default=4194304, help="frame length announced (default 2^22)")
    parser.add_argument("--body", type=int, default=None,
                        help="body bytes sent after the header (default: all but the last byte, at most 4 MiB)")
    arguments = parser.parse_args()
    body = arguments.body if arguments.body is not None else min(arguments.announce - 7, 4 << 20)

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.set_alpn_protocols(["curbside/1"])

    with tempfile.TemporaryDirectory(prefix="curbside-memory-") as directory:
        relay, port = start_relay(arguments.curbside, os.path.join(directory, "relay"))
        try:
            time.sleep(0.5)
            baseline = memory(relay.pid)
            held, answers, failed = [], {}, 0
            header = struct.pack(">IHI", arguments.announce, 0x0003, 1)
            started = time.monotonic()
            for index in range(arguments.connections):
                source = f"127.0.0.{1 + index % arguments.addresses}"
                try:
                    raw = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
                    connection = context.wrap_socket(raw)
                    challenge = read_frame(connection, 10)
                    if challenge is None or challenge[0] != 0x0002:
                        raise OSError("no challenge")
                    # The header, then the body: a small body goes at once; a large one only if the relay has not
                    # refused the length within 0.1 s (it would stop reading, and the send would block).
                    connection.settimeout(10)
                    connection.sendall(header)
                    early = None if body <= 65536 else read_frame(connection, 0.1)
                    if body and early is None:
                        try:
                            connection.sendall(b"\0" * body)
                        except (ssl.SSLError, OSError):
                            pass  # the relay refused the frame and closed while we were still sending
                    held.append((connection, early))
                except (ssl.SSLError, OSError) as error:
                    failed += 1
                    if failed <= 3:
                        print(f"connection {index} from {source}: {error}", file=sys.stderr)
            elapsed = time.monotonic() - started
            time.sleep(2)
            under_load = memory(relay.pid)
            # What each connection got: an error frame, a close, or nothing (its partial frame is held).
            open_now = 0
            for connection, early in held:
                answer = early or read_frame(connection, 0.01)
                if answer is None and _still_open(connection):
                    open_now += 1
                    key = "no answer (frame held)"
                elif answer is None:
                    key = "closed without an answer"
                else:
                    key = f"error {struct.unpack('>H', answer[2][:2])[0]}" if answer[0] == 0x0001 else f"type {answer[0]}"
                answers[key] = answers.get(key, 0) + 1
            print(f"connections: {arguments.connections} from {arguments.addresses} addresses in {elapsed:.1f} s; "
                  f"announced {arguments.announce} bytes, then {body} bytes of the body unless refused first")
            print(f"relay answers: {dict(sorted(answers.items()))}; connection failures: {failed}; "
                  f"open and holding a partial frame 2 s after the last: {open_now}")
            print(f"relay RSS: {baseline['VmRSS']} MiB before, {under_load['VmRSS']} MiB with the connections held; "
                  f"peak {under_load['VmHWM']} MiB")
            for connection, _ in held:
                connection.close()
        finally:
            relay.terminate()
            relay.wait(timeout=30)


def _still_open(connection):
    """True if the relay has neither sent anything more nor closed the connection."""
    try:
        connection.setblocking(False)
        connection.recv(1)
        return False  # data or an orderly end
    except (ssl.SSLWantReadError, BlockingIOError):
        return True
    except (ssl.SSLError, OSError):
        return False


if __name__ == "__main__":
    main()
