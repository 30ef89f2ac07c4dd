import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, test } from 'node:test';
import fc from 'fast-check';
import { spawn, spawnSync } from 'node:child_process';
import {
  JOURNAL_BLOCK,
  JournalCorruptError,
  JournalLockedError,
  nodeJournalFs,
  processAlive,
  saId,
  SEQ_END,
  SeqJournal,
  type JournalFs,
  type SeqJournalOptions,
} from '../../src/esp/journal.js';
import { explicitSaKeys, keyId } from '../../src/esp/keys.js';

const dir = mkdtempSync(join(tmpdir(), 'seine-journal-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let fileNo = 0;
const freshPath = (): string => join(dir, `journal-${fileNo++}`);

// ---- a disk that can crash ---------------------------------------------------------------------------------

class Crash extends Error {}

interface Inode {
  data: Uint8Array;
  /** What survives a crash: the data as of the last fsync. */
  synced: Uint8Array;
}

/**
 * A simulated disk with the weakest guarantees POSIX gives: file data survives a crash only once the
 * file was fsync'd, and directory changes (creation, rename, unlink) only once the directory was.
 * `crashIn = k` lets k more operations complete and crashes instead of the next one.
 */
class FakeDisk implements JournalFs {
  #live = new Map<string, Inode>();
  #durable = new Map<string, Inode>();
  #fds = new Map<number, { inode: Inode | null; dir: string | null }>();
  #nextFd = 3;
  crashIn: number | null = null;
  ops = 0;
  failWrite: Error | null = null;

  #tick(): void {
    this.ops++;
    if (this.crashIn === null) return;
    if (this.crashIn === 0) {
      this.crashIn = null;
      this.crash();
      throw new Crash('crash');
    }
    this.crashIn--;
  }

  /** Power loss: what was made durable is all that is left. */
  crash(): void {
    this.#live = new Map();
    for (const [p, ino] of this.#durable) {
      ino.data = ino.synced.slice();
      this.#live.set(p, ino);
    }
    this.#fds.clear();
  }

  readFile(path: string): Uint8Array | null {
    this.#tick();
    return this.#live.get(path)?.data.slice() ?? null;
  }
  openWrite(path: string): number {
    this.#tick();
    let ino = this.#live.get(path);
    if (ino !== undefined) {
      // O_TRUNC may reach the disk at once: the worst case.
      ino.data = new Uint8Array(0);
      ino.synced = new Uint8Array(0);
    } else {
      ino = { data: new Uint8Array(0), synced: new Uint8Array(0) };
      this.#live.set(path, ino);
    }
    const fd = this.#nextFd++;
    this.#fds.set(fd, { inode: ino, dir: null });
    return fd;
  }
  openDir(path: string): number {
    this.#tick();
    const fd = this.#nextFd++;
    this.#fds.set(fd, { inode: null, dir: path });
    return fd;
  }
  write(fd: number, data: Uint8Array): void {
    this.#tick();
    if (this.failWrite !== null) throw this.failWrite;
    const f = this.#fds.get(fd)!;
    const ino = f.inode!;
    const out = new Uint8Array(ino.data.length + data.length);
    out.set(ino.data);
    out.set(data, ino.data.length);
    ino.data = out;
  }
  fsync(fd: number): void {
    this.#tick();
    const f = this.#fds.get(fd);
    if (f === undefined) throw new Error(`fsync of a closed fd ${fd}`);
    if (f.dir !== null) {
      for (const p of [...this.#durable.keys()]) if (dirname(p) === f.dir) this.#durable.delete(p);
      for (const [p, ino] of this.#live) if (dirname(p) === f.dir) this.#durable.set(p, ino);
    } else {
      f.inode!.synced = f.inode!.data.slice();
    }
  }
  close(fd: number): void {
    this.#tick();
    this.#fds.delete(fd);
  }
  rename(from: string, to: string): void {
    this.#tick();
    const ino = this.#live.get(from);
    if (ino === undefined) throw Object.assign(new Error(`ENOENT: rename ${from}`), { code: 'ENOENT' });
    this.#live.set(to, ino);
    this.#live.delete(from);
  }
  unlink(path: string): void {
    this.#tick();
    this.#live.delete(path);
  }
  createExclusive(path: string, data: Uint8Array): boolean {
    this.#tick();
    if (this.#live.has(path)) return false;
    this.#live.set(path, { data: data.slice(), synced: new Uint8Array(0) });
    return true;
  }

  /** The file as the next reader would see it (no operation counted). */
  peek(path: string): Uint8Array | null {
    return this.#live.get(path)?.data.slice() ?? null;
  }
  /** Replaces a file durably, as an outside program would. */
  put(path: string, data: Uint8Array): void {
    const ino = { data: data.slice(), synced: data.slice() };
    this.#live.set(path, ino);
    this.#durable.set(path, ino);
  }
  paths(): string[] {
    return [...this.#live.keys()].sort();
  }
}

const FAKE_PATH = '/var/lib/seine/esp-journal';
/**
 * The tests below reopen journals in one process, as a restart after a crash would (the crashed process
 * is gone): its lock is stale. The lock itself is tested at the end, with real process liveness.
 */
const DEAD = { pidAlive: (): boolean => false };

/** Random bytes from a counter, so that each new journal draws another base, reproducibly. */
function counterRandom(seed = 1): (n: number) => Uint8Array {
  let c = seed;
  return (n) => Uint8Array.from({ length: n }, (_, i) => (c * 131 + i * 17 + (i === 0 ? c++ : 0)) & 0xff);
}

// ---- crash property: sequence numbers on one (key, salt) only ever grow ----------------------------------

type Op = { t: 'send'; peer: number; n: number } | { t: 'bump'; peer: number } | { t: 'crash' } | { t: 'crashIn'; k: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({ t: fc.constant('send' as const), peer: fc.nat({ max: 1 }), n: fc.integer({ min: 1, max: 12 }) }, { noNullPrototype: true }),
  },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('bump' as const), peer: fc.nat({ max: 1 }) }, { noNullPrototype: true }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('crash' as const) }, { noNullPrototype: true }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('crashIn' as const), k: fc.nat({ max: 12 }) }, { noNullPrototype: true }) },
);

