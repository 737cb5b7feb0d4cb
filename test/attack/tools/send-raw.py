#!/usr/bin/env python3
"""Sends IPv4 packets exactly as given (addresses, ports, checksums: all from the caller), one hex
packet per line on stdin, through a raw socket (IP_HDRINCL). Used by the attack tests to forge and
replay packets from inside a lab namespace; needs no module beyond the standard library.
Usage: send-raw.py [--gap-ms N]   (prints the number of packets sent)"""
import socket
import sys
import time

gap = 0.0
if len(sys.argv) == 3 and sys.argv[1] == "--gap-ms":
    gap = float(sys.argv[2]) / 1000
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
n = 0
for line in sys.stdin:
    line = line.strip()
    if not line:
        continue
    p = bytes.fromhex(line)
    s.sendto(p, (socket.inet_ntoa(p[16:20]), 0))
    n += 1
    if gap:
        time.sleep(gap)
print(n)
