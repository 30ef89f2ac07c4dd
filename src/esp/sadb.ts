/**
 * The security associations of one tunnel endpoint: per remote VTEP an outbound SA and the inbound SAs
 * that may be in use, with rekeying that never drops a packet (make before break), and what keeps them
 * safe across restarts, peers that come back, and long-running SAs.
 *
 * **Keys and incarnations.** Derived keys (esp/keys.ts) depend on the tunnel (kind, port, both underlay
 * addresses), the two nodes, the epoch, and both ends' *incarnations*: 16 random bytes each database
 * draws once when it is made, from the randomness it is given (`EspConfig.random`: the simulator's seeded
 * generator, a live node's crypto randomness; never its own). A restart is a new incarnation, hence new
 * keys — with or without a journal, so a restarted sender cannot repeat a nonce of its previous life and
 * a restarted receiver cannot be fed what was captured before it. Two tunnels of one node (two
 * databases) differ in tunnel and incarnation alike.
 *
 * **Announcements (esp/hello.ts).** A node cannot send to a peer, nor read it, before it knows the
 * peer's incarnation; the two learn each other's in an exchange of authenticated hellos (four when they
 * first meet), each carrying the sender's incarnation, an *echo* of the receiver's as the sender last saw
 * it, and the epoch it sends in. A node takes a peer's incarnation only from a hello that echoes its own current
 * one (so a hello captured in an earlier life of this node is refused), and never takes back one it has
 * replaced (so a replayed hello of the peer's earlier life is refused). It answers a hello that does not
 * echo it, or asks for an answer.
 *
 * A node sends under an SA only once the peer holds the inbound side of it: taking a peer's incarnation
 * installs this node's inbound SAs from it, and the node says so in its hellos (*taken*: it holds the SAs
 * for the incarnation it echoes); the peer sends only after a fresh hello of that kind. Without the rule,
 * the node that takes first sends at once, and its packets meet a peer that has not read the hello that
 * would let it take them (the hello may well come later: live, it arrives on the UDP socket and ESP over
 * IP on the raw one) — `EspUnknownSpi` at every start and every restart. The first exchange:
 * ```text
 *   A → B  (A, echo —, answer me)          B does not know whether this is fresh: it answers
 *   B → A  (B, echo A, answer me)          fresh for A: A takes B (its inbound SAs are in), answers
 *   A → B  (A, echo B, taken, answer me)   fresh for B: B takes A; A holds B's SAs: B can send; answers
 *   B → A  (B, echo A, taken)              A can send
 * ```
 * Packets for a peer that cannot be sent to yet wait (the bridge holds them, `waitNs`), and trigger the
 * exchange; they go once it is done. On the simulator the control plane introduces the nodes (`EspSadb.introduce`),
 * so nothing of this crosses the simulated underlay. A node that takes a *new* incarnation of a peer
 * (the peer restarted) moves its own outbound SA to a new epoch and starts the peer's inbound SAs
 * afresh; packets still in flight under the peer's previous SAs are taken for the grace period.
 *
 * **Epochs.** Within a pair of incarnations a sender's epochs only grow: on a lifetime (soft, before
 * the hard one), at the end of the sequence numbers, on a peer's new incarnation, on a peer's rekey
 * request. A receiver holds the current epoch's SA and the next one's ("make"); on the first
 * authenticated packet of the next it rotates, keeping the old one for the grace period (default 30 s;
 * "break" only then). An unknown SPI from a peer is looked for among its next `lookahead` epochs (one
 * lost epoch, or several, does not blackhole the peer) and otherwise makes the receiver ask the peer
 * for a hello, which says its epoch. A sender skips an epoch whose SPI equals its current or previous
 * one (what the receiver may still hold), so one peer's live SAs never share an SPI.
 *
 * **Lookup (RFC 4301 §4.1, §5.2).** Inbound SAs are found by (SPI, peer): the SPI table maps an SPI to
 * the SAs that carry it, each with its peer, and the tunnel says which peer the packet's outer source
 * is. An SPI of another peer's SA is `EspPeerMismatch` (a rewritten source, dropped before decryption);
 * two peers may well derive one SPI. SAs leave the table when they retire, so it holds at most three per
 * peer (current, next, old) whatever the number of rekeys.
 *
 * **Lifetimes.** Every SA has a hard lifetime of at most its AEAD's usage limit (`ESP_AEAD_LIMITS`),
 * and a sender rekeys at 7/8 of it; a configured lifetime lowers both. An inbound SA whose ICV failures
 * reach the AEAD's integrity limit is retired and the peer asked to rekey; every ICV failure is counted
 * (`icvFailures`).
 *
 * **Explicitly keyed SAs** (labs, interop with scapy or tshark) are fixed: one each way, no rekeying, no
 * announcements. Their keys cannot change on a restart, so they need a journal (which resumes their
 * sequence numbers past anything used) unless the caller says they were made for this run
 * (`freshExplicitKeys`). No key may serve two directions or two peers.
 */
import { U32Map } from '../packet/addrtable.js';
import { ESP_CIPHERS, type EspCipher } from '../mtu/overhead.js';
import { DropReason } from '../wire/drop.js';
import { createHash } from 'node:crypto';
import type { NativeAead } from './aead-batch.js';
import { InboundSa, OutboundSa, type EspKeying, type EspLifetime } from './sa.js';
import { deriveHelloKey, ESP_INCARNATION_LEN, explicitSaKeys, keyId, SaDeriver, type ClusterSecret, type SaPairSpec } from './keys.js';
import { saId, type SeqJournal } from './journal.js';
import { decodeHello, encodeHello, HELLO_ANSWER, HELLO_REKEY, HELLO_TAKEN, incarnationHex, NO_INCARNATION, sameIncarnation } from './hello.js';

/** What `EspSadb.outbound` (and `Tunnel.encap`) return for a peer whose announcement has not come yet: hold the packet. */
export const ESP_WAIT = -3;

