/**
 * The sequence journal: what a node persists so that a restart never reuses an ESP (key, nonce) pair.
 *
 * An SA's nonce is salt ‖ sequence number, and its (key, salt) is fixed by (src, dst, epoch) (keys.ts), so
 * restarts are safe when (1) the sender's sequence numbers on one SA never go back, and (2) it never goes
 * back to an epoch it has left. The journal holds, for the node that owns it (the sender, `src`):
 * - per peer, the current epoch of its outbound SA; `bumpEpoch` moves it up by one, durably, before the
 *   caller derives the new keys;
 * - per SA, a *reservation*: an exclusive bound below which the SA may use sequence numbers.
 *   `reserve(id, next)` is called when `next` reaches the bound; it durably writes `next + block` first,
 *   so one fsync'd write serves `block` packets, and after a crash the SA resumes at the bound (`restore`),
 *   skipping what was left of the block, never reusing it.
 * Every write replaces the whole file atomically: write a temporary file, fsync it, rename it over the
 * journal, fsync the directory. A crash at any point leaves the old or the new journal, whole.
 *
 * Threat model. The journal covers:
 * - crashes, kill -9 and power loss at any instant: nothing is used that the file on disk does not cover;
 * - a damaged journal (truncated, bit rot, another program's write): a SHA-256 line guards the content,
 *   and a journal that fails it stops the node with a `JournalCorruptError` naming the file — never a
 *   silent reset, which would restart at old epochs and sequence numbers;
 * - a lost journal (deleted, a new disk, an emptyDir that went away): the node cannot tell this from a
 *   first start, so a journal created afresh starts every peer's epochs at a random `base` in [0, 2^52).
 *   Two incarnations reuse an epoch only if their ranges overlap: with up to k rekeys each, about
 *   2k/2^52 (2^-31 for a million rekeys). The same holds for a corrupt journal moved away by hand.
 * It does not cover a journal rolled back to an older but intact copy (a VM snapshot or backup restored):
 * that replays old epochs and reservations. After such a restore, delete the journal (or change the
 * cluster secret) before starting. (Derived keys also mix in both ends' per-start random incarnations,
 * esp/keys.ts, so for them a restored journal cannot bring back a key; hand-configured keys rely on the
 * journal alone.)
 *
 * One owner. Two users of one journal would each take the other's sequence numbers, so:
 * - a journal file is locked while open: `open` creates `<path>.lock` exclusively (O_EXCL) with its
 *   process id and refuses (`JournalLockedError`) while that process lives; a lock whose process is gone
 *   (a crash, kill -9) is stale and taken over. `close` removes it. No native code: liveness is
 *   `kill(pid, 0)`. A recycled pid keeps a stale lock looking held — the error names the file to remove;
 * - in one process, a journal serves one SA database (`claim`);
 * - `reserve` never goes backwards: a request below the SA's bound is an error, never a silent success.
 *
 * The price of the random base is that epochs cannot be guessed by the receiver: each node tells its
 * peers its current epoch per peer in its announcements (esp/hello.ts, esp/sadb.ts), at start and
 * whenever a peer asks. Between those, epochs grow by one, so a receiver watches for the SPIs of the next
 * few.
 *
 * Journal ids: `saId(src, dst, epoch)` for derived SAs (src must be the journal's node; only the current
 * and the previous epoch of a peer may be used, older ones are pruned at each bump) and `keyId(keys)`
 * (keys.ts) for hand-configured SAs, kept until the file is removed.
 *
 * File format (text, one JSON line, then its checksum):
 * ```
 * {"format":"seine-esp-journal","version":1,"node":"n1","base":123,"epochs":{"n2":124},"reserved":{"n1>n2#124":"2097152"}}
 * sha256:<64 hex digits of SHA-256 over the first line's bytes>
 * ```
 */
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

