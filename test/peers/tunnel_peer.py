#!/usr/bin/python3
"""scapy as the independent tunnel peer for test/peers/datapath.test.ts.

    tunnel_peer.py build   stdin: [frame description, ...]   stdout: [{"name", "frame", "inner"} | {"name", "error"}]
    tunnel_peer.py decode  stdin: [{"name", "hex"}, ...]       stdout: [decoded frame, ...]

build: each description names the outer headers (underlay family, MACs, addresses, UDP ports, what to do with
the UDP checksum), the tunnel header (VXLAN or Geneve: VNI, Geneve options) and the inner frame (Ethernet,
IPv4 or IPv6, UDP / TCP / ICMP, payload). scapy builds the inner frame alone first; its bytes are returned as
"inner" and must be what the datapath delivers. Lengths and checksums are scapy's. "udpChecksum" is "auto"
(scapy computes it), "zero" (sent as 0, "not computed") or "bad" (scapy's value plus one). Optional:
"critical" overrides the Geneve C bit (a sender that lies), "ipOptions" puts a Router Alert option in the
outer IPv4 header, "destOpt" a Destination Options header after the outer IPv6 one, and "trailer" appends
that many bytes after the IP datagram (an Ethernet trailer no length field covers).

decode: each frame is dissected by scapy's own layer classes (contrib.geneve, layers.vxlan); the outer
UDP checksum is recomputed with scapy's in4_chksum / in6_chksum over the datagram as received, so the
caller can compare it with what the frame carries.

Run with Debian's /usr/bin/python3 (python3-scapy 2.5).
"""
import json
import logging
import socket
import sys

logging.getLogger("scapy").setLevel(logging.ERROR)

from scapy.all import (  # noqa: E402
    ICMP, IP, TCP, UDP, VXLAN, Ether, ICMPv6EchoRequest, IPOption_Router_Alert, IPv6, IPv6ExtHdrDestOpt, PadN, Raw,
    load_contrib,
)
from scapy.layers.inet import in4_chksum  # noqa: E402
from scapy.layers.inet6 import in6_chksum  # noqa: E402
from scapy.utils import checksum  # noqa: E402

load_contrib("geneve")
from scapy.contrib.geneve import GENEVE, GeneveOptions  # noqa: E402


def inner_frame(d):
    eth = Ether(src=d["srcMac"], dst=d["dstMac"])
    if d["family"] == 4:
        ip = IP(src=d["src"], dst=d["dst"], ttl=d.get("ttl", 64), id=d.get("ident", 1))
    else:
        ip = IPv6(src=d["src"], dst=d["dst"], hlim=d.get("ttl", 64))
    proto = d["proto"]
    if proto == "udp":
        l4 = UDP(sport=d["sport"], dport=d["dport"])
    elif proto == "tcp":
        l4 = TCP(sport=d["sport"], dport=d["dport"], flags="PA", seq=1000, ack=2000)
    elif proto == "icmp":
        l4 = ICMP(type=8, id=d["sport"], seq=d["dport"]) if d["family"] == 4 else ICMPv6EchoRequest(id=d["sport"], seq=d["dport"])
    else:
        raise ValueError("inner proto %r" % proto)
    return eth / ip / l4 / Raw(load=bytes.fromhex(d["payload"]))