/**
 * The AEAD usage limits (draft-irtf-cfrg-aead-limits, "Usage Limits on AEAD Algorithms", §5; the same
 * analysis gives RFC 9001 §6.6's limits for QUIC), for an attacker advantage of 2^-57 per key with
 * packets up to 64 KiB (l = 2^12 16-byte blocks, ESP's largest):
 * - AES-GCM (128 and 256): confidentiality CA ≤ (s + q + 1)² / 2^129, with s the blocks encrypted and q
 *   the packets, so s + q ≤ 2^36: at most 2^39 bytes (2^35 blocks) and 2^34 packets (each adds a block
 *   of padding at most and one for its tag), together under 2^36. Integrity IA ≤ 2v(l + 1) / 2^128 allows
 *   v ≈ 2^58 forgery attempts: 2^57 is the limit used.
 * - ChaCha20-Poly1305: no confidentiality limit below the 2^64 sequence numbers; rekey after 2^60
 *   packets as WireGuard does (REKEY_AFTER_MESSAGES). Integrity IA ≤ v · 8l / 2^106 allows v = 2^34
 *   forgery attempts: after that many ICV failures an inbound SA is retired.
 * A sender rekeys at `ESP_REKEY_FRACTION` of each limit. Limits on time are not the AEAD's business:
 * none by default.
 */
export const ESP_AEAD_LIMITS: Readonly<Record<EspCipher, Readonly<{ packets: number; bytes?: number; authFailures: number }>>> = {
  'aes-gcm-128': { packets: 2 ** 34, bytes: 2 ** 39, authFailures: 2 ** 57 },
  'aes-gcm-256': { packets: 2 ** 34, bytes: 2 ** 39, authFailures: 2 ** 57 },
  'chacha20-poly1305': { packets: 2 ** 60, authFailures: 2 ** 34 },
};
/** A sender moves to a new SA at this fraction of an AEAD limit (its soft lifetime). */
export const ESP_REKEY_FRACTION = 7 / 8;
/** Incarnations of a peer a database remembers having replaced (and refuses to take back). */
export const ESP_RETIRED_INCARNATIONS = 64;

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
  /**
   * Hard lifetimes of an outbound SA, at which it is rekeyed (derived keys) or stops (explicit keys).
   * Default, and upper bound of each field: the cipher's AEAD limits (`ESP_AEAD_LIMITS`).
   */
  lifetime?: EspLifetime;
  /** How long an inbound SA of a past epoch is still accepted. Default 30 s. */
  graceNs?: number;
  /** Persisted epochs and sequence reservations (one journal per database): required by explicit keys. */
  journal?: SeqJournal;
  /**
   * Randomness for this database's incarnation (16 bytes, drawn once). Live: crypto randomness
   * (`crypto.randomBytes`); the simulator: its seeded generator. Without it the incarnation is a fixed
   * function of the node and tunnel — for tests and the simulator only: a restarted node would repeat
   * its keys (`restartSafe` says which).
   */
  random?: (n: number) => Uint8Array;
  /** Explicit keys without a journal: the caller vouches that they were made for this run. Default false. */
  freshExplicitKeys?: boolean;
  /** Epochs past the next one an unknown SPI from a peer is looked for in. Default 4. */
  lookahead?: number;
  /**
   * How long a packet waits for its peer's announcement before it is dropped (`EspNoSa`). Default 10 s:
   * longer than a peer takes to start (a seine agent, 1.8–2.0 s on two busy cores, timed by hand — the 2 s this was
   * dropped the first node's packets while the second was still starting), well under what Linux holds
   * packets for an SA being negotiated (60 s) and WireGuard for a handshake (90 s).
   */
  waitNs?: number;
  /**
   * Seal and open a whole batch of packets per AEAD call (esp/esp.ts `EspSealBatch`, `EspOpenBatch`):
   * through the native addon (`native`, live/native.ts `loadNative()`), or with `native` null through the
   * per-packet backends. Absent: one packet at a time (the simulator's default; the bytes are the same).
   */
  batchAead?: { native: NativeAead | null };
}

/** The tunnel a database serves: what the key derivation needs of it besides the peer's address. */
export interface EspTunnelIdentity {
  kind: string;
  /** The tunnel's UDP destination port. */
  port: number;
  /** This node's underlay address. */
  localAddr: string;
}

export interface EspPeerConfig {
  /** The peer's name in the key derivation. Default: its underlay address. */
  node?: string;
  /** Explicit keys instead of derived ones. */
  out?: EspExplicitSa;
  in?: EspExplicitSa;
}

/** One remote VTEP's SAs. */
export class EspPeer {
  /** Where the peer's SAs are in the tunnel's VTEP table (a peer added back gets a new index). */
  index: number;
  /** Null until the peer's incarnation is known (derived keys), or never rekeyed (explicit). */
  out: OutboundSa | null = null;
  outEpoch = 0;
  /** The SPI of the outbound SA before `out` (0: none): a new epoch must not derive it again. */
  prevOutSpi = 0;
  /** The sequence number up to which the journal has reserved (as a number; 2^53 is far beyond any SA's use). */
  reservedTo = 0;
  inCur: InboundSa | null = null;
  inNext: InboundSa | null = null;
  inOld: InboundSa | null = null;
  /** The epoch of `inCur`, and of `inNext` (usually inEpoch + 1; further after a lookahead). */
  inEpoch = 0;
  nextEpoch = 1;
  oldUntil = 0;
  /** Outbound rekeys so far. */
  rekeys = 0;
  /** The outbound SA's name in the journal. */
  outId = '';
  /** Explicit keys: the inbound key's id (to know, when the peer is added back, whether its inbound SA still applies). */
  inId = '';
  /** Removed (`EspSadb.removePeer`): no SA of it is used; its state waits in case the peer comes back. */
  removed = false;
  /** Derived keys: the peer's incarnation once taken from a fresh hello, its last one seen in any hello. */
  incarnation: Uint8Array | null = null;
  /**
   * The peer has shown (a fresh hello, taken) that it holds the inbound SAs from this node's current
   * incarnation: until then nothing is sent to it. Explicit keys: always.
   */
  confirmed = false;
  seen: Uint8Array | null = null;
  /** Incarnations of the peer replaced here (hex, oldest first), never taken back. */
  readonly retired: string[] = [];
  /** Lookahead: the SPIs of epochs `aheadFrom` … (computed when an unknown SPI first comes from the peer). */
  aheadFrom = -1;
  aheadSpis: number[] = [];
  /** The SAs of those epochs, derived on first use and installed only once a packet authenticates on one. */
  aheadSas: Array<InboundSa | null> = [];
  /** Hello rate limit: tokens and when they were counted. */
  helloTokens = HELLO_BURST;
  helloAt = 0;
  /** Packets are waiting for this peer since (ns), or -1. */
  waitingSince = -1;
  /** A rekey request was honoured for the current outbound SA (one per SA), and when (ns, or -1). */
  rekeyAsked = false;
  rekeyAskedAt = -1;
  /** When this node last asked the peer for a hello unprompted (ns), or -1. */
  askedAt = -1;
  helloKeyOut: Uint8Array | null = null;
  helloKeyIn: Uint8Array | null = null;
  /** Key derivation towards and from the peer, for its current incarnation (made when first needed). */
  outDeriver: SaDeriver | null = null;
  inDeriver: SaDeriver | null = null;
  constructor(
    readonly name: string,
    readonly addr: string,
    index: number,
    readonly explicit: boolean,
  ) {
    this.index = index;
  }