/**
 * Runs an agent against `fs`: SAs towards two peers send, rekey, and crash at arbitrary points (between
 * operations or between any two file operations). Every sequence number sent is checked against
 * everything sent before on the same (src, dst, epoch) — the same (key, salt) — across all crashes.
 */
function runAgent(ops: Op[], block: bigint, fs: FakeDisk, wrap: (d: FakeDisk) => JournalFs = (d) => d): { sent: number; crashes: number; resumed: number } {
  const peers = ['b', 'c'];
  const opts: SeqJournalOptions = { node: 'a', fs: wrap(fs), block, random: counterRandom() };
  const open = (): SeqJournal => {
    for (;;) {
      try {
        return SeqJournal.open(FAKE_PATH, { ...DEAD, ...opts });
      } catch (e) {
        if (!(e instanceof Crash)) throw e;
      }
    }
  };
  let j = open();
  let sas = new Map<string, { next: bigint; bound: bigint }>();
  const lastSent = new Map<string, bigint>(); // ghost state: survives crashes
  const lastEpoch = new Map<string, number>();
  let sent = 0;
  let crashes = 0;
  let resumed = 0;
  const recover = (): void => {
    crashes++;
    j = open();
    sas = new Map();
  };
  for (const op of ops) {
    try {
      if (op.t === 'crash') {
        fs.crash();
        recover();
      } else if (op.t === 'crashIn') {
        fs.crashIn = op.k;
      } else if (op.t === 'bump') {
        j.bumpEpoch(peers[op.peer]!);
      } else {
        const peer = peers[op.peer]!;
        for (let i = 0; i < op.n; i++) {
          const epoch = j.epoch(peer);
          assert.ok(epoch >= (lastEpoch.get(peer) ?? 0), `epoch towards ${peer} went back from ${lastEpoch.get(peer)} to ${epoch}`);
          const id = saId('a', peer, epoch);
          let sa = sas.get(id);
          if (sa === undefined) {
            const bound = j.restore(id);
            if (bound > 0n) resumed++;
            sa = { next: bound > 0n ? bound : 1n, bound };
            sas.set(id, sa);
          }
          if (sa.next >= sa.bound) sa.bound = j.reserve(id, sa.next);
          assert.ok(sa.next < sa.bound, 'reserve covers the next sequence number');
          // Sent: the (key, nonce) pair (id, next) is now used.
          const last = lastSent.get(id);
          assert.ok(last === undefined || sa.next > last, `${id}: sequence number ${sa.next} after ${last} was already used`);
          lastSent.set(id, sa.next);
          lastEpoch.set(peer, epoch);
          sa.next++;
          sent++;
        }
      }
    } catch (e) {
      if (!(e instanceof Crash)) throw e;
      recover();
    }
  }
  return { sent, crashes, resumed };
}

