#!/usr/bin/python3
"""Builds frames with scapy from the JSON layer descriptions that test/peers/scapy.test.ts writes.

stdin:  [{"name": str, "layers": [ {"kind": ..., ...}, ... ]}, ...]   (outer to inner)
stdout: [{"name": str, "hex": str} | {"name": str, "error": str}, ...]

Only the field values of each header come from the description. Everything the layering determines
is left to scapy: lengths, checksums (but a UDP checksum the description says is zero), header length
fields, and the protocol number / EtherType / next-header field of a header whose payload is another
scapy layer (scapy's bind_layers picks it). A header whose payload is opaque data, or nothing, gets
its protocol field from the description, since scapy has nothing to infer it from.

Run with Debian's /usr/bin/python3 (python3-scapy 2.5).
"""
import json
import logging
import socket
import sys

logging.getLogger("scapy").setLevel(logging.ERROR)

from scapy.all import (  # noqa: E402
    ARP, ESP, GRE, ICMP, IP, TCP, UDP, VXLAN, Dot1AD, Dot1Q, Ether, HBHOptUnknown, ICMPv6DestUnreach,
    ICMPv6EchoReply, ICMPv6EchoRequest, ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6NDOptDstLLAddr, ICMPv6NDOptSrcLLAddr,
    ICMPv6PacketTooBig, ICMPv6TimeExceeded, IPOption, IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop, Pad1, PadN, Raw, load_contrib,
)

load_contrib("geneve")
from scapy.contrib.geneve import GENEVE, GeneveOptions  # noqa: E402


class Unsupported(Exception):
    """The description holds something this script cannot express with scapy's layer classes."""


def v6(h):
    return socket.inet_ntop(socket.AF_INET6, bytes.fromhex(h))


def tlv_options(data):
    """IPv6 Hop-by-Hop / Destination options (RFC 8200 §4.2) as scapy option objects."""
    out, i = [], 0
    while i < len(data):
        t = data[i]
        if t == 0:
            out.append(Pad1())
            i += 1
            continue
        if i + 2 > len(data) or i + 2 + data[i + 1] > len(data):
            raise Unsupported("truncated IPv6 TLV option")
        n = data[i + 1]
        body = data[i + 2:i + 2 + n]
        out.append(PadN(optdata=body) if t == 1 else HBHOptUnknown(otype=t, optdata=body))
        i += 2 + n
    return out


TCP_OPTS = {
    "mss": lambda o: ("MSS", o["value"]),
    "wscale": lambda o: ("WScale", o["shift"]),
    "sackPermitted": lambda o: ("SAckOK", b""),
    "sack": lambda o: ("SAck", tuple(x for b in o["blocks"] for x in b)),
    "timestamps": lambda o: ("Timestamp", (o["tsval"], o["tsecr"])),
    "nop": lambda o: ("NOP", None),
    "unknown": lambda o: (o["type"], bytes.fromhex(o["data"])),
}


