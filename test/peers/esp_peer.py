#!/usr/bin/python3
"""scapy as the independent ESP peer for test/peers/esp.test.ts (scapy.layers.ipsec, python3-scapy 2.5).

    esp_peer.py decrypt  stdin: [{"name", "packet", "cipher", "key", "spi", "esn", "seqHi"}, ...]
                         stdout: [{"name", "packet", "payload", "nh", "padlen"} | {"name", "error"}, ...]
    esp_peer.py encrypt  stdin: [{"name", "packet", "cipher", "key", "spi", "seqLo", "esn", "seqHi", "udp"}, ...]
                         stdout: [{"name", "packet"} | {"name", "error"}, ...]

"packet" is an IP packet (IPv4 or IPv6, from its first header byte) in hex. "cipher" is scapy's name,
"AES-GCM" or "CHACHA20-POLY1305"; "key" the keying material (key || 4-byte salt, RFC 4106 §8.1 / RFC 7634
§4) in hex. "esn" enables extended sequence numbers with "seqHi" as the high 32 bits. "udp" is null or
{"sport", "dport"}: ESP-in-UDP (RFC 3948).

decrypt: scapy finds the ESP header itself (after IPv4/IPv6, or inside UDP to port 4500), verifies the ICV
and decrypts. "packet" is the IP packet scapy rebuilds (SecurityAssociation.decrypt); "payload", "nh" and
"padlen" come from the decrypted ESP trailer (the crypt algorithm's own decrypt), which the caller uses
where scapy's rebuilding is wrong (IPv6 with UDP encapsulation: scapy 2.5 writes the next header into the
UDP layer and keeps it).

encrypt: scapy protects the packet in transport mode with sequence number "seqLo" and an IV of its own
(random, as scapy draws it), padding to 4 bytes with 1, 2, 3, ... With UDP, the UDP length scapy 2.5
leaves at 8 is corrected (see encrypt); its checksum stays zero, as scapy sends it, over IPv6 too.
"""
import json
import logging
import sys

logging.getLogger("scapy").setLevel(logging.ERROR)

from scapy.all import IP, UDP, IPv6, raw  # noqa: E402
from scapy.layers.ipsec import ESP, SecurityAssociation  # noqa: E402


def parse_ip(h):
    b = bytes.fromhex(h)
    return IP(b) if b[0] >> 4 == 4 else IPv6(b)


def make_sa(d, nat_t=None):
    return SecurityAssociation(
        ESP, spi=d["spi"], crypt_algo=d["cipher"], crypt_key=bytes.fromhex(d["key"]),
        auth_algo="NULL", auth_key=None, nat_t_header=nat_t,
        esn_en=bool(d.get("esn")), esn=d.get("seqHi", 0),
    )


def decrypt(d):
    pkt = parse_ip(d["packet"])
    if ESP not in pkt:
        raise ValueError("scapy finds no ESP layer in " + pkt.summary())
    nat_t = UDP(sport=pkt[UDP].sport, dport=pkt[UDP].dport) if UDP in pkt else None
    sa = make_sa(d, nat_t)
    esp = sa.crypt_algo.decrypt(sa, pkt[ESP], sa.crypt_key, sa.crypt_algo.icv_size,
                                esn_en=bool(d.get("esn")), esn=d.get("seqHi", 0))
    whole = sa.decrypt(parse_ip(d["packet"]))
    return {"packet": raw(whole).hex(), "payload": bytes(esp.data).hex(), "nh": esp.nh, "padlen": esp.padlen}


def encrypt(d):
    pkt = parse_ip(d["packet"])
    u = d.get("udp")
    sa = make_sa(d, UDP(sport=u["sport"], dport=u["dport"]) if u else None)
    out = sa.encrypt(pkt, seq_num=d["seqLo"], esn_en=bool(d.get("esn")), esn=d.get("seqHi", 0))
    if u:
        # scapy 2.5 freezes the UDP length at 8 (it builds the IP and UDP headers before appending ESP);
        # the length is header plumbing, not ESP: set it to what the datagram holds.
        out = out.__class__(raw(out))
        out[UDP].len = 8 + len(raw(out[UDP].payload))
        out = out.__class__(raw(out))
    return {"packet": raw(out).hex()}


def main():
    cmd = sys.argv[1]
    fn = {"decrypt": decrypt, "encrypt": encrypt}[cmd]
    out = []
    for d in json.load(sys.stdin):
        try:
            r = fn(d)
            r["name"] = d["name"]
        except Exception as e:  # reported per packet; the caller fails the test with it
            r = {"name": d["name"], "error": "%s: %s" % (type(e).__name__, e)}
        out.append(r)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
