#!/usr/bin/env python3
"""PCCOM wire format 2, golden vectors from an independent implementation (docs/pccom.md §10).

Written from docs/pccom.md alone: Python's hashlib/hmac for HMAC-SHA256 and the `openssl` command
line for the AES-128 block function (ECB on the counter blocks), no engine code. Prints the three
golden packets as hex, one per line (`syn`, `data`, `udp`); native/test/golden.test.ts compares
them with the bytes the engine produces (native/tests/protection.rs) and with docs/pccom.md.
"""
import hashlib
import hmac
import struct
import subprocess

ENC_KEY = bytes(range(0x1F, 0x1F + 16))
MAC_KEY = bytes(range(0x51, 0x51 + 32))
PEN, S = bytes([192, 168, 1, 10]), 40000
GGR, T = bytes([203, 0, 113, 1]), 20001
D = 80
ISN_EN, ISN_IN = 0x01020304, 0x0A0B0C0C


def aes_ecb(key: bytes, blocks: bytes) -> bytes:
    out = subprocess.run(
        ["openssl", "enc", "-aes-128-ecb", "-nopad", "-K", key.hex()],
        input=blocks, capture_output=True, check=True,
    ).stdout
    assert len(out) == len(blocks)
    return out


def siv_encrypt(t: bytes, plaintext: bytes) -> bytes:
    """AES-128-CTR under the counter blocks T(12) || be32(i), i = 0, 1, ..."""
    n = (len(plaintext) + 15) // 16
    ks = aes_ecb(ENC_KEY, b"".join(t + struct.pack(">I", i) for i in range(n)))
    return bytes(p ^ k for p, k in zip(plaintext, ks))


def mac(m: bytes) -> bytes:
    return hmac.new(MAC_KEY, m, hashlib.sha256).digest()[:12]


def csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(">%dH" % (len(data) // 2), data))
    while s > 0xFFFF:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ipv4(proto: int, l4: bytes) -> bytes:
    h = bytearray(struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 0x1234, 0x4000, 64, proto, 0, PEN, GGR))
    struct.pack_into(">H", h, 10, csum(bytes(h)))
    pseudo = PEN + GGR + struct.pack(">BBH", 0, proto, len(l4))
    l4 = bytearray(l4)
    struct.pack_into(">H", l4, 16 if proto == 6 else 6, csum(pseudo + bytes(l4)))
    return bytes(h) + bytes(l4)


def tcp(seq, ack, flags, window, other_opts, pccom_head, plaintext, isn_sender, isn_receiver, ext_ack):
    """A protected segment: other options, then the PCCOM option (head + T), then the ciphertext."""
    m = (bytes([0x11]) + struct.pack(">IIQQ", isn_sender, isn_receiver, seq, ext_ack)
         + bytes([0x00, flags]) + struct.pack(">HHH", window, 0, len(other_opts))
         + other_opts + pccom_head + plaintext)
    t = mac(m)
    opts = other_opts + pccom_head + t
    hdr = struct.pack(">HHIIBBHHH", S, T, seq, ack, (20 + len(opts)) // 4 << 4, flags, window, 0, 0)
    return ipv4(6, hdr + opts + siv_encrypt(t, plaintext))


def main():
    # Initial SYN: MSS 1460 clamped to 1444; option fd 14 4753 ver=2 flags=0 d; ISN_receiver = 0.
    syn = tcp(ISN_EN, 0, 0x02, 64240, bytes([2, 4, 0x05, 0xA4]), bytes([0xFD, 0x14, 0x47, 0x53, 2, 0]) + struct.pack(">H", D),
              b"", ISN_EN, 0, 0)
    # ACK|PSH after IN's SYN-ACK (ISN_IN): both ISNs in the MAC.
    data = tcp(ISN_EN + 1, ISN_IN + 1, 0x18, 64240, b"", bytes([0xFD, 0x10, 0x47, 0x53]), b"hello, gsra",
               ISN_EN, ISN_IN, ISN_IN + 1)
    # UDP datagram 1: trailer be16(d) || be48(1) || T.
    pl = b"udp payload"
    head = struct.pack(">H", D) + struct.pack(">Q", 1)[2:]
    t = mac(bytes([0x12]) + head + pl)
    body = siv_encrypt(t, pl) + head + t
    udp = ipv4(17, struct.pack(">HHHH", S, T, 8 + len(body), 0) + body)
    print("syn", syn.hex())
    print("data", data.hex())
    print("udp", udp.hex())


if __name__ == "__main__":
    main()
