/**
 * rtnetlink requests (linux/rtnetlink.h, linux/if_addr.h, linux/neighbour.h): the few the CNI side needs
 * — a link up, an address, a route, a neighbour — encoded here and handed to the kernel in one write by
 * the addon's `netlinkRoute`, which only sends them inside a namespace and returns each one's errno.
 * Where `ip` would be exec'd once per namespace (fork, exec, its libraries, nsenter before it), a pod's
 * whole configuration is one system call; each message is what `ip … replace` sends for the same line.
 *
 * Every message asks for an acknowledgement (NLM_F_ACK) and carries its index + 1 as its sequence
 * number: the kernel handles them in order and answers each. Numbers are in host byte order, except
 * addresses (network order, as on the wire). The kernel itself checks the encoding: the live tests read
 * back what it made with `ip -j`.
 */
import { parsePrefix } from '../wire/addr.js';

const NLMSG_HDRLEN = 16;
const NLM_F_REQUEST = 0x1;
const NLM_F_ACK = 0x4;
const NLM_F_REPLACE = 0x100;
const NLM_F_CREATE = 0x400;

const RTM_NEWLINK = 16;
const RTM_NEWADDR = 20;
const RTM_NEWROUTE = 24;
const RTM_NEWNEIGH = 28;
const RTM_DELNEIGH = 29;

const AF_INET = 2;
const AF_INET6 = 10;
const IFF_UP = 0x1;
const IFLA_IFNAME = 3;
const IFA_ADDRESS = 1;
const IFA_LOCAL = 2;
const IFA_F_NODAD = 0x02;
const RTA_DST = 1;
const RTA_OIF = 4;
const RTA_GATEWAY = 5;
const RT_TABLE_MAIN = 254;
const RTPROT_BOOT = 3;
const RT_SCOPE_UNIVERSE = 0;
const RTN_UNICAST = 1;
const NDA_DST = 1;
const NDA_LLADDR = 2;
const NUD_PERMANENT = 0x80;

/** One request: the message type, its flags beyond REQUEST|ACK, the fixed header after nlmsghdr, its attributes. */
interface Msg {
  type: number;
  flags: number;
  head: Uint8Array;
  attrs: Array<[number, Uint8Array]>;
}

const align4 = (n: number): number => (n + 3) & ~3;

/** The address's bytes and family; `what` names it in an error. */
function addrBytes(addr: string, what: string): { family: number; bytes: Uint8Array; len: number } {
  const p = parsePrefix(addr.includes('/') ? addr : `${addr}/${addr.includes(':') ? 128 : 32}`, what);
  if (p.family === 6) return { family: AF_INET6, bytes: p.addr as Uint8Array, len: p.len };
  const a = p.addr as number;
  return { family: AF_INET, bytes: Uint8Array.of(a >>> 24, (a >>> 16) & 0xff, (a >>> 8) & 0xff, a & 0xff), len: p.len };
}

function u32(v: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v, true);
  return b;
}

/** A batch of rtnetlink requests for one namespace, sent by the addon in one write. */
export class RtnlBatch {
  private readonly msgs: Msg[] = [];
  /** What each message does, as `ip` would say it (for errors). */
  readonly what: string[] = [];

  get length(): number {
    return this.msgs.length;
  }

  /** `ip link set NAME up` (by name: the kernel finds the link). */
  linkUp(name: string): this {
    const head = new Uint8Array(16);
    const v = new DataView(head.buffer);
    v.setUint32(8, IFF_UP, true);
    v.setUint32(12, IFF_UP, true);
    this.msgs.push({ type: RTM_NEWLINK, flags: 0, head, attrs: [[IFLA_IFNAME, new TextEncoder().encode(`${name}\0`)]] });
    this.what.push(`link set ${name} up`);
    return this;
  }

  /** `ip addr replace CIDR dev IFINDEX` (IPv6 with nodad: usable at once). */
  addrReplace(cidr: string, ifindex: number): this {
    const a = addrBytes(cidr, 'address');
    const head = new Uint8Array(8);
    head[0] = a.family;
    head[1] = a.len;
    head[2] = a.family === AF_INET6 ? IFA_F_NODAD : 0;
    new DataView(head.buffer).setUint32(4, ifindex, true);
    this.msgs.push({
      type: RTM_NEWADDR,
      flags: NLM_F_CREATE | NLM_F_REPLACE,
      head,
      attrs: [
        [IFA_LOCAL, a.bytes],
        [IFA_ADDRESS, a.bytes],
      ],
    });
    this.what.push(`addr replace ${cidr} dev #${ifindex}`);
    return this;
  }