/** Sequence numbers reserved per journal write: 2^20, one fsync'd write per million packets per SA. */
export const JOURNAL_BLOCK = 1n << 20n;
/** The exclusive bound of 64-bit (extended) sequence numbers. */
export const SEQ_END = 1n << 64n;
/** Epoch bases are drawn below this, leaving 2^52 rekeys of room under `Number.MAX_SAFE_INTEGER`. */
export const EPOCH_BASE_RANGE = 2 ** 52;

const FORMAT = 'seine-esp-journal';
const VERSION = 1;

/**
 * The file operations the journal needs, synchronous. `nodeJournalFs` is the real one; tests put a
 * simulated disk here to crash it between any two calls.
 */
export interface JournalFs {
  /** The file's bytes, or null if it does not exist. */
  readFile(path: string): Uint8Array | null;
  /** Creates or truncates a file for writing (mode 0600); returns a descriptor. */
  openWrite(path: string): number;
  /** Opens a directory so that it can be fsync'd. */
  openDir(path: string): number;
  /** Writes all of `data`. */
  write(fd: number, data: Uint8Array): void;
  fsync(fd: number): void;
  close(fd: number): void;
  /** Atomically replaces `to` with `from`. */
  rename(from: string, to: string): void;
  /** Removes a file; one that does not exist is fine. */
  unlink(path: string): void;
  /** Creates `path` with `data` only if it does not exist (O_CREAT|O_EXCL); false if it does. */
  createExclusive(path: string, data: Uint8Array): boolean;
}

const isEnoent = (e: unknown): boolean => (e as { code?: unknown } | null)?.code === 'ENOENT';

/** `JournalFs` over node:fs. */
export const nodeJournalFs: JournalFs = {
  readFile(path) {
    try {
      return readFileSync(path);
    } catch (e) {
      if (isEnoent(e)) return null;
      throw e;
    }
  },
  openWrite: (path) => openSync(path, 'w', 0o600),
  openDir: (path) => openSync(path, 'r'),
  write(fd, data) {
    for (let o = 0; o < data.length; ) o += writeSync(fd, data, o, data.length - o);
  },
  fsync: (fd) => fsyncSync(fd),
  close: (fd) => closeSync(fd),
  rename: (from, to) => renameSync(from, to),
  unlink(path) {
    try {
      unlinkSync(path);
    } catch (e) {
      if (!isEnoent(e)) throw e;
    }
  },
  createExclusive(path, data) {
    let fd: number;
    try {
      fd = openSync(path, 'wx', 0o600);
    } catch (e) {
      if ((e as { code?: unknown } | null)?.code === 'EEXIST') return false;
      throw e;
    }
    try {
      for (let o = 0; o < data.length; ) o += writeSync(fd, data, o, data.length - o);
    } finally {
      closeSync(fd);
    }
    return true;
  },
};

/** Whether process `pid` exists: `kill(pid, 0)` succeeds, or fails only for want of permission. */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as { code?: unknown } | null)?.code === 'EPERM';
  }
  // A zombie (exited, not yet reaped by its parent) still answers kill(pid, 0) but holds nothing; a
  // killed agent whose parent is gone may stay one for a while. Where /proc says so, it is dead.
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.charAt(stat.lastIndexOf(')') + 2);
    return state !== 'Z' && state !== 'X';
  } catch {
    return true;
  }
}

/** Another live process holds the journal (see "One owner" in the module comment). */
export class JournalLockedError extends Error {
  override readonly name = 'JournalLockedError';
  constructor(
    readonly path: string,
    readonly pid: number,
  ) {
    super(
      `esp journal ${path}: locked by process ${pid}, which is running (its lock file is ${lockPath(path)}); ` +
        "two processes on one journal would reuse each other's sequence numbers. Stop that process, or remove the lock file if the pid was recycled",
    );
  }
}

/** The journal file cannot be trusted: the node must not start on it (see the module comment). */
export class JournalCorruptError extends Error {
  override readonly name = 'JournalCorruptError';
  constructor(
    readonly path: string,
    reason: string,
  ) {
    super(
      `esp journal ${path}: ${reason}; refusing to start, since starting afresh could reuse nonces. ` +
        'If the file cannot be repaired, move it away: the node then starts a new random epoch base, which its peers must learn',
    );
  }
}