  /** The peer can be sent to: its outbound SA exists, and the peer holds the inbound side. */
  get ready(): boolean {
    return this.out !== null && this.confirmed;
  }

  /** The lookahead no longer applies (its epochs are installed or passed, or its keys replaced): computed afresh at the next unknown SPI. */
  forgetLookahead(): void {
    this.aheadFrom = -1;
    this.aheadSpis = [];
    this.aheadSas = [];
  }
}

/** Hellos a peer may get in a burst, and per second after it (answers and retransmissions alike). */
const HELLO_BURST = 8;
const HELLO_PER_SEC = 8;
/** Unprompted asks for a peer's hello (packets waiting, SPIs not understood): at most one per 100 ms. */
const ASK_NS = 100e6;

/** Makes `random` draw a 16-byte incarnation, checked. */
function drawIncarnation(random: (n: number) => Uint8Array): Uint8Array {
  const r = random(ESP_INCARNATION_LEN);
  if (!(r instanceof Uint8Array) || r.length < ESP_INCARNATION_LEN)
    throw new RangeError(`esp: random returned ${r?.length} bytes, want ${ESP_INCARNATION_LEN}`);
  return Uint8Array.from(r.subarray(0, ESP_INCARNATION_LEN));
}

/** The incarnation without randomness: fixed per node and tunnel (see `EspConfig.random`). */
function fixedIncarnation(node: string, id: EspTunnelIdentity): Uint8Array {
  const h = createHash('sha256').update(`seine esp fixed incarnation v1\0${node}\0${id.kind}\0${id.port}\0${id.localAddr}`).digest();
  return Uint8Array.from(h.subarray(0, ESP_INCARNATION_LEN));
}

export class EspSadb {
  readonly cipher: EspCipher;
  readonly udpEncap: boolean;
  /** Peers by VTEP index (removed ones stay, marked). */
  readonly peers: EspPeer[] = [];
  /** This database's incarnation (see the module comment). */
  readonly incarnation: Uint8Array;
  /** Whether the incarnation came from the randomness given (else a restart repeats keys). */
  readonly restartSafe: boolean;
  /** Hellos to send: the VTEP index and the UDP payload. The tunnel takes them (`Tunnel.takeHellos`). */
  readonly outbox: Array<{ index: number; msg: Uint8Array }> = [];
  /** VTEP indexes whose outbound SA came into being since the tunnel last looked (their waiting packets may go). */
  readonly readied: number[] = [];
  /** ICV failures on every inbound SA, since the database was made. */
  icvFailures = 0;
  /** Hellos sent and taken (verified), hellos refused (bad tag), receiver resynchronisations. */
  hellosSent = 0;
  hellosReceived = 0;
  hellosRefused = 0;
  resyncs = 0;
  /**
   * Set by the tunnel before `espUnprotect`: the VTEP index of the outer source address. `lookup` and
   * `accepted` are about this peer.
   */
  from = -1;
  /**
   * Counts changes to the SPI table (an SA registered or unregistered): a batch that looked SAs up before
   * it decrypted knows whether its lookups still hold (tunnel.ts).
   */
  generation = 0;
  /** Why the last `lookup` found nothing: `EspUnknownSpi` or `EspPeerMismatch`. */
  missReason: DropReason = DropReason.EspUnknownSpi;
  /** The time of the packet being looked up (for the lookahead's hello request). */
  private nowIn = 0;
  // The SPI table: SPI → first entry; entries chain the SAs sharing an SPI, each with its peer.
  private readonly bySpi = new U32Map();
  private readonly entSa: Array<InboundSa | null> = [];
  private readonly entPeer: number[] = [];
  private readonly entNext: number[] = [];
  private readonly entFree: number[] = [];
  private live = 0;
  private readonly graceNs: number;
  private readonly esn: boolean;
  private readonly window: number;
  private readonly outLife: EspLifetime;
  private readonly outSoft: EspLifetime;
  private readonly inLife: EspLifetime;
  private readonly lookahead: number;
  readonly waitNs: number;
  /**
   * Removed peers' state by identity (`retiredKey`), taken up again if the peer is added back: its
   * outbound SA goes on counting, so no nonce is used twice under one key, and its inbound SAs keep their
   * replay windows, so the peer's own SAs (which never stopped) are accepted where they left off.
   */
  private readonly retired = new Map<string, EspPeer>();
  /** Explicit keys in use (by `keyId`), and by whom: no key serves two directions or peers. */
  private readonly explicitKeys = new Map<string, string>();

