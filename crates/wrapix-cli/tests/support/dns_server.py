#!/usr/bin/env python3
"""A minimal authoritative DNS server for the DNS-forwarding test.

Usage: dns_server.py ADDR PORT
Answers every A query with 10.1.2.3 (TTL 5); other types get an empty answer. Prints
`READY` once bound and `QUERY <name>` for each query (stdout, flushed).
"""

import socket
import struct
import sys

addr, port = sys.argv[1], int(sys.argv[2])
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind((addr, port))
print("READY", flush=True)


def qname(packet, offset):
    labels = []
    while True:
        n = packet[offset]
        offset += 1
        if n == 0:
            return ".".join(labels), offset
        labels.append(packet[offset : offset + n].decode("ascii", "replace"))
        offset += n


while True:
    packet, peer = sock.recvfrom(512)
    if len(packet) < 12:
        continue
    ident, _flags, qdcount = struct.unpack("!HHH", packet[:6])
    if qdcount != 1:
        continue
    name, end = qname(packet, 12)
    qtype, _qclass = struct.unpack("!HH", packet[end : end + 4])
    question = packet[12 : end + 4]
    print(f"QUERY {name}", flush=True)
    answers = b""
    if qtype == 1:
        answers = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 5, 4) + socket.inet_aton("10.1.2.3")
    header = struct.pack("!HHHHHH", ident, 0x8180, 1, 1 if answers else 0, 0, 0)
    sock.sendto(header + question + answers, peer)