export interface SeqJournalOptions {
  /** The node that owns (sends on) the journal's SAs; a journal written by another node is refused. */
  node: string;
  fs?: JournalFs;
  /** Sequence numbers per reservation, ≥ 1. Default `JOURNAL_BLOCK`. */
  block?: bigint;
  /** Random bytes for a new journal's epoch base. Default node:crypto's `randomBytes`. */
  random?: (n: number) => Uint8Array;
  /** The process id written into the lock file. Default `process.pid`. */
  pid?: number;
  /** Whether a lock's process still runs. Default `processAlive` (kill(pid, 0)). */
  pidAlive?: (pid: number) => boolean;
}

/** A 64-bit sequence number as two 32-bit halves, as the ESP core may keep it. */
export interface Seq64 {
  hi: number;
  lo: number;
}

function checkName(s: unknown, what: string): string {
  if (typeof s !== 'string' || s === '') throw new RangeError(`esp journal: ${what} must be a non-empty node name or address`);
  try {
    encodeURIComponent(s);
  } catch {
    throw new RangeError(`esp journal: ${what} is not well-formed Unicode (a lone surrogate)`);
  }
  return s;
}

function checkEpoch(e: unknown, what: string): number {
  if (typeof e !== 'number' || !Number.isSafeInteger(e) || e < 0)
    throw new RangeError(`${what}: epoch ${String(e)} is not an integer in 0-${Number.MAX_SAFE_INTEGER}`);
  return e;
}

/**
 * The journal id of the derived SA from `src` to `dst` in `epoch`: `src>dst#epoch`, names
 * percent-encoded (so `>`, `#` and `%` in a name cannot make two ids alike).
 */
export function saId(src: string, dst: string, epoch: number): string {
  checkName(src, 'src');
  checkName(dst, 'dst');
  checkEpoch(epoch, 'esp journal');
  return `${encodeURIComponent(src)}>${encodeURIComponent(dst)}#${epoch}`;
}