  constructor(
    readonly cfg: EspConfig,
    readonly node: string,
    readonly ident: EspTunnelIdentity,
  ) {
    this.cipher = cfg.cipher;
    this.udpEncap = cfg.udpEncap ?? false;
    this.esn = cfg.esn ?? true;
    this.window = cfg.replayWindow ?? 64;
    this.graceNs = cfg.graceNs ?? 30e9;
    if (!(this.graceNs >= 0)) throw new RangeError(`esp graceNs ${this.graceNs} must be ≥ 0`);
    this.lookahead = cfg.lookahead ?? 4;
    if (!(Number.isInteger(this.lookahead) && this.lookahead >= 0 && this.lookahead <= 64))
      throw new RangeError(`esp lookahead ${this.lookahead} is not an integer in 0-64`);
    this.waitNs = cfg.waitNs ?? 10e9;
    if (!(this.waitNs >= 0)) throw new RangeError(`esp waitNs ${this.waitNs} must be ≥ 0`);
    if (ESP_CIPHERS[cfg.cipher] === undefined) throw new RangeError(`esp: cipher ${String(cfg.cipher)} is not one of ${Object.keys(ESP_CIPHERS).join(', ')}`);
    const lim = ESP_AEAD_LIMITS[cfg.cipher];
    const user = cfg.lifetime ?? {};
    const min = (a: number | undefined, b: number | undefined): number | undefined => (a === undefined ? b : b === undefined ? a : Math.min(a, b));
    const frac = (x: number | undefined): number | undefined => (x === undefined ? undefined : Math.floor(x * ESP_REKEY_FRACTION));
    const def = (o: Record<keyof EspLifetime, number | undefined>): EspLifetime =>
      Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as EspLifetime;
    this.outLife = def({ packets: min(user.packets, lim.packets), bytes: min(user.bytes, lim.bytes), ns: user.ns, authFailures: undefined });
    this.outSoft = def({ packets: min(user.packets, frac(lim.packets)), bytes: min(user.bytes, frac(lim.bytes)), ns: user.ns, authFailures: undefined });
    this.inLife = def({ packets: lim.packets, bytes: lim.bytes, ns: undefined, authFailures: min(user.authFailures, lim.authFailures) });
    this.restartSafe = cfg.random !== undefined;
    this.incarnation = cfg.random !== undefined ? drawIncarnation(cfg.random) : fixedIncarnation(node, ident);
    cfg.journal?.claim(this);
  }

  /** Live inbound SAs in the SPI table (at most three per peer, see the module comment). */
  get spiTableSize(): number {
    return this.live;
  }

  /**
   * Adds the SAs towards and from the VTEP at index `index` (indexes follow the tunnel's VTEP table),
   * whose underlay address is `addr`. A peer removed before (same name and address with derived keys,
   * same outbound key when explicit) takes up its SAs again (see `retired`). A derived peer has no SA
   * until its incarnation is known (see the module comment). Throws, leaving the database as it was,
   * for a configuration that cannot be used.
   */
  addPeer(index: number, addr: string, pc: EspPeerConfig = {}, now = 0): void {
    if (index !== this.peers.length) throw new RangeError(`esp: peer ${addr} added out of order`);
    const explicit = pc.out !== undefined || pc.in !== undefined;
    if (explicit) {
      this.addExplicit(index, addr, pc, now);
      return;
    }
    if (this.cfg.secret === undefined) throw new RangeError(`esp: VTEP ${addr}: give the cluster secret (esp.secret) or explicit out/in keys`);
    const name = pc.node ?? addr;
    const back = this.retired.get(retiredKey(false, name));
    const peer = new EspPeer(name, addr, index, false);
    if (back !== undefined) {
      this.retired.delete(retiredKey(false, name));
      peer.retired.push(...back.retired);
      peer.rekeys = back.rekeys;
      if (back.addr === addr) {
        // Everything goes on where it was: the same keys, sequence numbers and windows.
        peer.incarnation = back.incarnation;
        peer.confirmed = back.confirmed;
        peer.seen = back.seen;
        peer.out = back.out;
        peer.outEpoch = back.outEpoch;
        peer.prevOutSpi = back.prevOutSpi;
        peer.outId = back.outId;
        peer.reservedTo = back.reservedTo;
        peer.inCur = back.inCur;
        peer.inNext = back.inNext;
        peer.inOld = back.inOld;
        peer.inEpoch = back.inEpoch;
        peer.nextEpoch = back.nextEpoch;
        peer.oldUntil = back.oldUntil;
      } else {
        // Another address is another tunnel (keys depend on it): announce afresh, epochs still growing.
        peer.outEpoch = this.cfg.journal?.bumpEpoch(name) ?? back.outEpoch + 1;
        if (back.incarnation !== null) pushRetired(peer, back.incarnation);
      }
    } else {
      peer.outEpoch = this.cfg.journal?.epoch(name) ?? 0;
    }
    this.peers.push(peer);
    for (const sa of [peer.inCur, peer.inNext, peer.inOld]) if (sa !== null) this.register(sa, index);
    // Announce at once: the peer may be sending already (its packets wait for this node's hello).
    if (!peer.ready) this.ask(peer, now);
  }

  private addExplicit(index: number, addr: string, pc: EspPeerConfig, now: number): void {
    if (pc.out === undefined || pc.in === undefined) throw new RangeError(`esp: VTEP ${addr}: explicit keys need both out and in`);
    const journal = this.cfg.journal;
    if (journal === undefined && this.cfg.freshExplicitKeys !== true) {
      throw new RangeError(
        `esp: VTEP ${addr}: hand-configured keys need a journal (esp.journal), or a restart would send their sequence numbers again under the same key; ` +
          'set esp.freshExplicitKeys only if the keys were made for this run',
      );
    }
    const o = explicitSaKeys({ cipher: this.cipher, ...pc.out });
    const i = explicitSaKeys({ cipher: this.cipher, ...pc.in });
    const oid = keyId(o);
    const iid = keyId(i);
    if (oid === iid) throw new RangeError(`esp: VTEP ${addr}: the same key in both directions (each direction needs its own key: one nonce space each)`);
    const back = this.retired.get(retiredKey(true, oid));
    const mine = (id: string): boolean => back !== undefined && (id === back.outId || id === back.inId);
    for (const id of [oid, iid]) {
      const owner = this.explicitKeys.get(id);
      if (owner !== undefined && !mine(id))
        throw new RangeError(`esp: VTEP ${addr}: a key already used by ${owner} (keys must not be shared between peers or directions)`);
    }
    const same = back !== undefined && back.inCur !== null && back.inCur.spi === i.spi && iid === back.inId;
    const inCur = same ? back.inCur! : this.inSa(i.spi, i, now);
    // The SPI must be free among this database's explicit SAs: RFC 4301 lets the receiver choose SPIs, and
    // hand-configured ones are the operator's to keep apart.
    for (const p of this.peers) {
      if (p.explicit && !p.removed && p.inCur?.spi === i.spi)
        throw new RangeError(`esp: inbound SPI 0x${i.spi.toString(16)} is already in use on this tunnel (choose another explicit SPI)`);
    }
    const out = back?.out ?? this.outSa(o.spi, o, journal === undefined ? 0n : journal.restore(oid), now);
    if (back !== undefined) this.retired.delete(retiredKey(true, oid));
    const peer = new EspPeer(addr, addr, index, true);
    peer.confirmed = true;
    peer.out = out;
    peer.outId = oid;
    peer.inId = iid;
    peer.inCur = inCur;
    if (back !== undefined) {
      peer.reservedTo = back.reservedTo;
      peer.rekeys = back.rekeys;
      if (back.inId !== iid) this.explicitKeys.delete(back.inId);
    }
    this.explicitKeys.set(oid, `VTEP ${addr} (outbound)`);
    this.explicitKeys.set(iid, `VTEP ${addr} (inbound)`);
    this.peers.push(peer);
    this.register(inCur, index);
  }