test('journal: across crashes at any point, no (key, salt) ever sends a sequence number at or below one it sent', () => {
  const total = { sent: 0, crashes: 0, resumed: 0 };
  fc.assert(
    fc.property(fc.array(opArb, { minLength: 1, maxLength: 60 }), fc.constantFrom(1n, 2n, 4n, 7n), (ops, block) => {
      const r = runAgent(ops, block, new FakeDisk());
      total.sent += r.sent;
      total.crashes += r.crashes;
      total.resumed += r.resumed;
    }),
    { numRuns: 400 },
  );
  // The property ran through real crashes, traffic and resumptions, not a vacuous path.
  assert.ok(total.sent > 3000 && total.crashes > 200 && total.resumed > 80, JSON.stringify(total));
});

/** Finds a counterexample to the crash property for a journal on `wrap(disk)`; null if none. */
function crashCounterexample(wrap: (d: FakeDisk) => JournalFs): string | null {
  const r = fc.check(
    fc.property(fc.array(opArb, { minLength: 1, maxLength: 60 }), (ops) => {
      runAgent(ops, 4n, new FakeDisk(), wrap);
    }),
    { numRuns: 400, seed: 42 },
  );
  return r.failed ? String(r.errorInstance) : null;
}

test('journal: the crash model has teeth — it catches a journal whose writes skip fsync or the directory fsync', () => {
  assert.equal(
    crashCounterexample((d) => d),
    null,
  );
  const noFileFsync = (d: FakeDisk): JournalFs => {
    const dirFds = new Set<number>();
    return {
      readFile: (p) => d.readFile(p),
      openWrite: (p) => d.openWrite(p),
      write: (fd, b) => d.write(fd, b),
      close: (fd) => d.close(fd),
      rename: (a, b) => d.rename(a, b),
      unlink: (p) => d.unlink(p),
      createExclusive: (p, b) => d.createExclusive(p, b),
      openDir: (p) => {
        const fd = d.openDir(p);
        dirFds.add(fd);
        return fd;
      },
      fsync: (fd) => {
        if (dirFds.has(fd)) d.fsync(fd);
      },
    };
  };
  const noDirFsync = (d: FakeDisk): JournalFs => {
    const dirFds = new Set<number>();
    return {
      readFile: (p) => d.readFile(p),
      openWrite: (p) => d.openWrite(p),
      write: (fd, b) => d.write(fd, b),
      close: (fd) => d.close(fd),
      rename: (a, b) => d.rename(a, b),
      unlink: (p) => d.unlink(p),
      createExclusive: (p, b) => d.createExclusive(p, b),
      openDir: (p) => {
        const fd = d.openDir(p);
        dirFds.add(fd);
        return fd;
      },
      fsync: (fd) => {
        if (!dirFds.has(fd)) d.fsync(fd);
      },
    };
  };
  assert.match(crashCounterexample(noFileFsync) ?? 'no counterexample', /already used|JournalCorruptError/);
  assert.match(crashCounterexample(noDirFsync) ?? 'no counterexample', /already used|went back/);
});

// ---- atomic replacement ------------------------------------------------------------------------------------

