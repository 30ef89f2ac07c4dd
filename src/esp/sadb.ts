/**
 * The security associations of one tunnel endpoint: per remote VTEP an outbound SA and the inbound SAs
 * that may be in use, with rekeying that never drops a packet (make before break).
 *
 * Derived keys (the cluster secret, esp/keys.ts) are per (sender, receiver, epoch) and deterministic, so
 * the two ends need no negotiation to agree on the next SA: a receiver always holds the inbound SA of the
 * sender's current epoch *and of the next one* ("make"). A sender whose SA reaches a lifetime (packets,
 * bytes, time) or the end of its sequence numbers moves to the next epoch at once; the receiver, on the
 * first authenticated packet of that epoch, makes it current, installs the one after, and keeps the old
 * one for a grace period (default 30 s) for packets still in flight ("break" only then). Explicitly
 * keyed SAs (labs, interop with scapy or tshark) are fixed: one each way, no rekeying.
 *
 * Nonces never repeat: every (sender, receiver, epoch) has its own key and salt, the sequence numbers of
 * an SA only go up, and with a journal (esp/journal.ts) the sender reserves sequence numbers on disk
 * before using them and resumes past the reservation after a restart.
 */
import { U32Map } from '../packet/addrtable.js';
import type { EspCipher } from '../mtu/overhead.js';
import { DropReason } from '../wire/drop.js';
import { InboundSa, OutboundSa, type EspKeying, type EspLifetime } from './sa.js';
import { deriveSaKeys, explicitSaKeys, keyId, type ClusterSecret } from './keys.js';
import { saId, type SeqJournal } from './journal.js';

export interface EspExplicitSa {
  spi: number;
  /** Hex, `ESP_CIPHERS[cipher].keyLen` bytes. */
  key: string;
  /** Hex, 4 bytes. */
  salt: string;
}

export interface EspConfig {
  cipher: EspCipher;
  /** Keys derived from a cluster secret (see esp/keys.ts); or give `out`/`in` per VTEP. */
  secret?: ClusterSecret;
  /** This node's name in the key derivation. Default: the tunnel's local underlay address. */
  node?: string;
  /** ESP-in-UDP (RFC 3948, port 4500) for paths with NAT. Default false. */
  udpEncap?: boolean;
  /** 64-bit extended sequence numbers (RFC 4303 §2.2.1). Default true. */
  esn?: boolean;
  /** Anti-replay window: a power of two, 32-4096. Default 64. */
  replayWindow?: number;
  /** When an outbound SA is rekeyed (hard lifetimes of the SA). Default: none but the sequence space. */
  lifetime?: EspLifetime;
  /** How long an inbound SA of a past epoch is still accepted. Default 30 s. */
  graceNs?: number;
  /** Persisted epochs and sequence reservations, so a restart never reuses a nonce. */
  journal?: SeqJournal;
}

export interface EspPeerConfig {
  /** The peer's name in the key derivation. Default: its underlay address. */
  node?: string;
  /** The peer's current outbound epoch (what its journal says). Default 0. */
  epoch?: number;
  /** Explicit keys instead of derived ones. */
  out?: EspExplicitSa;
  in?: EspExplicitSa;
}

/** One remote VTEP's SAs. */
export class EspPeer {
  out: OutboundSa;
  outEpoch: number;
  /** The sequence number up to which the journal has reserved (as a number; 2^53 is far beyond any SA's use). */
  reservedTo = 0;
  inCur: InboundSa;
  inNext: InboundSa | null;
  inOld: InboundSa | null = null;
  inEpoch: number;
  oldUntil = 0;
  /** Outbound rekeys so far. */
  rekeys = 0;
  /** The outbound SA's name in the journal. */
  outId: string;
  /** Explicit keys: the inbound key's id (to know, when the peer is added back, whether its inbound SA still applies). */
  inId = '';
  /** Removed (`EspSadb.removePeer`): no SA of it is used; its state waits in case the peer comes back. */
  removed = false;
  constructor(readonly name: string, out: OutboundSa, outEpoch: number, inCur: InboundSa, inNext: InboundSa | null, inEpoch: number, readonly explicit: boolean, outId: string) {
    this.outId = outId;
    this.out = out;
    this.outEpoch = outEpoch;
    this.inCur = inCur;
    this.inNext = inNext;
    this.inEpoch = inEpoch;
  }
}

export class EspSadb {
  readonly cipher: EspCipher;
  readonly udpEncap: boolean;
  readonly peers: EspPeer[] = [];
  /** Inbound SAs by SPI: the index in `inbound`. */
  private readonly bySpi = new U32Map();
  private readonly inbound: Array<InboundSa | null> = [];
  /** For each inbound SA, its peer (for rotation when the next epoch shows up). */
  private readonly inboundPeer: number[] = [];
  private readonly graceNs: number;
  private readonly esn: boolean;
  private readonly window: number;
  private readonly lifetime: EspLifetime | undefined;
  /**
   * Removed peers' state by identity (`retiredKey`), taken up again if the peer is added back: its
   * outbound SA goes on counting, so no nonce is used twice under one key, and its inbound SAs keep their
   * replay windows, so the peer's own SAs (which never stopped) are accepted where they left off.
   */
  private readonly retired = new Map<string, EspPeer>();