  /**
   * Removes the SAs of the peer at `index` (its VTEP is being removed): nothing more is sent to it
   * (`EspNoSa`) and its inbound SPIs are unknown (`EspUnknownSpi`). Its state is kept for `addPeer`.
   */
  removePeer(index: number): void {
    const peer = this.peers[index];
    if (peer === undefined || peer.removed) throw new RangeError(`esp: no peer at index ${index}`);
    peer.removed = true;
    peer.waitingSince = -1;
    for (const sa of [peer.inCur, peer.inNext, peer.inOld]) if (sa !== null) this.unregister(sa, index);
    this.retired.set(retiredKey(peer.explicit, peer.explicit ? peer.outId : peer.name), peer);
    for (let i = this.outbox.length - 1; i >= 0; i--) if (this.outbox[i]!.index === index) this.outbox.splice(i, 1);
  }

  // ---- SAs and their keys ---------------------------------------------------------------------------------

  private outSa(spi: number, k: EspKeying, resumeAfter: bigint, now: number): OutboundSa {
    return new OutboundSa({
      spi,
      keying: { cipher: k.cipher, key: k.key, salt: k.salt },
      esn: this.esn,
      createdAt: now,
      resumeAfter,
      lifetime: this.outLife,
      rekeyAt: this.outSoft,
    });
  }

  private inSa(spi: number, k: EspKeying, now: number): InboundSa {
    return new InboundSa({
      spi,
      keying: { cipher: k.cipher, key: k.key, salt: k.salt },
      esn: this.esn,
      window: this.window,
      createdAt: now,
      lifetime: this.inLife,
    });
  }

  /** The derivation of `peer`'s SAs one way, for its current incarnation. */
  private deriver(peer: EspPeer, outbound: boolean): SaDeriver {
    const d = outbound ? peer.outDeriver : peer.inDeriver;
    if (d !== null) return d;
    const t = this.ident;
    const spec: SaPairSpec = outbound
      ? {
          cipher: this.cipher,
          src: this.node,
          dst: peer.name,
          tunnel: { kind: t.kind, port: t.port, srcAddr: t.localAddr, dstAddr: peer.addr },
          srcIncarnation: this.incarnation,
          dstIncarnation: peer.incarnation!,
        }
      : {
          cipher: this.cipher,
          src: peer.name,
          dst: this.node,
          tunnel: { kind: t.kind, port: t.port, srcAddr: peer.addr, dstAddr: t.localAddr },
          srcIncarnation: peer.incarnation!,
          dstIncarnation: this.incarnation,
        };
    const made = new SaDeriver(this.cfg.secret!, spec);
    if (outbound) peer.outDeriver = made;
    else peer.inDeriver = made;
    return made;
  }

  private derivedIn(peer: EspPeer, epoch: number, now: number): InboundSa {
    const k = this.deriver(peer, false).keys(epoch);
    return this.inSa(k.spi, k, now);
  }

  /** The outbound SA of `peer` in `epoch`, keyed with `k` (resumed past the journal's reservation, if any). */
  private setOut(peer: EspPeer, epoch: number, k: EspKeying & { spi: number }, now: number): void {
    const id = saId(this.node, peer.name, epoch);
    const j = this.cfg.journal;
    if (peer.out !== null) peer.prevOutSpi = peer.out.spi;
    peer.out = this.outSa(k.spi, k, j === undefined ? 0n : j.restore(id), now);
    peer.outEpoch = epoch;
    peer.outId = id;
    peer.reservedTo = 0;
    peer.rekeyAsked = false;
  }

  /**
   * Moves the outbound SA of `peer` to a new epoch: the next one whose SPI is neither the current nor the
   * previous SA's (the receiver may still hold both), durably in the journal first when there is one.
   */
  private rekeyOut(peer: EspPeer, now: number): void {
    const j = this.cfg.journal;
    const d = this.deriver(peer, true);
    const cur = peer.out?.spi ?? 0;
    let epoch = peer.outEpoch;
    for (;;) {
      epoch = j?.bumpEpoch(peer.name) ?? epoch + 1;
      const k = d.keys(epoch);
      if (k.spi !== cur && k.spi !== peer.prevOutSpi) {
        this.setOut(peer, epoch, k, now);
        break;
      }
    }
    peer.rekeys++;
  }

  // ---- the SPI table --------------------------------------------------------------------------------------

  private register(sa: InboundSa, peer: number): void {
    this.generation++;
    const e = this.entFree.pop() ?? this.entSa.length;
    this.entSa[e] = sa;
    this.entPeer[e] = peer;
    this.entNext[e] = -1;
    const head = this.bySpi.get(sa.spi);
    if (head < 0) {
      this.bySpi.set(sa.spi, e);
    } else {
      // At the end of the chain: SAs registered earlier (a peer's current one) are found first.
      let i = head;
      while (this.entNext[i]! >= 0) i = this.entNext[i]!;
      this.entNext[i] = e;
    }
    this.live++;
  }

  private unregister(sa: InboundSa, peer: number): void {
    this.generation++;
    let prev = -1;
    let i = this.bySpi.get(sa.spi);
    while (i >= 0 && !(this.entSa[i] === sa && this.entPeer[i] === peer)) {
      prev = i;
      i = this.entNext[i]!;
    }
    if (i < 0) return;
    const next = this.entNext[i]!;
    if (prev < 0) {
      if (next < 0) this.bySpi.delete(sa.spi);
      else this.bySpi.set(sa.spi, next);
    } else {
      this.entNext[prev] = next;
    }
    this.entSa[i] = null;
    this.entFree.push(i);
    this.live--;
  }

