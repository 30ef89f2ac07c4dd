/**
 * A simulated host's TCP glue: its connections and listeners (`sim/tcp.ts`), and the demultiplexing of
 * received segments (v4 and v6) to them — a connection, a listener for a SYN, or else a RST back
 * (RFC 9293 §3.10.7.1) — and of too-big messages about a connection (`find(...)?.pmtuChanged()`).
 */
import { eq16, rd16, rd32 } from '../wire/bytes.js';
import { finish, onesSum } from '../wire/checksum.js';
import { TCP_ACK, TCP_FIN, TCP_HEADER_LEN, TCP_OPT_MSS, TCP_RST, TCP_SYN } from '../wire/tcp.js';
import { type Addr, parseAddr } from '../wire/addr.js';
import type { HostStack } from './stack.js';
import { sendReset, TcpFlow, TcpListener, type TcpEndpoint, type TcpSendOptions } from './tcp.js';

export class HostTcp {
  private readonly listeners = new Map<number, TcpListener>();
  /** Endpoints by local port × 65536 + remote port; the remote address tells apart the few that share one. */
  private readonly eps = new Map<number, TcpEndpoint[]>();
  private nextEphemeral = 49152;

  constructor(private readonly host: HostStack) {}

  /** A listener on `port` (the same one when asked twice): accepts connections and counts what arrives. */
  listen(port: number): TcpListener {
    const host = this.host;
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new RangeError(`host ${host.name}: TCP port ${port} is not 1-65535`);
    let l = this.listeners.get(port);
    if (l === undefined) this.listeners.set(port, (l = new TcpListener(host, port)));
    return l;
  }

  /** Opens a connection that sends `bytes` of payload and closes; the SYN goes at `startNs`. */
  send(opts: TcpSendOptions): TcpFlow {
    const host = this.host;
    const dst = parseAddr(opts.dst, `host ${host.name} tcpSend`);
    if (dst.family === 6 && host.v6 === null) throw new RangeError(`host ${host.name}: tcpSend to ${opts.dst} needs an IPv6 address`);
    let port = opts.srcPort;
    if (port === undefined) {
      port = this.nextEphemeral;
      this.nextEphemeral = this.nextEphemeral === 65535 ? 49152 : this.nextEphemeral + 1;
    }
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new RangeError(`host ${host.name}: TCP port ${port} is not 1-65535`);
    if (this.find(dst.family, dst.family === 4 ? dst.v4 : 0, dst.v6, 0, port, opts.dstPort) !== undefined) {
      throw new RangeError(`host ${host.name}: a TCP connection ${port} → ${opts.dst}:${opts.dstPort} exists already`);
    }
    const f = new TcpFlow(host, dst, port, opts);
    this.add(f);
    return f;
  }

  private add(ep: TcpEndpoint): void {
    const k = ep.localPort * 65536 + ep.remotePort;
    const l = this.eps.get(k)?.filter((e) => !e.done) ?? [];
    l.push(ep);
    this.eps.set(k, l);
  }

  /** The endpoint of (remote address, local port, remote port); the IPv6 address is `b6[o6, o6 + 16)`. */
  find(family: 4 | 6, v4: number, b6: Uint8Array | null, o6: number, localPort: number, remotePort: number): TcpEndpoint | undefined {
    const l = this.eps.get(localPort * 65536 + remotePort);
    if (l === undefined) return undefined;
    for (const ep of l) {
      const r = ep.remote;
      if (!ep.done && r.family === family && (family === 4 ? r.v4 === v4 : eq16(b6!, o6, r.v6!))) return ep;
    }
    return undefined;
  }

  /**
   * One received segment (`len` bytes at `l4`, the IP header at `ip`, `pseudo` the pseudo-header's sum) to
   * its endpoint. Always false: the buffer is released.
   */
  segment(b: Uint8Array, family: 4 | 6, ip: number, l4: number, len: number, pseudo: number): boolean {
    const counters = this.host.counters;
    const hl = len >= TCP_HEADER_LEN ? (b[l4 + 12]! >> 4) << 2 : 0;
    if (hl < TCP_HEADER_LEN || hl > len || finish(onesSum(b, l4, len, pseudo)) !== 0) {
      counters.rxBad++;
      return false;
    }
    const remotePort = rd16(b, l4);
    const localPort = rd16(b, l4 + 2);
    const flags = rd16(b, l4 + 12) & 0x3f;
    const seq = rd32(b, l4 + 4);
    const ack = rd32(b, l4 + 8);
    const v4 = family === 4 ? rd32(b, ip + 12) : 0;
    const dataLen = len - hl;
    const mss = (flags & TCP_SYN) !== 0 ? mssOption(b, l4, hl) : -1;
    let ep = this.find(family, v4, b, ip + 8, localPort, remotePort);
    if (ep === undefined) {
      const remote: Addr = family === 4 ? { family: 4, v4, v6: null } : { family: 6, v4: 0, v6: b.slice(ip + 8, ip + 24) };
      const lst = this.listeners.get(localPort);
      if (lst !== undefined && (flags & (TCP_SYN | TCP_ACK | TCP_RST)) === TCP_SYN) {
        ep = lst.accept(remote, remotePort, seq);
        this.add(ep);
      } else {
        counters.tcpNoConn++;
        if ((flags & TCP_RST) !== 0) return false;
        const segLen = dataLen + ((flags & TCP_SYN) !== 0 ? 1 : 0) + ((flags & TCP_FIN) !== 0 ? 1 : 0);
        counters.tcpRstSent++;
        sendReset(this.host, remote, localPort, remotePort, flags & TCP_ACK, seq, ack, segLen);
        return false;
      }
    }
    ep.segment(flags, seq, ack, rd16(b, l4 + 14), mss, b, l4 + hl, dataLen);
    return false;
  }
}

/** The MSS option of a SYN whose header is `hl` bytes at `l4`, or -1. */
function mssOption(b: Uint8Array, l4: number, hl: number): number {
  let mss = -1;
  for (let o = l4 + TCP_HEADER_LEN; o < l4 + hl; ) {
    const kind = b[o]!;
    if (kind === 0) break;
    if (kind === 1) {
      o++;
      continue;
    }
    const ol = o + 1 < l4 + hl ? b[o + 1]! : 0;
    if (ol < 2 || o + ol > l4 + hl) break;
    if (kind === TCP_OPT_MSS && ol === 4) mss = rd16(b, o + 2);
    o += ol;
  }
  return mss;
}
