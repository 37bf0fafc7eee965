#!/usr/bin/env python3
"""A tiny, slow DNS server for tests/admin_lookup.rs.

Run it inside a network namespace whose resolv.conf points at it:
    ip netns exec NS python3 tests/slow_dns.py --delay 3 --name slow.test=127.0.0.1

A queries for a --name are answered with its address after --delay seconds;
every other query (AAAA, unknown names) at once: AAAA with no records,
unknown names with NXDOMAIN. Logs to stderr, one line per event, with the
CLOCK_MONOTONIC time (the clock Rust's Instant reads) so a test can order
its own events against the answers:
    listening on 127.0.0.1:53
    query A slow.test at 1234.567890
    answered A slow.test at 1237.568000
"""
import argparse
import socket
import struct
import sys
import threading
import time


def log(line):
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def parse_question(msg):
    """(id, flags, qname, qtype, end of question) of a query."""
    qid, flags, qd = struct.unpack("!HHH", msg[:6])
    if qd != 1:
        raise ValueError(f"{qd} questions")
    labels, i = [], 12
    while msg[i] != 0:
        n = msg[i]
        labels.append(msg[i + 1:i + 1 + n].decode("ascii"))
        i += 1 + n
    i += 1
    qtype, _qclass = struct.unpack("!HH", msg[i:i + 4])
    return qid, flags, ".".join(labels).lower(), qtype, i + 4


def reply(msg, end, qid, flags, rcode, addr=None):
    # QR, opcode copied, AA, RD copied, RA.
    out_flags = 0x8000 | (flags & 0x7900) | 0x0400 | 0x0080 | rcode
    answers = 1 if addr else 0
    out = struct.pack("!HHHHHH", qid, out_flags, 1, answers, 0, 0) + msg[12:end]
    if addr:
        # Name pointer to the question, type A, class IN, TTL 0, 4 bytes.
        out += struct.pack("!HHHIH", 0xC00C, 1, 1, 0, 4) + socket.inet_aton(addr)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=53)
    ap.add_argument("--delay", type=float, default=3.0)
    ap.add_argument("--name", action="append", default=[], help="NAME=IPV4, answered after --delay")
    args = ap.parse_args()
    names = dict(n.lower().split("=", 1) for n in args.name)

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((args.listen, args.port))
    log(f"listening on {args.listen}:{sock.getsockname()[1]}")
    lock = threading.Lock()

    def send_later(delay, data, peer, what):
        # A thread per delayed answer, so a slow A does not hold back the
        # AAAA query the resolver sends beside it.
        time.sleep(delay)
        with lock:
            sock.sendto(data, peer)
        log(f"answered {what} at {time.monotonic():.6f}")

    while True:
        msg, peer = sock.recvfrom(4096)
        try:
            qid, flags, qname, qtype, end = parse_question(msg)
        except (ValueError, IndexError, struct.error) as e:
            log(f"bad query from {peer}: {e}")
            continue
        kind = {1: "A", 28: "AAAA"}.get(qtype, str(qtype))
        log(f"query {kind} {qname} at {time.monotonic():.6f}")
        if qname not in names:
            data, delay = reply(msg, end, qid, flags, 3), 0.0
        elif qtype == 1:
            data, delay = reply(msg, end, qid, flags, 0, names[qname]), args.delay
        else:
            data, delay = reply(msg, end, qid, flags, 0), 0.0
        threading.Thread(target=send_later, args=(delay, data, peer, f"{kind} {qname}"), daemon=True).start()


if __name__ == "__main__":
    main()