const SA_ID_RE = /^([^>#]+)>([^>#]+)#(0|[1-9][0-9]*)$/;
const KEY_ID_RE = /^key:[0-9a-f]{32}$/;

type ParsedId = { kind: 'sa'; src: string; dst: string; epoch: number } | { kind: 'key' };

function parseId(id: unknown): ParsedId | null {
  if (typeof id !== 'string') return null;
  if (KEY_ID_RE.test(id)) return { kind: 'key' };
  const m = SA_ID_RE.exec(id);
  if (m === null) return null;
  let src: string, dst: string;
  try {
    src = decodeURIComponent(m[1]!);
    dst = decodeURIComponent(m[2]!);
  } catch {
    return null;
  }
  const epoch = Number(m[3]!);
  // Only the canonical spelling: one SA, one id.
  if (!Number.isSafeInteger(epoch) || saId(src, dst, epoch) !== id) return null;
  return { kind: 'sa', src, dst, epoch };
}

interface State {
  base: number;
  epochs: Map<string, number>;
  reserved: Map<string, bigint>;
}

function serialize(node: string, s: State): Uint8Array {
  const sorted = <V>(m: Map<string, V>, f: (v: V) => unknown): Record<string, unknown> =>
    Object.fromEntries([...m.keys()].sort().map((k) => [k, f(m.get(k)!)]));
  const body = JSON.stringify({
    format: FORMAT,
    version: VERSION,
    node,
    base: s.base,
    epochs: sorted(s.epochs, (v) => v),
    reserved: sorted(s.reserved, (v) => v.toString()),
  });
  const sum = createHash('sha256').update(body, 'utf8').digest('hex');
  return new TextEncoder().encode(`${body}\nsha256:${sum}\n`);
}

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function parse(path: string, node: string, bytes: Uint8Array): State {
  const bad = (reason: string): never => {
    throw new JournalCorruptError(path, reason);
  };
  if (bytes.length === 0) bad('the file is empty');
  let text = '';
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    bad('the file is not UTF-8 text');
  }
  const m = /^([^\n]*)\nsha256:([0-9a-f]{64})\n$/.exec(text);
  if (m === null) bad('the file does not end in its checksum line (truncated or not a journal)');
  const body = m![1]!;
  if (createHash('sha256').update(body, 'utf8').digest('hex') !== m![2]) bad('the checksum does not match the content (damaged)');
  let j: unknown;
  try {
    j = JSON.parse(body);
  } catch {
    bad('the content is not JSON');
  }
  if (!isRecord(j) || j.format !== FORMAT) bad('not a seine ESP journal');
  const o = j as Record<string, unknown>;
  if (o.version !== VERSION) bad(`version ${String(o.version)} is not supported (expected ${VERSION})`);
  if (typeof o.node !== 'string') bad('node is missing');
  if (o.node !== node) throw new RangeError(`esp journal ${path}: belongs to node ${String(o.node)}, not ${node}`);
  const base = o.base;
  if (typeof base !== 'number' || !Number.isSafeInteger(base) || base < 0 || base >= EPOCH_BASE_RANGE) bad('base is not an integer in 0-2^52');
  if (!isRecord(o.epochs) || !isRecord(o.reserved)) bad('epochs or reserved is missing');
  const epochs = new Map<string, number>();
  for (const [peer, e] of Object.entries(o.epochs as Record<string, unknown>)) {
    if (peer === '' || peer === node || typeof e !== 'number' || !Number.isSafeInteger(e) || e < (base as number))
      bad(`epoch of peer ${JSON.stringify(peer)} is invalid`);
    epochs.set(peer, e as number);
  }
  const reserved = new Map<string, bigint>();
  for (const [id, r] of Object.entries(o.reserved as Record<string, unknown>)) {
    const p = parseId(id);
    if (p === null || (p.kind === 'sa' && p.src !== node)) bad(`reservation ${JSON.stringify(id)} has an invalid id`);
    if (typeof r !== 'string' || !/^(0|[1-9][0-9]*)$/.test(r) || BigInt(r) > SEQ_END) bad(`reservation of ${JSON.stringify(id)} is not a sequence number`);
    reserved.set(id, BigInt(r as string));
  }
  return { base: base as number, epochs, reserved };
}

/**
 * The journal of one node (see the module comment). Every method that changes it has written the
 * file durably before it returns; if the write fails it throws and nothing changes.
 */
export class SeqJournal {
  readonly path: string;
  readonly node: string;
  readonly block: bigint;
  readonly #fs: JournalFs;
  #state: State;
  #closed = false;
  #owner: object | null = null;

  private constructor(path: string, node: string, block: bigint, fs: JournalFs, state: State) {
    this.path = path;
    this.node = node;
    this.block = block;
    this.#fs = fs;
    this.#state = state;
  }

  /**
   * Opens the journal at `path`: a missing file starts an empty journal with a random epoch base (and
   * writes it at once, so an unwritable place fails now); a damaged one throws `JournalCorruptError`.
   */
  static open(path: string, opts: SeqJournalOptions): SeqJournal {
    if (typeof path !== 'string' || path === '') throw new RangeError('esp journal: path must be a file path');
    const node = checkName(opts.node, 'node');
    const block = opts.block ?? JOURNAL_BLOCK;
    if (typeof block !== 'bigint' || block < 1n || block > SEQ_END) throw new RangeError(`esp journal: block ${String(block)} is not in 1-2^64`);
    const fs = opts.fs ?? nodeJournalFs;
    const pid = opts.pid ?? process.pid;
    if (!Number.isInteger(pid) || pid <= 0) throw new RangeError(`esp journal: pid ${String(pid)} is not a process id`);
    lock(fs, path, pid, opts.pidAlive ?? processAlive);
    try {
      fs.unlink(tmpPath(path)); // the remains of a write a crash interrupted
      let bytes: Uint8Array | null;
      try {
        bytes = fs.readFile(path);
      } catch (e) {
        const code = (e as { code?: unknown } | null)?.code;
        if (typeof code !== 'string') throw e;
        throw new RangeError(`esp journal ${path}: cannot read it (${code})`);
      }
      if (bytes !== null) return new SeqJournal(path, node, block, fs, parse(path, node, bytes));
      const rnd = (opts.random ?? randomBytes)(7);
      if (rnd.length < 7) throw new RangeError('esp journal: random returned too few bytes');
      let r = 0n;
      for (let i = 0; i < 7; i++) r = (r << 8n) | BigInt(rnd[i]!);
      const state: State = { base: Number(r % BigInt(EPOCH_BASE_RANGE)), epochs: new Map(), reserved: new Map() };
      const j = new SeqJournal(path, node, block, fs, state);
      j.#commit(state);
      return j;
    } catch (e) {
      fs.unlink(lockPath(path));
      throw e;
    }
  }

  /** False once `close` has run. */
  get open(): boolean {
    return !this.#closed;
  }

  /**
   * Releases the lock (a clean shutdown). The journal refuses every change afterwards; what it wrote
   * stays. Closing twice is fine.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#fs.unlink(lockPath(this.path));
  }

  /**
   * Makes `owner` (an SA database) the journal's only user in this process; throws if another claimed
   * it. Claiming again with the same owner is fine.
   */
  claim(owner: object): void {
    if (this.#closed) throw new RangeError(`esp journal ${this.path}: closed`);
    if (this.#owner !== null && this.#owner !== owner)
      throw new RangeError(`esp journal ${this.path}: already serves another SA database; give each tunnel a journal file of its own`);
    this.#owner = owner;
  }

  /** The first epoch of every peer in this journal (random per journal file, see the module comment). */
  get base(): number {
    return this.#state.base;
  }

  /** The current epoch of the SA towards `peer` (`base` until the first bump). */
  epoch(peer: string): number {
    this.#checkPeer(peer);
    return this.#state.epochs.get(peer) ?? this.#state.base;
  }

  /**
   * Moves the SA towards `peer` to the next epoch and returns it, durably. The previous epoch's
   * reservation is kept (its SA may still finish sending); older ones are forgotten.
   */
  bumpEpoch(peer: string): number {
    const cur = this.epoch(peer);
    if (cur >= Number.MAX_SAFE_INTEGER) throw new RangeError(`esp journal: epochs towards ${peer} are used up`);
    const next = cur + 1;
    const reserved = new Map<string, bigint>();
    for (const [id, r] of this.#state.reserved) {
      const p = parseId(id);
      if (p !== null && p.kind === 'sa' && p.dst === peer && p.epoch < cur) continue;
      reserved.set(id, r);
    }
    this.#commit({ base: this.#state.base, epochs: new Map(this.#state.epochs).set(peer, next), reserved });
    return next;
  }

  /**
   * Where the SA `id` resumes: every sequence number below the returned bound may have been used
   * (0n for an SA never reserved). ESP numbers from 1, so the SA's next is `max(bound, 1n)`.
   */
  restore(id: string): bigint {
    this.#checkId(id);
    return this.#state.reserved.get(id) ?? 0n;
  }

  /**
   * Call before SA `id` uses sequence number `next` when `next` is not below its bound: writes the
   * bound `next + block` (at most 2^64) durably and returns it. Below the bound it writes nothing.
   */
  reserve(id: string, next: bigint | Seq64): bigint {
    this.#checkId(id);
    const n = toBigint(next);
    const cur = this.#state.reserved.get(id) ?? 0n;
    // Below the bound: those numbers were reserved before (by this SA in an earlier life, or by another
    // user of the id). Handing them out again is exactly the reuse the journal exists to prevent.
    if (n < cur)
      throw new RangeError(
        `esp journal: SA ${id} asks for sequence number ${n}, below its reservation ${cur}: those may have been used already (two users of one SA, or a sequence number that went back)`,
      );
    if (n >= SEQ_END) throw new RangeError(`esp journal: SA ${id} has used all 2^64 sequence numbers; rekey`);
    const bound = n + this.block < SEQ_END ? n + this.block : SEQ_END;
    this.#commit({ base: this.#state.base, epochs: this.#state.epochs, reserved: new Map(this.#state.reserved).set(id, bound) });
    return bound;
  }

  /** The peers with an epoch past `base`, and the SA ids with a reservation (for status output). */
  snapshot(): { base: number; epochs: Record<string, number>; reserved: Record<string, bigint> } {
    return { base: this.#state.base, epochs: Object.fromEntries(this.#state.epochs), reserved: Object.fromEntries(this.#state.reserved) };
  }

  #checkPeer(peer: string): void {
    checkName(peer, 'peer');
    if (peer === this.node) throw new RangeError(`esp journal: peer ${peer} is this journal's own node`);
  }

  #checkId(id: string): void {
    const p = parseId(id);
    if (p === null) throw new RangeError(`esp journal: SA id ${JSON.stringify(id)} is neither saId(src, dst, epoch) nor keyId(keys)`);
    if (p.kind === 'key') return;
    if (p.src !== this.node) throw new RangeError(`esp journal: SA ${id} is not sent by this journal's node ${this.node}`);
    const cur = this.epoch(p.dst);
    if (p.epoch > cur) throw new RangeError(`esp journal: SA ${id} is past the current epoch ${cur} towards ${p.dst}; bumpEpoch first`);
    if (p.epoch < Math.max(cur - 1, this.#state.base))
      throw new RangeError(`esp journal: SA ${id} belongs to a retired epoch (current ${cur} towards ${p.dst}); its keys must not be used again`);
  }

  /** Writes `next` durably (temp file, fsync, rename, fsync the directory), then adopts it. */
  #commit(next: State): void {
    if (this.#closed) throw new RangeError(`esp journal ${this.path}: closed`);
    const data = serialize(this.node, next);
    const tmp = tmpPath(this.path);
    const fs = this.#fs;
    const fd = fs.openWrite(tmp);
    try {
      fs.write(fd, data);
      fs.fsync(fd);
    } finally {
      fs.close(fd);
    }
    fs.rename(tmp, this.path);
    const dfd = fs.openDir(dirname(this.path));
    try {
      fs.fsync(dfd);
    } finally {
      fs.close(dfd);
    }
    this.#state = next;
  }
}

function tmpPath(path: string): string {
  return `${path}.tmp`;
}

function lockPath(path: string): string {
  return `${path}.lock`;
}

/**
 * Takes the journal's lock file for `pid`: created exclusively; if it exists and its process runs,
 * `JournalLockedError`; if its process is gone (or it holds no pid: a crash between creating and writing
 * it), it is stale and taken over — once: if another process takes it over meanwhile, that one wins.
 */
function lock(fs: JournalFs, path: string, pid: number, alive: (pid: number) => boolean): void {
  const file = lockPath(path);
  const mine = new TextEncoder().encode(`${pid}\n`);
  for (let attempt = 0; attempt < 2; attempt++) {
    if (fs.createExclusive(file, mine)) return;
    const held = fs.readFile(file);
    const m = held === null ? null : /^([1-9][0-9]*)\n?$/.exec(new TextDecoder().decode(held));
    const owner = m === null ? 0 : Number(m[1]);
    if (owner > 0 && alive(owner)) throw new JournalLockedError(path, owner);
    fs.unlink(file);
  }
  throw new RangeError(`esp journal ${path}: could not take the lock ${file} (another process took it over meanwhile)`);
}

function toBigint(next: bigint | Seq64): bigint {
  if (typeof next === 'bigint') {
    if (next < 0n) throw new RangeError(`esp journal: sequence number ${next} is negative`);
    return next;
  }
  const { hi, lo } = next;
  const u32 = (x: unknown): boolean => typeof x === 'number' && Number.isInteger(x) && x >= 0 && x <= 0xffff_ffff;
  if (!u32(hi) || !u32(lo)) throw new RangeError(`esp journal: sequence number {hi: ${String(hi)}, lo: ${String(lo)}} is not two 32-bit halves`);
  return (BigInt(hi) << 32n) | BigInt(lo);
}