def build_layer(l, opaque_next):
    """One description as a list of scapy packets (a header with its options may be several).

    `opaque_next`: what follows is data (or nothing), so protocol fields must be given explicitly."""
    k = l["kind"]
    if k == "eth":
        pkts = [Ether(dst=l["dst"], src=l["src"])]
        for tag in l["vlans"]:
            cls = {0x8100: Dot1Q, 0x88A8: Dot1AD}.get(tag["tpid"])
            if cls is None:
                raise Unsupported("VLAN TPID %#x" % tag["tpid"])
            pkts.append(cls(prio=tag["pcp"], id=int(tag["dei"]), vlan=tag["vid"]))
        if opaque_next:
            pkts[-1].type = l["etherType"]
        return pkts
    if k == "arp":
        return [ARP(op=l["operation"], hwsrc=l["senderMac"], psrc=l["senderIp"], hwdst=l["targetMac"], pdst=l["targetIp"])]
    if k == "ipv4":
        kw = dict(src=l["src"], dst=l["dst"], ttl=l["ttl"], tos=(l["dscp"] << 2) | l["ecn"], id=l["ident"],
                  flags=(2 if l["dontFrag"] else 0) | (1 if l["moreFrags"] else 0), frag=l["fragOffset"] >> 3)
        if l["options"]:
            kw["options"] = [IPOption(bytes.fromhex(l["options"]))]
        if opaque_next:
            kw["proto"] = l["protocol"]
        return [IP(**kw)]
    if k == "ipv6":
        kw = dict(src=v6(l["src"]), dst=v6(l["dst"]), hlim=l["hopLimit"], tc=l["trafficClass"], fl=l["flowLabel"])
        if opaque_next:
            kw["nh"] = l["nextHeader"]
        return [IPv6(**kw)]
    if k == "ipv6ext":
        cls = {0: IPv6ExtHdrHopByHop, 60: IPv6ExtHdrDestOpt}.get(l["headerType"])
        if cls is None:
            raise Unsupported("IPv6 extension header type %d" % l["headerType"])
        kw = dict(options=tlv_options(bytes.fromhex(l["data"])))
        if opaque_next:
            kw["nh"] = l["nextHeader"]
        return [cls(**kw)]
    if k == "ipv6frag":
        kw = dict(offset=l["fragOffset"] >> 3, m=int(l["moreFrags"]), id=l["ident"])
        if opaque_next:
            kw["nh"] = l["nextHeader"]
        return [IPv6ExtHdrFragment(**kw)]
    if k == "icmpv4":
        r, data = l["repr"], bytes.fromhex(l["repr"].get("data", ""))
        rk = r["kind"]
        if rk in ("echoRequest", "echoReply"):
            p = ICMP(type=8 if rk == "echoRequest" else 0, code=0, id=r["ident"], seq=r["seq"])
        elif rk == "destUnreachable":
            p = ICMP(type=3, code=r["code"], nexthopmtu=r["nextHopMtu"])
        elif rk == "timeExceeded":
            p = ICMP(type=11, code=r["code"])
        else:
            raise Unsupported("ICMPv4 'other' message")
        return [p] + ([Raw(load=data)] if data else [])
    if k == "icmpv6":
        r = l["repr"]
        rk = r["kind"]
        data = bytes.fromhex(r.get("data", ""))
        if rk in ("echoRequest", "echoReply"):
            cls = ICMPv6EchoRequest if rk == "echoRequest" else ICMPv6EchoReply
            return [cls(id=r["ident"], seq=r["seq"], data=data)]
        if rk == "packetTooBig":
            return [ICMPv6PacketTooBig(mtu=r["mtu"])] + ([Raw(load=data)] if data else [])
        if rk == "destUnreachable":
            return [ICMPv6DestUnreach(code=r["code"])] + ([Raw(load=data)] if data else [])
        if rk == "timeExceeded":
            return [ICMPv6TimeExceeded(code=r["code"])] + ([Raw(load=data)] if data else [])
        if rk == "neighborSolicit":
            opt = [ICMPv6NDOptSrcLLAddr(lladdr=r["sourceLinkAddr"])] if r["sourceLinkAddr"] is not None else []
            return [ICMPv6ND_NS(tgt=v6(r["target"]))] + opt
        if rk == "neighborAdvert":
            opt = [ICMPv6NDOptDstLLAddr(lladdr=r["targetLinkAddr"])] if r["targetLinkAddr"] is not None else []
            return [ICMPv6ND_NA(R=int(r["router"]), S=int(r["solicited"]), O=int(r["override"]), tgt=v6(r["target"]))] + opt
        raise Unsupported("ICMPv6 'other' message")
    if k == "udp":
        kw = dict(sport=l["srcPort"], dport=l["dstPort"])
        if l["zeroChecksum"]:
            kw["chksum"] = 0
        return [UDP(**kw)]
    if k == "tcp":
        flags = l["flags"]
        return [TCP(sport=l["srcPort"], dport=l["dstPort"], seq=l["seq"], ack=l["ack"], flags=flags & 0x1FF,
                    reserved=(flags >> 9) & 7, window=l["window"], urgptr=l["urgent"],
                    options=[TCP_OPTS[o["kind"]](o) for o in l["options"]])]
    if k == "vxlan":
        # RFC 7348 VXLAN: flags 0x08 (I) then reserved. Given explicitly because scapy's top-down binding
        # VXLAN/Ether (or /IP, /IPv6) builds VXLAN-GPE instead: flags 0x0c and a NextProtocol byte.
        return [VXLAN(flags=0x08, vni=l["vni"])]
    if k == "geneve":
        opts = [GeneveOptions(classid=o["class"], type=o["type"], data=bytes.fromhex(o["data"])) for o in l["options"]]
        kw = dict(vni=l["vni"], oam=int(l["oam"]), critical=int(l["critical"]), options=opts)
        words = sum(1 + len(o["data"]) // 8 for o in l["options"])
        # scapy 2.5's GENEVE.post_build masks the computed optionlen with 0x2f, dropping bit 4 (16 words):
        # only then give the (otherwise computed) length explicitly.
        if words & 0x10:
            kw["optionlen"] = words
        if opaque_next:
            kw["proto"] = l["protocolType"]
        return [GENEVE(**kw)]
    if k == "gre":
        kw = dict(chksum_present=int(l["checksum"]), key_present=int(l["key"] is not None),
                  seqnum_present=int(l["sequence"] is not None))
        if l["key"] is not None:
            kw["key"] = l["key"]
        if l["sequence"] is not None:
            kw["sequence_number"] = l["sequence"]
        if opaque_next:
            kw["proto"] = l["protocolType"]
        return [GRE(**kw)]
    if k == "esp":
        return [ESP(spi=l["spi"], seq=l["seq"])]
    if k == "data":
        return [Raw(load=bytes.fromhex(l["bytes"]))]
    raise Unsupported("layer kind %r" % k)


def build(layers):
    pkts = []
    for i, l in enumerate(layers):
        nxt = layers[i + 1]["kind"] if i + 1 < len(layers) else None
        pkts += build_layer(l, nxt is None or nxt == "data")
    frame = pkts[0]
    for p in pkts[1:]:
        frame = frame / p
    return bytes(frame)


def main():
    out = []
    for f in json.load(sys.stdin):
        try:
            out.append({"name": f["name"], "hex": build(f["layers"]).hex()})
        except Unsupported as e:
            out.append({"name": f["name"], "error": "unsupported: %s" % e})
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