test('journal: a crash at any step of a write leaves the old journal or the new one, whole; leftovers are removed', () => {
  const disk = new FakeDisk();
  const opts: SeqJournalOptions = { node: 'a', fs: disk, block: 8n, random: counterRandom(5) };
  const j = SeqJournal.open(FAKE_PATH, { ...DEAD, ...opts });
  j.reserve(saId('a', 'b', j.base), 1n);
  const old = disk.peek(FAKE_PATH)!;
  const before = disk.ops;
  j.bumpEpoch('b');
  const steps = disk.ops - before;
  const fresh = disk.peek(FAKE_PATH)!;
  assert.equal(steps, 8, 'open tmp, write, fsync, close, rename, open dir, fsync dir, close');
  for (let k = 0; k <= steps; k++) {
    const d = new FakeDisk();
    d.put(FAKE_PATH, old);
    const jj = SeqJournal.open(FAKE_PATH, { ...DEAD, ...opts, fs: d });
    d.crashIn = k;
    let crashed = false;
    try {
      jj.bumpEpoch('b');
    } catch (e) {
      assert.ok(e instanceof Crash);
      crashed = true;
    }
    assert.equal(crashed, k < steps);
    d.crashIn = null;
    if (!crashed) d.crash();
    const after = d.peek(FAKE_PATH);
    assert.ok(after !== null, `crash before step ${k}: the journal vanished`);
    // Durable once the directory is fsync'd (step 6), the old one before.
    assert.deepEqual(Buffer.from(after).toString(), Buffer.from(k <= 6 ? old : fresh).toString(), `crash before step ${k}`);
    const re = SeqJournal.open(FAKE_PATH, { ...DEAD, ...opts, fs: d });
    assert.equal(re.epoch('b'), k <= 6 ? j.base : j.base + 1);
    assert.deepEqual(d.paths(), [FAKE_PATH, `${FAKE_PATH}.lock`], "the temporary file is gone (the lock is the open journal's)");
  }
});

test('journal on a real file system: created 0600, reopened, and a crash between write and rename keeps the old file', () => {
  const p = freshPath();
  const j = SeqJournal.open(p, { ...DEAD, node: 'n1' });
  assert.ok(existsSync(p));
  assert.equal(statSync(p).mode & 0o777, 0o600);
  const id = saId('n1', 'n2', j.epoch('n2'));
  assert.equal(j.restore(id), 0n);
  assert.equal(j.reserve(id, 1n), 1n + JOURNAL_BLOCK);
  const written = readFileSync(p, 'utf8');
  // A write that dies between the temporary file and the rename.
  const dying: JournalFs = {
    ...nodeJournalFs,
    rename: () => {
      throw new Crash('power loss before rename');
    },
  };
  const j2 = SeqJournal.open(p, { ...DEAD, node: 'n1', fs: dying });
  assert.throws(() => j2.reserve(id, 1n + JOURNAL_BLOCK), Crash);
  assert.ok(existsSync(`${p}.tmp`), 'the new state sits in the temporary file');
  assert.equal(readFileSync(p, 'utf8'), written, 'the journal itself is untouched');
  const j3 = SeqJournal.open(p, { ...DEAD, node: 'n1' });
  assert.ok(!existsSync(`${p}.tmp`), 'open removes the leftover');
  assert.equal(j3.restore(id), 1n + JOURNAL_BLOCK);
  assert.equal(j3.base, j.base);
});

test('journal: a failed write (ENOSPC) throws and changes nothing, in memory or on disk', () => {
  const disk = new FakeDisk();
  const j = SeqJournal.open(FAKE_PATH, { ...DEAD, node: 'a', fs: disk, block: 10n, random: counterRandom() });
  const id = saId('a', 'b', j.base);
  assert.equal(j.reserve(id, 1n), 11n);
  const onDisk = disk.peek(FAKE_PATH);
  disk.failWrite = Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
  assert.throws(() => j.reserve(id, 11n), /ENOSPC/);
  assert.throws(() => j.bumpEpoch('b'), /ENOSPC/);
  assert.equal(j.restore(id), 11n);
  assert.equal(j.epoch('b'), j.base);
  assert.deepEqual(disk.peek(FAKE_PATH), onDisk);
  disk.failWrite = null;
  assert.equal(j.reserve(id, 11n), 21n);
});

// ---- reservations --------------------------------------------------------------------------------------------

