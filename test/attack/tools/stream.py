#!/usr/bin/env python3
"""A TCP service and its client for the attack tests (standard library only).

server ADDR PORT        serves connections, one command line each:
                          SECRET <text>       -> <text>, then the connection stays open until
                                                 the client closes it;
                          UPLOAD <n> + n bytes -> "sha256 <hex>";
                          DOWNLOAD <n> <rate> -> "sha256 <hex>", then n random bytes paced at
                                                 <rate> bytes/s by the server (so the client's
                                                 window stays open).
secret HOST PORT TEXT WAIT HOLD
                        connects, waits WAIT seconds, asks for TEXT, prints "received <it>" as
                        soon as it has it all, then holds the connection HOLD seconds.
upload HOST PORT FILE RATE
                        sends FILE at RATE bytes/s, prints the server's answer.
download HOST PORT N RATE
                        receives N bytes, prints "sha256 <received> <announced>".
"""
import hashlib
import os
import socket
import sys
import threading
import time


def recv_line(c):
    b = bytearray()
    while not b.endswith(b"\n"):
        x = c.recv(1)
        if not x:
            raise EOFError
        b += x
    return bytes(b[:-1])


def paced(c, data, rate):
    t0 = time.monotonic()
    for off in range(0, len(data), 65536):
        c.sendall(data[off:off + 65536])
        ahead = (off + 65536) / rate - (time.monotonic() - t0)
        if ahead > 0:
            time.sleep(ahead)


def drain(c):
    while c.recv(65536):
        pass


def handle(c):
    try:
        cmd, arg = recv_line(c).split(b" ", 1)
        if cmd == b"SECRET":
            c.sendall(arg)
            drain(c)
        elif cmd == b"UPLOAD":
            left, h = int(arg), hashlib.sha256()
            while left:
                x = c.recv(min(left, 65536))
                if not x:
                    raise EOFError
                h.update(x)
                left -= len(x)
            c.sendall(b"sha256 " + h.hexdigest().encode() + b"\n")
        elif cmd == b"DOWNLOAD":
            n, rate = arg.split(b" ")
            data = os.urandom(int(n))
            c.sendall(b"sha256 " + hashlib.sha256(data).hexdigest().encode() + b"\n")
            paced(c, data, float(rate))
            drain(c)
    except (EOFError, ConnectionError, ValueError):
        pass
    finally:
        c.close()


def main():
    mode = sys.argv[1]
    if mode == "server":
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((sys.argv[2], int(sys.argv[3])))
        s.listen(16)
        print("listening", flush=True)
        while True:
            c, _ = s.accept()
            threading.Thread(target=handle, args=(c,), daemon=True).start()
    host, port = sys.argv[2], int(sys.argv[3])
    c = socket.create_connection((host, port), timeout=60)
    if mode == "secret":
        text = sys.argv[4].encode()
        print("connected", flush=True)
        time.sleep(float(sys.argv[5]))
        c.sendall(b"SECRET " + text + b"\n")
        got = bytearray()
        while len(got) < len(text):
            x = c.recv(65536)
            if not x:
                break
            got += x
        print("received " + got.decode(errors="replace"), flush=True)
        time.sleep(float(sys.argv[6]))
    elif mode == "upload":
        data = open(sys.argv[4], "rb").read()
        c.sendall(b"UPLOAD %d\n" % len(data))
        paced(c, data, float(sys.argv[5]))
        print(recv_line(c).decode(), flush=True)
    elif mode == "download":
        n = int(sys.argv[4])
        c.sendall(b"DOWNLOAD %d %s\n" % (n, sys.argv[5].encode()))
        announced = recv_line(c).decode().split()[1]
        h, left = hashlib.sha256(), n
        while left:
            x = c.recv(min(left, 65536))
            if not x:
                break
            h.update(x)
            left -= len(x)
        print("sha256 %s %s" % (h.hexdigest(), announced), flush=True)
    c.close()


if __name__ == "__main__":
    main()