  /**
   * Before `espUnprotect`: the packet came from the VTEP at `from` (its outer source) at `now`.
   */
  begin(from: number, now: number): void {
    this.from = from;
    this.nowIn = now;
  }

  /** The inbound SA for `spi` from the peer `begin` named, or null with `missReason` (the lookup `espUnprotect` takes). */
  readonly lookup = (spi: number): InboundSa | null => {
    const head = this.bySpi.get(spi);
    const from = this.from;
    for (let i = head; i >= 0; i = this.entNext[i]!) if (this.entPeer[i] === from) return this.entSa[i]!;
    return this.miss(spi, head >= 0);
  };

  /** The inbound SA for `spi` from the peer at `from` (for tests and status; no lookahead). */
  find(spi: number, from: number): InboundSa | null {
    for (let i = this.bySpi.get(spi); i >= 0; i = this.entNext[i]!) if (this.entPeer[i] === from) return this.entSa[i]!;
    return null;
  }

  /**
   * No SA of the peer carries `spi`: perhaps one of its next epochs does (the lookahead, made the next
   * SA when found, taken once a packet authenticates on it); else the SPI is another peer's
   * (`EspPeerMismatch`) or unknown, and a derived peer is asked for a hello (rate-limited).
   */
  private miss(spi: number, otherPeer: boolean): InboundSa | null {
    this.missReason = otherPeer ? DropReason.EspPeerMismatch : DropReason.EspUnknownSpi;
    const peer = this.peers[this.from];
    if (peer === undefined || peer.removed || peer.explicit) return null;
    if (peer.incarnation === null) {
      // We cannot read this peer at all yet (we restarted, or it did and we missed its hello).
      this.ask(peer, this.nowIn);
      return null;
    }
    const first = peer.inEpoch + 1;
    if (peer.aheadFrom !== first) {
      peer.aheadFrom = first;
      peer.aheadSpis = [];
      const d = this.deriver(peer, false);
      for (let e = first; e <= first + this.lookahead && e <= Number.MAX_SAFE_INTEGER; e++) peer.aheadSpis.push(d.spi(e));
      peer.aheadSas = new Array<InboundSa | null>(peer.aheadSpis.length).fill(null);
    }
    const k = peer.aheadSpis.indexOf(spi);
    if (k < 0) {
      // Past the lookahead (or not the peer's at all): the peer's hello says where it is.
      this.ask(peer, this.nowIn);
      return null;
    }
    // A candidate, not yet installed: nothing changes until a packet authenticates on it (`accepted`),
    // and packets that do not cost at most one derivation per epoch of the window, not one each.
    this.missReason = DropReason.EspUnknownSpi;
    return (peer.aheadSas[k] ??= this.derivedIn(peer, first + k, this.nowIn));
  }

  /** Makes `epoch` the peer's next inbound SA (replacing the one there). */
  private setNext(peer: EspPeer, epoch: number, now: number): void {
    if (peer.inNext !== null) this.unregister(peer.inNext, peer.index);
    peer.inNext = this.derivedIn(peer, epoch, now);
    peer.nextEpoch = epoch;
    this.register(peer.inNext, peer.index);
  }

  // ---- outbound -------------------------------------------------------------------------------------------