test('reserve: at or past the bound writes next + block; below it is an error, never a silent success; {hi, lo} and the 2^64 end', () => {
  const disk = new FakeDisk();
  const j = SeqJournal.open(FAKE_PATH, { ...DEAD, node: 'a', fs: disk, block: 100n, random: counterRandom() });
  const id = saId('a', 'b', j.base);
  assert.equal(j.reserve(id, 1n), 101n);
  const ops = disk.ops;
  // Numbers below the bound were handed out already: a second user of the id (another tunnel, another
  // process) or a sequence number gone back. Returning the bound would let both use them.
  for (const n of [1n, 50n, 100n])
    assert.throws(() => j.reserve(id, n), new RegExp(`asks for sequence number ${n}, below its reservation 101: those may have been used already`));
  assert.equal(disk.ops, ops, 'nothing is written');
  assert.equal(j.restore(id), 101n);
  assert.equal(j.reserve(id, 101n), 201n);
  assert.equal(j.reserve(id, 5000n), 5100n, 'a jump reserves from where the SA is');
  assert.equal(j.reserve(id, { hi: 1, lo: 5 }), (1n << 32n) + 105n);
  assert.equal(j.reserve(id, SEQ_END - 10n), SEQ_END, 'capped at 2^64');
  assert.throws(() => j.reserve(id, SEQ_END - 1n), /below its reservation/, 'within the last reservation: nothing to write, and no going back');
  assert.throws(() => j.reserve(id, SEQ_END), /has used all 2\^64 sequence numbers; rekey/);
  assert.throws(() => j.reserve(id, -1n), RangeError);
  assert.throws(() => j.reserve(id, { hi: 2 ** 32, lo: 0 }), /not two 32-bit halves/);
  const re = SeqJournal.open(FAKE_PATH, { ...DEAD, node: 'a', fs: disk });
  assert.equal(re.restore(id), SEQ_END);
  assert.equal(re.block, JOURNAL_BLOCK);
  assert.equal(JOURNAL_BLOCK, 1n << 20n);
});

test('hand-configured SAs are journalled under keyId, whatever their SPI, and survive rekeys', () => {
  const disk = new FakeDisk();
  const j = SeqJournal.open(FAKE_PATH, { ...DEAD, node: 'a', fs: disk, block: 10n, random: counterRandom() });
  const k1 = explicitSaKeys({ cipher: 'aes-gcm-128', key: '00'.repeat(16), salt: '01020304', spi: 0x1000 });
  const k2 = explicitSaKeys({ ...{ cipher: 'aes-gcm-128', key: '00'.repeat(16), salt: '01020304' }, spi: 0x2000 });
  assert.equal(j.reserve(keyId(k1), 1n), 11n);
  j.bumpEpoch('b');
  j.bumpEpoch('b');
  const re = SeqJournal.open(FAKE_PATH, { ...DEAD, node: 'a', fs: disk });
  assert.equal(re.restore(keyId(k2)), 11n, 'same key and salt, other SPI: resumes');
});

// ---- epochs --------------------------------------------------------------------------------------------------

