#!/usr/bin/env python3
"""Independent computation of the test vectors of docs/protocol.md §15 (protocol version 2),
from the formulas in the document only (hmac, hashlib, cryptography's X25519 and HKDF).
Run: python3 common/test/protocol/vectors.py — vectors.test.ts pins the same values."""
import hashlib, hmac, struct
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives import hashes, serialization

VERSION = 2
L = lambda s: b"gsra/1 " + s.encode()
H = lambda k, *p: hmac.new(k, b"".join(p), hashlib.sha256).digest()
def hkdf(ikm, salt, info, n):
    return HKDF(algorithm=hashes.SHA256(), length=n, salt=salt or None, info=info).derive(ikm)
raw = lambda k: k.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

gw = X25519PrivateKey.from_private_bytes(b"\x01" * 32)
en = X25519PrivateKey.from_private_bytes(b"\x02" * 32)
gw_pub, en_pub = raw(gw), raw(en)
en_nonce, cookie_time, ts = b"\x10" * 16, 1790000000, 1790000000500
addr, port = bytes([203, 0, 113, 2]), 61000
cookie = H(b"\x20" * 32, L("cookie"), addr, struct.pack(">HI", port, cookie_time), en_nonce, gw_pub)[:16]
dh = en.exchange(X25519PublicKey.from_public_bytes(gw_pub))
assert dh == gw.exchange(X25519PublicKey.from_public_bytes(en_pub))
s = lambda x: bytes([len(x)]) + x
auth_prefix = (b"GS" + bytes([VERSION, 0x03]) + en_nonce + struct.pack(">I", cookie_time) + cookie
               + struct.pack(">Q", ts) + en_pub + struct.pack(">I", 1) + s(b"alice") + s(b"sales"))
th = hashlib.sha256(L("transcript") + gw_pub + auth_prefix).digest()
gk, us = b"\x11" * 32, b"\xa1" * 32
user_proof = H(us, L("user-proof"), th, hashlib.sha256(dh).digest())[:16]
group_proof = H(gk, L("group-proof"), th, hashlib.sha256(dh).digest())[:16]
session_secret = hkdf(dh + gk + us, en_nonce + cookie, L("session") + th, 32)
out = dict(gwPub=gw_pub, enPub=en_pub, cookie=cookie, dh=dh, authPrefix=auth_prefix, th=th,
           userProof=user_proof, groupProof=group_proof, sessionSecret=session_secret)

ss = b"\x03" * 32
ck = {d: hkdf(ss, b"", L("ctrl") + bytes([d]), 32) for d in (1, 2)}
sid = bytes.fromhex("0102030405060708")
hdr = lambda t, seq, ack, tstamp: b"GS" + bytes([VERSION, t]) + sid + struct.pack(">QQQ", seq, ack, tstamp)
seal = lambda key, m: m + H(key, m)[:16]
keepalive = seal(ck[1], hdr(0x16, 1, 0, 1790000000000))
reset_key = b"\x5e" * 32
reset_token = H(reset_key, L("reset"), sid)[:16]
auth_ok = seal(ck[2], hdr(0x04, 1, 0, 1790000000000) + struct.pack(">IHI", 28800, 25, 120) + reset_token)
# stateless reset: HANDSHAKE_ERROR(ref = sessionId ‖ 8 zeros, unknown-session = 8, text "", authKind 2, tag = token)
reset = b"GS" + bytes([VERSION, 0x05]) + sid + b"\x00" * 8 + struct.pack(">H", 8) + b"\x00" + b"\x02" + reset_token
flow = {d: hkdf(ss, b"", L("flow") + bytes([6]) + struct.pack(">HI", 40000, 0) + bytes([d]), 56) for d in (1, 2)}
out.update(ctrlEnToGw=ck[1], ctrlGwToEn=ck[2], keepalive=keepalive, resetToken=reset_token, authOk=auth_ok,
           statelessReset=reset, flowEnToGw=flow[1], flowGwToEn=flow[2])
for k, v in out.items():
    print(f"{k:15} {v.hex()}")