  /**
   * The outbound SA towards peer `index` for one more packet at `now`, rekeyed first when it is due (soft
   * lifetime or the end of its sequence numbers; explicit SAs are never rekeyed and report
   * EspSaExhausted at their hard lifetime); with a journal, the next sequence number is reserved on disk
   * before it is used. Returns the SA, a DropReason, or `ESP_WAIT` when the peer cannot be sent to yet
   * (its incarnation is not known, or it has not shown it took this node's: hold the packet; a hello is
   * on its way).
   */
  outbound(index: number, now: number): OutboundSa | number {
    const peer = this.peers[index];
    if (peer === undefined || peer.removed) return DropReason.EspNoSa;
    if (this.waits(peer, now)) return ESP_WAIT;
    let sa = peer.out!;
    if (sa.exhausted || sa.due(now)) {
      if (peer.explicit) {
        if (sa.exhausted || sa.expired(now)) return DropReason.EspSaExhausted;
      } else {
        this.rekeyOut(peer, now);
        sa = peer.out!;
      }
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
   * Whether packets for the peer at `index` must wait for its announcement (`outbound` would say
   * `ESP_WAIT`); if so, it is asked (rate-limited). For the bridge, which holds a super-frame whole
   * rather than its segments.
   */
  mustWait(index: number, now: number): boolean {
    const peer = this.peers[index];
    return peer !== undefined && !peer.removed && this.waits(peer, now);
  }

  private waits(peer: EspPeer, now: number): boolean {
    if (peer.ready) return false;
    if (peer.waitingSince < 0) peer.waitingSince = now;
    this.ask(peer, now);
    return true;
  }

  // ---- inbound --------------------------------------------------------------------------------------------

  /**
   * After `sa` authenticated a packet from the peer `begin` named, at `now`: when it is the peer's next
   * SA, that epoch becomes current, the one after is installed, and the old one stays for the grace
   * period.
   */
  accepted(sa: InboundSa, now: number): void {
    const peer = this.peers[this.from];
    if (peer === undefined) return;
    if (sa !== peer.inNext) {
      // A lookahead candidate authenticated: its epoch is the peer's next, and becomes current.
      const k = peer.aheadSas.indexOf(sa);
      if (k < 0) return;
      if (peer.inNext !== null) this.unregister(peer.inNext, peer.index);
      peer.inNext = sa;
      peer.nextEpoch = peer.aheadFrom + k;
      this.register(sa, peer.index);
      // The window is used up: it is computed again from the new epoch at the next unknown SPI. Left in
      // place, every later packet on this SA (now current, not next) would be found in it and installed
      // and rotated again — the old epoch's grace cut short and the next SA derived per packet.
      peer.forgetLookahead();
    }
    this.rotate(peer, now);
  }

  private rotate(peer: EspPeer, now: number): void {
    if (peer.inOld !== null) this.unregister(peer.inOld, peer.index);
    peer.inOld = peer.inCur;
    peer.oldUntil = now + this.graceNs;
    peer.inCur = peer.inNext;
    peer.inEpoch = peer.nextEpoch;
    peer.inNext = null;
    if (peer.explicit) return;
    // The lookahead's candidate for that epoch, if it has one: a batch opened under it (tunnel.ts checks
    // that a packet's SA is still the one registered) then finds the same SA, not a copy — with two epochs
    // in one batch, the second's packets were EspUnknownSpi.
    const e = peer.inEpoch + 1;
    const k = peer.aheadFrom >= 0 ? e - peer.aheadFrom : -1;
    let next = k >= 0 && k < peer.aheadSas.length ? peer.aheadSas[k]! : null;
    // Out of the window once installed: `accepted` takes an SA found there for a candidate.
    if (next !== null) peer.aheadSas[k] = null;
    next ??= this.derivedIn(peer, e, now);
    peer.inNext = next;
    peer.nextEpoch = peer.inEpoch + 1;
    this.register(next, peer.index);
  }

  /**
   * After `sa` (of the peer `begin` named) failed an ICV check: counted; at the AEAD's integrity limit
   * the SA is retired and a derived peer asked to move to a new epoch.
   */
  authFailed(sa: InboundSa, now: number): void {
    this.icvFailures++;
    if (sa.drops[DropReason.EspAuthFailed]! < sa.maxAuthFailures) return;
    const peer = this.peers[this.from];
    if (peer === undefined) return;
    this.unregister(sa, peer.index);
    if (sa === peer.inCur) peer.inCur = null;
    else if (sa === peer.inNext) peer.inNext = null;
    else if (sa === peer.inOld) peer.inOld = null;
    if (!peer.explicit && peer.incarnation !== null) {
      if (peer.inNext === null) this.setNext(peer, peer.inEpoch + 1, now);
      this.queueHello(peer, HELLO_REKEY, now, true);
    }
  }

  // ---- announcements ----------------------------------------------------------------------------------

  private helloKeys(peer: EspPeer): { out: Uint8Array; in: Uint8Array } {
    const t = this.ident;
    peer.helloKeyOut ??= deriveHelloKey(this.cfg.secret!, {
      cipher: this.cipher,
      src: this.node,
      dst: peer.name,
      tunnel: { kind: t.kind, port: t.port, srcAddr: t.localAddr, dstAddr: peer.addr },
    });
    peer.helloKeyIn ??= deriveHelloKey(this.cfg.secret!, {
      cipher: this.cipher,
      src: peer.name,
      dst: this.node,
      tunnel: { kind: t.kind, port: t.port, srcAddr: peer.addr, dstAddr: t.localAddr },
    });
    return { out: peer.helloKeyOut, in: peer.helloKeyIn };
  }

  /** The epoch this node sends in towards `peer` once it has taken `echo` as the peer's incarnation. */
  private announcedEpoch(peer: EspPeer, echo: Uint8Array | null): number {
    if (peer.out === null) return peer.outEpoch;
    return sameIncarnation(echo, peer.incarnation) ? peer.outEpoch : peer.outEpoch + 1;
  }

  /**
   * Asks `peer` for its hello (this node cannot send to it or read it): at most once per `ASK_NS`, so
   * that a stream of packets waiting, or of SPIs not understood, asks once.
   */
  private ask(peer: EspPeer, now: number): void {
    if (peer.askedAt >= 0 && now - peer.askedAt < ASK_NS) return;
    peer.askedAt = now;
    this.queueHello(peer, HELLO_ANSWER, now, false);
  }

  /** The hellos to send (the tunnel sends them), taken out of the outbox. */
  takeOutbox(): Array<{ index: number; msg: Uint8Array }> {
    const out = this.outbox.splice(0);
    this.hellosSent += out.length;
    return out;
  }

  /**
   * Puts a hello to `peer` in the outbox: this incarnation, the peer's as last seen, the epoch.
   * Rate-limited per peer (`HELLO_BURST`, `HELLO_PER_SEC`) unless `force`.
   */
  private queueHello(peer: EspPeer, flags: number, now: number, force: boolean): void {
    if (peer.removed || peer.explicit) return;
    const dt = now - peer.helloAt;
    if (dt > 0) peer.helloTokens = Math.min(HELLO_BURST, peer.helloTokens + (dt * HELLO_PER_SEC) / 1e9);
    peer.helloAt = now;
    if (peer.helloTokens < 1 && !force) return;
    peer.helloTokens = Math.max(0, peer.helloTokens - 1);
    // One hello per peer in the outbox at a time: a newer one says everything an older one did.
    for (let i = this.outbox.length - 1; i >= 0; i--) if (this.outbox[i]!.index === peer.index) this.outbox.splice(i, 1);
    const echo = peer.seen ?? NO_INCARNATION;
    // Taken: this node holds the inbound SAs from the incarnation it echoes. Answer me: the peer's answer
    // is what this node waits for (it cannot send to the peer yet, or has not taken its latest life).
    if (sameIncarnation(echo, peer.incarnation)) flags |= HELLO_TAKEN;
    else flags |= HELLO_ANSWER;
    if (!peer.ready) flags |= HELLO_ANSWER;
    const msg = encodeHello({ flags, incarnation: this.incarnation, echo, epoch: this.announcedEpoch(peer, echo) }, this.helloKeys(peer).out);
    this.outbox.push({ index: peer.index, msg });
  }

  /**
   * A hello arrived from the VTEP at `index` (its outer source), its UDP payload at `b[off, end)`:
   * verified, taken, answered as the module comment says. Returns `EspControl` (consumed) or
   * `EspAuthFailed` (it did not verify: forged, damaged, or of another secret, tunnel or direction).
   */
  receiveHello(index: number, b: Uint8Array, off: number, end: number, now: number): DropReason {
    const peer = this.peers[index];
    if (peer === undefined || peer.removed || peer.explicit || this.cfg.secret === undefined) return DropReason.EspControl;
    const h = decodeHello(b, off, end, this.helloKeys(peer).in);
    if (h === null) {
      this.hellosRefused++;
      return DropReason.EspAuthFailed;
    }
    this.hellosReceived++;
    peer.seen = h.incarnation;
    const fresh = sameIncarnation(h.echo, this.incarnation);
    if (fresh) {
      if (!sameIncarnation(h.incarnation, peer.incarnation)) {
        // A replayed hello of a life of the peer this node has seen end: never taken back.
        if (peer.retired.includes(incarnationHex(h.incarnation))) return DropReason.EspControl;
        this.adopt(peer, h.incarnation, h.epoch, now);
      } else if (h.epoch > peer.inEpoch && h.epoch !== peer.nextEpoch) {
        // The peer is further along than this node knows (epochs lost beyond the lookahead).
        this.resync(peer, h.epoch, now);
      }
      // Honoured once per outbound SA and at most once a second: a replayed request forces no stream of rekeys.
      if ((h.flags & HELLO_REKEY) !== 0 && peer.out !== null && !peer.rekeyAsked && (peer.rekeyAskedAt < 0 || now - peer.rekeyAskedAt >= 1e9)) {
        this.rekeyOut(peer, now);
        peer.rekeyAsked = true;
        peer.rekeyAskedAt = now;
      }
      // The peer (in the life this node took) holds the inbound SAs from this node's current life.
      if ((h.flags & HELLO_TAKEN) !== 0 && !peer.confirmed && sameIncarnation(h.incarnation, peer.incarnation)) this.confirm(peer);
    }
    // The answer says whether this node took the peer (`queueHello` sets the flags).
    if (!fresh || (h.flags & HELLO_ANSWER) !== 0) this.queueHello(peer, 0, now, false);
    return DropReason.EspControl;
  }

  /** Takes `inc` as the peer's incarnation, sending in `epoch`: new inbound SAs, and a new outbound one. */
  private adopt(peer: EspPeer, inc: Uint8Array, epoch: number, now: number): void {
    if (peer.incarnation !== null) pushRetired(peer, peer.incarnation);
    peer.incarnation = inc;
    peer.outDeriver = peer.inDeriver = null;
    // What the peer's previous life still has in flight is taken for the grace period.
    if (peer.inOld !== null) this.unregister(peer.inOld, peer.index);
    if (peer.inNext !== null) this.unregister(peer.inNext, peer.index);
    peer.inOld = peer.inCur;
    peer.oldUntil = now + this.graceNs;
    peer.inCur = this.derivedIn(peer, epoch, now);
    peer.inEpoch = epoch;
    this.register(peer.inCur, peer.index);
    peer.inNext = null;
    this.setNext(peer, epoch + 1, now);
    peer.forgetLookahead();
    if (peer.out === null) this.setOut(peer, peer.outEpoch, this.deriver(peer, true).keys(peer.outEpoch), now);
    else this.rekeyOut(peer, now);
    // This life of the peer has not shown yet that it took this node's: nothing is sent to it until then.
    peer.confirmed = false;
    // A new state: what this node does not understand from now on is worth asking about at once.
    peer.askedAt = -1;
  }

  /** The peer holds this node's SAs: its waiting packets may go (the tunnel looks at `readied`). */
  private confirm(peer: EspPeer): void {
    peer.confirmed = true;
    peer.waitingSince = -1;
    this.readied.push(peer.index);
  }

  /** The peer announced `epoch`, past what this node holds: that epoch's SA becomes current. */
  private resync(peer: EspPeer, epoch: number, now: number): void {
    this.setNext(peer, epoch, now);
    this.rotate(peer, now);
    peer.forgetLookahead();
    this.resyncs++;
  }

  /**
   * What the control plane does on the simulator (and could do on a live node with a channel of its
   * own): `a` and `b` exchange their hellos directly, not over the underlay, until both can send. `ai`
   * is b's VTEP index at a, `bi` a's at b.
   */
  static introduce(a: EspSadb, ai: number, b: EspSadb, bi: number, now: number): void {
    const pa = a.peers[ai];
    const pb = b.peers[bi];
    if (pa === undefined || pb === undefined || pa.explicit || pb.explicit) throw new RangeError('esp introduce: both ends need a derived peer');
    const take = (s: EspSadb, idx: number): Uint8Array[] => {
      const out: Uint8Array[] = [];
      for (let i = 0; i < s.outbox.length; ) {
        if (s.outbox[i]!.index === idx) out.push(s.outbox.splice(i, 1)[0]!.msg);
        else i++;
      }
      return out;
    };
    if (!pa.ready || !pb.ready) a.queueHello(pa, HELLO_ANSWER, now, true);
    for (let round = 0; round < 8; round++) {
      const ab = take(a, ai);
      const ba = take(b, bi);
      if (ab.length === 0 && ba.length === 0) break;
      for (const m of ab) b.receiveHello(bi, m, 0, m.length, now);
      for (const m of ba) a.receiveHello(ai, m, 0, m.length, now);
    }
    if (!pa.ready || !pb.ready) throw new Error(`esp introduce: ${a.node} and ${b.node} did not agree (different secrets or ciphers?)`);
  }

  /**
   * Housekeeping at `now` (the bridge's tick): retires inbound SAs whose grace period is over, and asks
   * again peers that packets wait for. Returns how many SAs retired.
   */
  expire(now: number): number {
    let n = 0;
    for (const peer of this.peers) {
      if (peer.removed) continue;
      if (peer.inOld !== null && now >= peer.oldUntil) {
        this.unregister(peer.inOld, peer.index);
        peer.inOld = null;
        n++;
      }
      if (!peer.ready && !peer.explicit && peer.waitingSince >= 0) {
        if (now - peer.waitingSince > this.waitNs) peer.waitingSince = -1;
        else this.ask(peer, now);
      }
    }
    return n;
  }
}

function pushRetired(peer: EspPeer, inc: Uint8Array): void {
  const h = incarnationHex(inc);
  if (peer.retired.includes(h)) return;
  peer.retired.push(h);
  if (peer.retired.length > ESP_RETIRED_INCARNATIONS) peer.retired.shift();
}

/** Who a retired peer is: its outbound key's id when keyed explicitly, else its name in the derivation. */
function retiredKey(explicit: boolean, id: string): string {
  return `${explicit ? 'x' : 'd'}:${id}`;
}