  constructor(readonly cfg: EspConfig, readonly node: string) {
    this.cipher = cfg.cipher;
    this.udpEncap = cfg.udpEncap ?? false;
    this.esn = cfg.esn ?? true;
    this.window = cfg.replayWindow ?? 64;
    this.lifetime = cfg.lifetime;
    this.graceNs = cfg.graceNs ?? 30e9;
    if (!(this.graceNs >= 0)) throw new RangeError(`esp graceNs ${this.graceNs} must be ≥ 0`);
  }

  /**
   * Adds the SAs towards and from the VTEP at index `index` (indexes follow the tunnel's VTEP table). A
   * peer removed before (same name with derived keys, same outbound key when explicit) takes up its SAs
   * again (see `retired`); inbound SAs are made afresh only when its keys or epoch say otherwise.
   */
  addPeer(index: number, name: string, pc: EspPeerConfig = {}): void {
    if (index !== this.peers.length) throw new RangeError(`esp: peer ${name} added out of order`);
    const explicit = pc.out !== undefined || pc.in !== undefined;
    let peer: EspPeer;
    let back: EspPeer | undefined;
    if (explicit) {
      if (pc.out === undefined || pc.in === undefined) throw new RangeError(`esp: VTEP ${name}: explicit keys need both out and in`);
      const o = explicitSaKeys({ cipher: this.cipher, ...pc.out });
      const i = explicitSaKeys({ cipher: this.cipher, ...pc.in });
      const journal = this.cfg.journal;
      const id = keyId(o);
      back = this.retired.get(retiredKey(true, id));
      const out = back?.out ?? this.outSa(o.spi, o, journal === undefined ? 0n : journal.restore(id), 0);
      const same = back !== undefined && back.inCur.spi === i.spi && keyId(i) === back.inId;
      peer = new EspPeer(name, out, 0, same ? back!.inCur : this.inSa(i.spi, i, 0), null, 0, true, id);
      peer.inId = keyId(i);
    } else {
      const secret = this.cfg.secret;
      if (secret === undefined) throw new RangeError(`esp: VTEP ${name}: give the cluster secret (esp.secret) or explicit out/in keys`);
      const peerName = pc.node ?? name;
      back = this.retired.get(retiredKey(false, peerName));
      const inEpoch = pc.epoch ?? back?.inEpoch ?? 0;
      if (!Number.isSafeInteger(inEpoch) || inEpoch < 0) throw new RangeError(`esp: VTEP ${name}: epoch ${inEpoch} is not a non-negative integer`);
      if (back !== undefined) {
        peer = new EspPeer(peerName, back.out, back.outEpoch, back.inCur, back.inNext, back.inEpoch, false, back.outId);
        if (inEpoch !== back.inEpoch) {
          peer.inCur = this.derivedIn(peerName, inEpoch);
          peer.inNext = this.derivedIn(peerName, inEpoch + 1);
          peer.inEpoch = inEpoch;
        } else if (back.inOld !== null) {
          peer.inOld = back.inOld;
          peer.oldUntil = back.oldUntil;
        }
      } else {
        const outEpoch = this.cfg.journal?.epoch(peerName) ?? 0;
        const out = this.derivedOut(peerName, outEpoch, 0);
        const cur = this.derivedIn(peerName, inEpoch);
        const next = this.derivedIn(peerName, inEpoch + 1);
        peer = new EspPeer(peerName, out, outEpoch, cur, next, inEpoch, false, saId(this.node, peerName, outEpoch));
      }
    }
    if (back !== undefined) {
      peer.reservedTo = back.reservedTo;
      peer.rekeys = back.rekeys;
    }
    // Check every SPI before changing anything: a refused peer leaves the database as it was.
    this.checkFree(peer.inCur.spi);
    if (peer.inNext !== null) {
      this.checkFree(peer.inNext.spi);
      if (peer.inNext.spi === peer.inCur.spi) throw new RangeError(`esp: VTEP ${name}: two epochs derive one SPI 0x${peer.inCur.spi.toString(16)}`);
    }
    if (peer.inOld !== null) this.checkFree(peer.inOld.spi);
    if (back !== undefined) this.retired.delete(retiredKey(back.explicit, back.explicit ? back.outId : back.name));
    this.peers.push(peer);
    this.register(peer.inCur, index);
    if (peer.inNext !== null) this.register(peer.inNext, index);
    if (peer.inOld !== null) this.register(peer.inOld, index);
  }

  /**
   * Removes the SAs of the peer at `index` (its VTEP is being removed): nothing more is sent to it
   * (`EspNoSa`) and its inbound SPIs are unknown (`EspUnknownSpi`). Its state is kept for `addPeer`.
   */
  removePeer(index: number): void {
    const peer = this.peers[index];
    if (peer === undefined || peer.removed) throw new RangeError(`esp: no peer at index ${index}`);
    peer.removed = true;
    for (const sa of [peer.inCur, peer.inNext, peer.inOld]) if (sa !== null) this.unregister(sa);
    this.retired.set(retiredKey(peer.explicit, peer.explicit ? peer.outId : peer.name), peer);
  }