  /** `ip route replace DST via GW dev IFINDEX` in the main table (DST `0.0.0.0/0` or `::/0` for the default). */
  routeReplace(dst: string, gw: string, ifindex: number): this {
    const d = addrBytes(dst, 'route destination');
    const g = addrBytes(gw, 'gateway');
    if (d.family !== g.family) throw new Error(`route ${dst} via ${gw}: the families differ`);
    const head = new Uint8Array(12);
    head[0] = d.family;
    head[1] = d.len;
    head[4] = RT_TABLE_MAIN;
    head[5] = RTPROT_BOOT;
    head[6] = RT_SCOPE_UNIVERSE;
    head[7] = RTN_UNICAST;
    const attrs: Array<[number, Uint8Array]> = [];
    if (d.len > 0) attrs.push([RTA_DST, d.bytes]);
    attrs.push([RTA_GATEWAY, g.bytes], [RTA_OIF, u32(ifindex)]);
    this.msgs.push({ type: RTM_NEWROUTE, flags: NLM_F_CREATE | NLM_F_REPLACE, head, attrs });
    this.what.push(`route replace ${dst} via ${gw} dev #${ifindex}`);
    return this;
  }

  /** `ip neigh replace ADDR lladdr MAC dev IFINDEX nud permanent`; `mac` as 6 bytes. */
  neighReplace(addr: string, mac: Uint8Array, ifindex: number): this {
    return this.neigh(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE, addr, mac, ifindex);
  }

  /** `ip neigh del ADDR dev IFINDEX`. */
  neighDel(addr: string, ifindex: number): this {
    return this.neigh(RTM_DELNEIGH, 0, addr, null, ifindex);
  }

  private neigh(type: number, flags: number, addr: string, mac: Uint8Array | null, ifindex: number): this {
    const a = addrBytes(addr, 'neighbour');
    const head = new Uint8Array(12);
    const v = new DataView(head.buffer);
    head[0] = a.family;
    v.setInt32(4, ifindex, true);
    v.setUint16(8, NUD_PERMANENT, true);
    const attrs: Array<[number, Uint8Array]> = [[NDA_DST, a.bytes]];
    if (mac !== null) attrs.push([NDA_LLADDR, mac]);
    this.msgs.push({ type, flags, head, attrs });
    this.what.push(`neigh ${mac === null ? 'del' : 'replace'} ${addr} dev #${ifindex}`);
    return this;
  }

  /** The messages as one buffer: each nlmsghdr (sequence = index + 1), its header, its attributes, 4-aligned. */
  encode(): Uint8Array {
    let total = 0;
    const lens = this.msgs.map((m) => {
      let n = NLMSG_HDRLEN + align4(m.head.length);
      for (const [, d] of m.attrs) n += align4(4 + d.length);
      total += n;
      return n;
    });
    const out = new Uint8Array(total);
    const v = new DataView(out.buffer);
    let o = 0;
    for (const [i, m] of this.msgs.entries()) {
      v.setUint32(o, lens[i]!, true);
      v.setUint16(o + 4, m.type, true);
      v.setUint16(o + 6, NLM_F_REQUEST | NLM_F_ACK | m.flags, true);
      v.setUint32(o + 8, i + 1, true);
      v.setUint32(o + 12, 0, true);
      out.set(m.head, o + NLMSG_HDRLEN);
      let p = o + NLMSG_HDRLEN + align4(m.head.length);
      for (const [type, d] of m.attrs) {
        v.setUint16(p, 4 + d.length, true);
        v.setUint16(p + 2, type, true);
        out.set(d, p + 4);
        p += align4(4 + d.length);
      }
      o += lens[i]!;
    }
    return out;
  }
}

/** errno names for the answers the kernel gives these requests most often (others are shown by number). */
const ERRNO: Record<number, string> = {
  1: 'EPERM',
  2: 'ENOENT',
  3: 'ESRCH',
  17: 'EEXIST',
  19: 'ENODEV',
  22: 'EINVAL',
  101: 'ENETUNREACH',
  99: 'EADDRNOTAVAIL',
};

/**
 * Sends the batch with `send` (the addon's `netlinkRoute`: one errno per message, 0 for done) and throws
 * naming the first message the kernel refused.
 */
export function applyRtnl(batch: RtnlBatch, netns: string | null, send: (netns: string | null, msgs: Uint8Array) => number[]): void {
  if (batch.length === 0) return;
  const errs = send(netns, batch.encode());
  for (const [i, e] of errs.entries())
    if (e !== 0) throw new Error(`rtnetlink in ${netns ?? 'the agent namespace'}: ${batch.what[i]}: ${ERRNO[e] ?? `errno ${e}`}`);
}