test('epochs: start at the random base, grow by one, persist; only the current and previous epoch may be used', () => {
  const disk = new FakeDisk();
  const j = SeqJournal.open(FAKE_PATH, { ...DEAD, node: 'a', fs: disk, block: 10n, random: counterRandom(9) });
  const b0 = j.base;
  assert.ok(Number.isSafeInteger(b0) && b0 >= 0 && b0 < 2 ** 52);
  assert.equal(j.epoch('b'), b0);
  assert.equal(j.epoch('c'), b0);
  j.reserve(saId('a', 'b', b0), 1n);
  assert.throws(() => j.restore(saId('a', 'b', b0 + 1)), /past the current epoch .*bumpEpoch first/);
  assert.equal(j.bumpEpoch('b'), b0 + 1);
  j.reserve(saId('a', 'b', b0 + 1), 1n);
  assert.equal(j.restore(saId('a', 'b', b0)), 11n, 'the previous epoch may finish');
  assert.equal(j.bumpEpoch('b'), b0 + 2);
  assert.throws(() => j.restore(saId('a', 'b', b0)), /belongs to a retired epoch .*must not be used again/);
  assert.throws(() => j.reserve(saId('a', 'b', b0), 11n), /retired epoch/);
  assert.deepEqual(Object.keys(j.snapshot().reserved), [saId('a', 'b', b0 + 1)], 'the retired reservation is pruned');
  assert.equal(j.restore(saId('a', 'b', b0 + 1)), 11n);
  assert.equal(j.epoch('c'), b0, 'per peer');
  assert.throws(() => j.restore(saId('a', 'c', b0 - 1 < 0 ? b0 + 5 : b0 - 1)), RangeError);
  const re = SeqJournal.open(FAKE_PATH, { ...DEAD, node: 'a', fs: disk });
  assert.equal(re.epoch('b'), b0 + 2);
  assert.equal(re.base, b0);
  assert.throws(() => re.epoch('a'), /own node/);
  assert.throws(() => re.restore(saId('x', 'b', b0)), /not sent by this journal's node a/);
  assert.throws(() => re.restore('a>b#1#2'), /neither saId/);
  assert.throws(() => re.restore(`a>b#0${b0}`), /neither saId/, 'non-canonical epoch');
  assert.throws(() => re.restore('key:1234'), /neither saId/);
});

test('a lost journal starts a new random base: no epoch used before comes back', () => {
  const disk = new FakeDisk();
  const used = new Set<string>();
  let random = 1;
  for (let life = 0; life < 20; life++) {
    const j = SeqJournal.open(FAKE_PATH, { ...DEAD, node: 'a', fs: disk, block: 4n, random: counterRandom(random++) });
    for (let r = 0; r < 5; r++) {
      for (const peer of ['b', 'c']) {
        const id = saId('a', peer, j.epoch(peer));
        assert.ok(!used.has(id), `${id} reused after the journal was lost`);
        used.add(id);
        j.reserve(id, 1n);
        j.bumpEpoch(peer);
      }
    }
    disk.unlink(FAKE_PATH); // the journal is lost
  }
  // With the default random source two fresh journals draw different bases.
  const a = SeqJournal.open(freshPath(), { ...DEAD, node: 'a' }).base;
  const b = SeqJournal.open(freshPath(), { ...DEAD, node: 'a' }).base;
  assert.notEqual(a, b);
});

test('saId: percent-encoded, so no two (src, dst, epoch) share an id', () => {
  assert.equal(saId('node1', 'node2', 7), 'node1>node2#7');
  assert.equal(saId('fd00::1', '10.0.0.2', 0), 'fd00%3A%3A1>10.0.0.2#0');
  assert.notEqual(saId('a>b', 'c', 1), saId('a', 'b>c', 1));
  const part = fc.string({ minLength: 1, maxLength: 4, unit: fc.constantFrom('a', '>', '#', '%', '3', 'E') });
  fc.assert(
    fc.property(fc.uniqueArray(fc.tuple(part, part, fc.nat({ max: 3 })), { selector: (t) => JSON.stringify(t), maxLength: 30 }), (ts) => {
      const ids = ts.map(([s, d, e]) => saId(s, d, e));
      assert.equal(new Set(ids).size, ids.length);
    }),
  );
  assert.throws(() => saId('', 'b', 1), /src must be a non-empty/);
  assert.throws(() => saId('a', '\ud800', 1), /dst is not well-formed Unicode/);
  assert.throws(() => saId('a', 'b', -1), /epoch -1 is not an integer/);
});

// ---- damaged, missing, foreign -------------------------------------------------------------------------------

/** A journal file with the right checksum around `body`. */
function withSum(body: string): string {
  return `${body}\nsha256:${createHash('sha256').update(body).digest('hex')}\n`;
}

function goodJournal(): { path: string; text: string } {
  const path = freshPath();
  const j = SeqJournal.open(path, { ...DEAD, node: 'n1', random: counterRandom(3) });
  j.reserve(saId('n1', 'n2', j.base), 1n);
  j.bumpEpoch('n3');
  return { path, text: readFileSync(path, 'utf8') };
}

function expectCorrupt(path: string, re: RegExp): void {
  assert.throws(
    () => SeqJournal.open(path, { ...DEAD, node: 'n1' }),
    (e: unknown) => {
      assert.ok(e instanceof JournalCorruptError, String(e));
      assert.equal(e.path, path);
      assert.ok(e.message.startsWith(`esp journal ${path}: `), e.message);
      assert.match(e.message, re);
      assert.match(e.message, /refusing to start/);
      return true;
    },
  );
}

test('a missing journal is an empty one, written at once', () => {
  const path = freshPath();
  const j = SeqJournal.open(path, { ...DEAD, node: 'n1', random: counterRandom(3) });
  assert.deepEqual(j.snapshot().reserved, {});
  assert.deepEqual(j.snapshot().epochs, {});
  assert.match(
    readFileSync(path, 'utf8'),
    /^\{"format":"seine-esp-journal","version":1,"node":"n1","base":\d+,"epochs":\{\},"reserved":\{\}\}\nsha256:[0-9a-f]{64}\n$/,
  );
  assert.throws(() => SeqJournal.open(join(dir, 'no-such-dir', 'j'), { node: 'n1' }), /ENOENT/);
});

test('a truncated journal is refused, naming the file, at every length', () => {
  const { path, text } = goodJournal();
  writeFileSync(path, '');
  expectCorrupt(path, /the file is empty/);
  for (let n = 1; n < text.length; n++) {
    writeFileSync(path, text.slice(0, n));
    expectCorrupt(path, /truncated|checksum|not JSON/);
  }
  writeFileSync(path, text);
  assert.equal(SeqJournal.open(path, { ...DEAD, node: 'n1' }).epoch('n3'), SeqJournal.open(path, { ...DEAD, node: 'n1' }).base + 1);
});

test('a journal with any single bit flipped is refused (the checksum, not luck, catches a changed digit)', () => {
  const { path, text } = goodJournal();
  const bytes = Buffer.from(text);
  for (let i = 0; i < bytes.length; i++) {
    for (const bit of [0x01, 0x02, 0x10]) {
      const b = Buffer.from(bytes);
      b[i]! ^= bit;
      writeFileSync(path, b);
      expectCorrupt(path, /.*/);
    }
  }
  // The reservation 1048577 with one digit changed still parses as JSON: only the checksum knows.
  assert.ok(text.includes('"1048577"'));
  writeFileSync(path, text.replace('"1048577"', '"1048177"'));
  expectCorrupt(path, /the checksum does not match the content \(damaged\)/);
});

test('a journal with a good checksum but bad content is refused, saying what is wrong', () => {
  const { path, text } = goodJournal();
  const body = JSON.parse(text.split('\n')[0]!) as Record<string, unknown>;
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ format: 'other' }, /not a seine ESP journal/],
    [{ version: 2 }, /version 2 is not supported/],
    [{ base: -1 }, /base is not an integer/],
    [{ base: 2 ** 52 }, /base is not an integer/],
    [{ epochs: [] }, /epochs or reserved is missing/],
    [{ epochs: { n2: 1.5 } }, /epoch of peer "n2" is invalid/],
    [{ epochs: { n2: 0 }, base: 5 }, /epoch of peer "n2" is invalid/],
    [{ reserved: { 'n1>n2#5': '-1' } }, /reservation of "n1>n2#5" is not a sequence number/],
    [{ reserved: { 'n1>n2#5': 7 } }, /is not a sequence number/],
    [{ reserved: { 'n1>n2#5': (SEQ_END + 1n).toString() } }, /is not a sequence number/],
    [{ reserved: { 'n9>n2#5': '1' } }, /reservation "n9>n2#5" has an invalid id/],
    [{ reserved: { whatever: '1' } }, /has an invalid id/],
  ];
  for (const [patch, re] of cases) {
    writeFileSync(path, withSum(JSON.stringify({ ...body, ...patch })));
    expectCorrupt(path, re);
  }
  writeFileSync(path, withSum('[1,2'));
  expectCorrupt(path, /not JSON/);
  writeFileSync(path, Buffer.from([0xff, 0xfe, 0x0a]));
  expectCorrupt(path, /not UTF-8/);
  // Another node's journal: not damaged, but not ours either.
  writeFileSync(path, text);
  assert.throws(
    () => SeqJournal.open(path, { ...DEAD, node: 'n2' }),
    (e: unknown) => e instanceof RangeError && e.message === `esp journal ${path}: belongs to node n1, not n2`,
  );
});