def tunnel_header(d):
    if d["kind"] == "vxlan":
        # flags 0x08 given explicitly: without it scapy's VXLAN/Ether builds VXLAN-GPE (see scapy_build.py).
        return VXLAN(flags=0x08, vni=d["vni"])
    opts = [GeneveOptions(classid=o["class"], type=o["type"], data=bytes.fromhex(o["data"])) for o in d["options"]]
    kw = dict(vni=d["vni"], proto=0x6558, options=opts)
    # The C bit as RFC 8926 §3.4 wants it, unless the description says otherwise (a sender that lies).
    kw["critical"] = d["critical"] if "critical" in d else int(any(o["type"] & 0x80 for o in d["options"]))
    words = sum(1 + len(o["data"]) // 8 for o in d["options"])
    # scapy 2.5's GENEVE.post_build masks the computed optionlen with 0x2f, dropping bit 4 (16 words):
    # only then give the (otherwise computed) length explicitly.
    if words & 0x10:
        kw["optionlen"] = words
    return GENEVE(**kw)


def build(d):
    inner = inner_frame(d["inner"])
    inner_bytes = bytes(inner)
    dport = 4789 if d["kind"] == "vxlan" else 6081
    o = d["outer"]
    if d["family"] == 4:
        ip = IP(src=o["src"], dst=o["dst"], ttl=64, id=0x4321, options=[IPOption_Router_Alert()] if d.get("ipOptions") else [])
    else:
        ip = IPv6(src=o["src"], dst=o["dst"], hlim=64)
        if d.get("destOpt"):
            ip = ip / IPv6ExtHdrDestOpt(options=[PadN(optdata=b"\x00" * 4)])
    udp_kw = dict(sport=o["sport"], dport=dport)
    mode = d["udpChecksum"]
    if mode == "zero":
        udp_kw["chksum"] = 0
    frame = Ether(src=o["srcMac"], dst=o["dstMac"]) / ip / UDP(**udp_kw) / tunnel_header(d) / Raw(load=inner_bytes)
    raw = bytes(frame)
    if mode == "bad":
        good = Ether(raw)[UDP].chksum
        udp_kw["chksum"] = (good + 1) & 0xFFFF or 1
        frame = Ether(src=o["srcMac"], dst=o["dstMac"]) / ip / UDP(**udp_kw) / tunnel_header(d) / Raw(load=inner_bytes)
        raw = bytes(frame)
    if not raw.endswith(inner_bytes):
        raise AssertionError("inner frame not at the end of the outer one")
    # Bytes after the IP datagram (an Ethernet trailer): not part of any length scapy computed.
    raw += bytes(range(0x60, 0x60 + d.get("trailer", 0)))
    return {"name": d["name"], "frame": raw.hex(), "inner": inner_bytes.hex()}


def decode(name, raw):
    p = Ether(raw)
    out = {"name": name, "outerSrcMac": p.src, "outerDstMac": p.dst}
    ip = p.payload
    if isinstance(ip, IP):
        out.update(family=4, src=ip.src, dst=ip.dst)
    elif isinstance(ip, IPv6):
        out.update(family=6, src=ip.src, dst=ip.dst)
    else:
        return dict(out, error="no outer IP")
    u = ip.payload
    if not isinstance(u, UDP):
        return dict(out, error="no outer UDP")
    out.update(sport=u.sport, dport=u.dport, udpLen=u.len, udpChecksum=u.chksum)
    # The datagram as received, checksum field zeroed, summed with scapy's pseudo-header code.
    start = len(raw) - len(bytes(u))
    seg = bytearray(raw[start:start + u.len])
    seg[6:8] = b"\x00\x00"
    c = (in4_chksum if out["family"] == 4 else in6_chksum)(socket.IPPROTO_UDP, ip, bytes(seg))
    out["udpChecksumComputed"] = c if c != 0 else 0xFFFF
    if out["family"] == 4:
        hdr = bytearray(raw[14:14 + ip.ihl * 4])
        hdr[10:12] = b"\x00\x00"
        out["ipChecksum"] = ip.chksum
        out["ipChecksumComputed"] = checksum(bytes(hdr))
    if isinstance(u.payload, GENEVE):
        g = u.payload
        out.update(kind="geneve", vni=g.vni, version=g.version, optionlen=g.optionlen, oam=g.oam, critical=g.critical,
                   proto=g.proto, options=geneve_options(g))
        inner = g.payload
    elif isinstance(u.payload, VXLAN):
        v = u.payload
        out.update(kind="vxlan", vni=v.vni, flags=int(v.flags))
        inner = v.payload
    else:
        return dict(out, error="neither Geneve nor VXLAN")
    out["inner"] = bytes(inner).hex()
    return out


def geneve_options(g):
    """The options, each decoded by scapy's GeneveOptions. scapy 2.5's PacketListField hands the first option
    the whole options area (GeneveOptions has no extract_padding), so the rest ends up in its payload: the
    area is walked here option by option instead, each option parsed on its own."""
    area = b"".join(bytes(o) for o in g.options)
    if len(area) != g.optionlen * 4:
        raise AssertionError("options area of %d bytes, Opt Len says %d" % (len(area), g.optionlen * 4))
    out = []
    while area:
        o = GeneveOptions(area)
        n = 4 + o.length * 4
        out.append({"class": o.classid, "type": o.type, "length": o.length, "data": bytes(o.data).hex()})
        area = area[n:]
    return out


def main():
    mode = sys.argv[1]
    items = json.load(sys.stdin)
    out = []
    for d in items:
        try:
            out.append(build(d) if mode == "build" else decode(d["name"], bytes.fromhex(d["hex"])))
        except Exception as e:  # reported per frame, so one bad description does not hide the others
            out.append({"name": d["name"], "error": "%s: %s" % (type(e).__name__, e)})
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