  private checkFree(spi: number): void {
    if (this.bySpi.get(spi) >= 0) throw new RangeError(`esp: inbound SPI 0x${spi.toString(16)} is already in use on this tunnel (derive with another spiTweak, or choose another explicit SPI)`);
  }

  private outSa(spi: number, k: EspKeying & { spi: number }, resumeAfter: bigint, now: number): OutboundSa {
    return new OutboundSa({ spi, keying: { cipher: k.cipher, key: k.key, salt: k.salt }, esn: this.esn, createdAt: now, resumeAfter, ...(this.lifetime !== undefined ? { lifetime: this.lifetime } : {}) });
  }

  private inSa(spi: number, k: EspKeying & { spi: number }, now: number): InboundSa {
    return new InboundSa({ spi, keying: { cipher: k.cipher, key: k.key, salt: k.salt }, esn: this.esn, window: this.window, createdAt: now });
  }

  private derivedOut(peer: string, epoch: number, now: number): OutboundSa {
    const k = deriveSaKeys(this.cfg.secret!, { cipher: this.cipher, src: this.node, dst: peer, epoch });
    const j = this.cfg.journal;
    return this.outSa(k.spi, k, j === undefined ? 0n : j.restore(saId(this.node, peer, epoch)), now);
  }

  private derivedIn(peer: string, epoch: number): InboundSa {
    const k = deriveSaKeys(this.cfg.secret!, { cipher: this.cipher, src: peer, dst: this.node, epoch });
    return this.inSa(k.spi, k, 0);
  }

  private register(sa: InboundSa, peer: number): void {
    this.checkFree(sa.spi);
    this.bySpi.set(sa.spi, this.inbound.length);
    this.inbound.push(sa);
    this.inboundPeer.push(peer);
  }

  private unregister(sa: InboundSa): void {
    const i = this.bySpi.get(sa.spi);
    if (i < 0 || this.inbound[i] !== sa) return;
    this.inbound[i] = null;
    // The SPI is free again: a peer added back registers its SAs under the same SPIs.
    this.bySpi.delete(sa.spi);
  }

  /** The inbound SA for `spi`, or null (the lookup `espUnprotect` takes). */
  readonly lookup = (spi: number): InboundSa | null => {
    const i = this.bySpi.get(spi);
    return i < 0 ? null : this.inbound[i] ?? null;
  };

  /**
   * The outbound SA towards peer `index` for one more packet at `now`, rekeyed first when it is used up
   * (lifetime or sequence space; explicit SAs are never rekeyed and report EspSaExhausted); with a
   * journal, the next sequence number is reserved on disk before it is used. Returns the SA or a
   * DropReason.
   */
  outbound(index: number, now: number): OutboundSa | DropReason {
    const peer = this.peers[index];
    if (peer === undefined || peer.removed) return DropReason.EspNoSa;
    let sa = peer.out;
    if (sa.exhausted || sa.expired(now)) {
      if (peer.explicit) return DropReason.EspSaExhausted;
      const epoch = this.cfg.journal?.bumpEpoch(peer.name) ?? peer.outEpoch + 1;
      peer.out = sa = this.derivedOut(peer.name, epoch, now);
      peer.outEpoch = epoch;
      peer.outId = saId(this.node, peer.name, epoch);
      peer.reservedTo = 0;
      peer.rekeys++;
    }
    const j = this.cfg.journal;
    if (j !== undefined) {
      const next = sa.seqHi * 0x1_0000_0000 + sa.seqLo + 1;
      if (next >= peer.reservedTo) {
        peer.reservedTo = Number(j.reserve(peer.outId, BigInt(next)));
      }
    }
    return sa;
  }

  /**
   * After `sa` authenticated a packet at `now`: when it is a peer's next-epoch SA, that epoch becomes
   * current, the one after is installed, and the old one stays for the grace period.
   */
  accepted(sa: InboundSa, now: number): void {
    const i = this.bySpi.get(sa.spi);
    if (i < 0) return;
    const peer = this.peers[this.inboundPeer[i]!]!;
    if (sa !== peer.inNext) return;
    if (peer.inOld !== null) this.unregister(peer.inOld);
    peer.inOld = peer.inCur;
    peer.oldUntil = now + this.graceNs;
    peer.inCur = sa;
    peer.inEpoch++;
    peer.inNext = this.derivedIn(peer.name, peer.inEpoch + 1);
    this.register(peer.inNext, this.inboundPeer[i]!);
  }

  /** Retires inbound SAs whose grace period is over; returns how many. */
  expire(now: number): number {
    let n = 0;
    for (const peer of this.peers) {
      if (!peer.removed && peer.inOld !== null && now >= peer.oldUntil) {
        this.unregister(peer.inOld);
        peer.inOld = null;
        n++;
      }
    }
    return n;
  }
}

/** Who a retired peer is: its outbound key's id when keyed explicitly, else its name in the derivation. */
function retiredKey(explicit: boolean, id: string): string {
  return `${explicit ? 'x' : 'd'}:${id}`;
}