test('open: options are checked', () => {
  assert.throws(() => SeqJournal.open('', { ...DEAD, node: 'a' }), /path must be a file path/);
  assert.throws(() => SeqJournal.open(freshPath(), { ...DEAD, node: '' }), /node must be a non-empty/);
  assert.throws(() => SeqJournal.open(freshPath(), { ...DEAD, node: 'a', block: 0n }), /block 0 is not in 1-2\^64/);
  assert.throws(() => SeqJournal.open(freshPath(), { ...DEAD, node: 'a', random: () => new Uint8Array(3) }), /too few bytes/);
});

// ---- one owner -----------------------------------------------------------------------------------------------

test('lock: a journal whose process lives is refused to a second opener; close releases it; a stale lock (dead pid, or no pid) is taken over', () => {
  const p = freshPath();
  const j = SeqJournal.open(p, { node: 'n1' });
  assert.equal(readFileSync(`${p}.lock`, 'utf8'), `${process.pid}\n`);
  assert.throws(
    () => SeqJournal.open(p, { node: 'n1' }),
    (e: unknown) => e instanceof JournalLockedError && e.pid === process.pid && e.path === p && /locked by process \d+, which is running/.test(e.message),
  );
  assert.ok(j.open);
  j.close();
  j.close();
  assert.ok(!j.open && !existsSync(`${p}.lock`));
  assert.throws(() => j.reserve(saId('n1', 'n2', j.base), 1n), /closed/);
  // A process that died holding it (kill -9, power loss): its pid is gone.
  const dead = spawnSync(process.execPath, ['-e', '']).pid!;
  writeFileSync(`${p}.lock`, `${dead}\n`);
  const j2 = SeqJournal.open(p, { node: 'n1' });
  assert.equal(readFileSync(`${p}.lock`, 'utf8'), `${process.pid}\n`, 'taken over');
  j2.close();
  // A crash between creating the lock and writing the pid leaves it empty: stale too.
  writeFileSync(`${p}.lock`, '');
  SeqJournal.open(p, { node: 'n1' }).close();
  // init (pid 1) always runs: refused, and the lock is left to its holder.
  writeFileSync(`${p}.lock`, '1\n');
  assert.throws(() => SeqJournal.open(p, { node: 'n1' }), JournalLockedError);
  assert.equal(readFileSync(`${p}.lock`, 'utf8'), '1\n');
  assert.ok(processAlive(process.pid) && processAlive(1) && !processAlive(dead));
});

test('lock: two processes on one journal file — the second is refused while the first runs, and takes over once it is killed', async () => {
  const p = freshPath();
  const mod = new URL('../../src/esp/journal.js', import.meta.url).href;
  const child = spawn(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `import { SeqJournal } from ${JSON.stringify(mod)}; SeqJournal.open(process.argv[1], { node: 'n1' }); process.stdout.write('ready\\n'); setInterval(() => {}, 1000);`,
      p,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  try {
    await new Promise<void>((ok, fail) => {
      child.stdout.on('data', (d: Buffer) => {
        if (d.toString().includes('ready')) ok();
      });
      child.on('exit', (c) => fail(new Error(`child exited ${c}`)));
    });
    assert.throws(
      () => SeqJournal.open(p, { node: 'n1' }),
      (e: unknown) => e instanceof JournalLockedError && e.pid === child.pid,
    );
  } finally {
    child.kill('SIGKILL');
    await new Promise((ok) => child.on('exit', ok));
  }
  const j = SeqJournal.open(p, { node: 'n1' });
  assert.equal(readFileSync(`${p}.lock`, 'utf8'), `${process.pid}\n`);
  j.close();
});

test('claim: in one process a journal serves one SA database', () => {
  const j = SeqJournal.open(freshPath(), { node: 'n1' });
  const a = {};
  j.claim(a);
  j.claim(a);
  assert.throws(() => j.claim({}), /already serves another SA database; give each tunnel a journal file of its own/);
  j.close();
  assert.throws(() => j.claim(a), /closed/);
});
