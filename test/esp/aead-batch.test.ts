/**
 * Batched AEAD (esp/aead-batch.ts over native/seine.c, and the ESP batches of esp/esp.ts):
 *
 * - every published vector (draft-mcgrew-gcm-test-01's AES-GCM-ESP cases as RFC 4106 uses them, RFC
 *   7634's ESP example, RFC 8439 §2.8.2 as ESP with ESN) sealed and opened in ONE batch call that mixes
 *   all their SAs and ciphers, and through the ESP receive path in one batch;
 * - a batch mixing SAs of every cipher with one tampered packet fails only that packet, and leaves it
 *   byte for byte as received (no plaintext);
 * - bad arguments throw TypeError / RangeError naming the argument and touch nothing;
 * - properties: a batch seal opens per packet and a per-packet seal opens in a batch (random sizes,
 *   ciphers, buffers); `EspSealBatch` gives `espProtect`'s bytes and `EspOpenBatch` `espUnprotect`'s
 *   results (IPv4/IPv6, UDP encapsulation, ESN);
 * - the addon links no libcrypto: its EVP symbols are undefined and node defines them.
 *
 * The native tests skip, saying why, only where the addon is not built; the fallback's run everywhere.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { AEAD_KEY_LEN, createAead, type AeadAlgorithm } from '../../src/esp/aead.js';
import { AEAD_CIPHER_ID, AeadBatch, AeadKey, type NativeAead } from '../../src/esp/aead-batch.js';
import { EspOpenBatch, espProtect, EspRxInfo, EspSealBatch, espUnprotect, type EspProtectOptions } from '../../src/esp/esp.js';
import { EspCrypto, InboundSa, OutboundSa, type EspKeying } from '../../src/esp/sa.js';
import { PacketPool } from '../../src/packet/buf.js';
import { DropReason } from '../../src/wire/drop.js';
import { compose, type Layer } from '../../src/wire/stack.js';
import { loadNative, nativeUnavailable } from '../../src/live/native.js';
import { eth, ip4, ip6, udp } from '../peers/catalogue.js';
import { hex, rng } from '../helpers.js';
import { MCGREW, RFC7634, RFC8439, type EspVector } from './vectors.js';

const why = nativeUnavailable();
if (why !== null) console.log(`# SKIPPING the native AEAD tests: ${why}`);
const native: NativeAead | null = why === null ? loadNative() : null;
const nativeOpts = { skip: why ?? false };

const ALL: EspVector[] = [...MCGREW, RFC7634, RFC8439];
const ALGS = Object.keys(AEAD_KEY_LEN) as AeadAlgorithm[];

/** The vectors laid out one after another in one dirty buffer (each at an odd offset), header and plaintext in place. */
function layout(vs: EspVector[], sealed: boolean): { buf: Uint8Array; offs: number[] } {
  const offs: number[] = [];
  let o = 3;
  for (const v of vs) {
    offs.push(o);
    o += v.packet.length + 5;
  }
  const buf = new Uint8Array(o).fill(0xa5);
  vs.forEach((v, i) => {
    const off = offs[i]!;
    if (sealed) buf.set(v.packet, off);
    else {
      buf.set(v.packet.subarray(0, 8), off);
      buf.set(v.plaintext, off + 16);
    }
  });
  return { buf, offs };
}

for (const [name, nat] of [
  ['native', native],
  ['per-packet fallback', null],
] as const) {
  test(`${name}: every published vector sealed and opened in one batch mixing ${ALL.length} SAs and 4 ciphers`, name === 'native' ? nativeOpts : {}, () => {
    const cs = ALL.map((v) => new EspCrypto(v.keying, v.esn));
    const { buf, offs } = layout(ALL, false);
    const seal = new AeadBatch(true, nat, 64);
    ALL.forEach((v, i) => assert.equal(cs[i]!.queueSeal(seal, buf, offs[i]!, offs[i]! + v.packet.length, v.seqHi, v.ivHi, v.ivLo), i));
    seal.run();
    ALL.forEach((v, i) => {
      assert.equal(seal.ok(i), true, v.name);
      assert.equal(hex(buf, offs[i]!, v.packet.length), hex(v.packet), v.name);
      assert.equal(buf[offs[i]! + v.packet.length], 0xa5, `${v.name}: nothing written past the ICV`);
    });
    const open = new AeadBatch(false, nat, 64);
    ALL.forEach((v, i) => assert.equal(cs[i]!.queueOpen(open, buf, offs[i]!, offs[i]! + v.packet.length, v.seqHi), i));
    open.run();
    ALL.forEach((v, i) => {
      assert.equal(open.ok(i), true, v.name);
      assert.equal(hex(buf, offs[i]! + 16, v.plaintext.length), hex(v.plaintext), v.name);
    });
  });
}

test('native: the McGrew and RFC 7634 packets through the ESP receive path in one batch (window inferring seqHi)', nativeOpts, () => {
  const vs = [...MCGREW, RFC7634].filter((v) => v.spi !== 0);
  const pool = new PacketPool({ count: vs.length, frameCapacity: 2048 });
  const ob = new EspOpenBatch(native, 64);
  const sas = vs.map((v) => new InboundSa({ spi: v.spi, keying: v.keying, esn: v.esn, resumeAfter: ((BigInt(v.seqHi) << 32n) | BigInt(v.seqLo)) - 1n }));
  const pkts = vs.map((v, i) => {
    const p = pool.alloc()!;
    p.load(compose([eth(0x0800), ip4('192.0.2.1', '192.0.2.2', 50, { ident: 7 }), { kind: 'data', bytes: v.packet }]));
    // Several vectors share an SPI: each packet's lookup finds its own SA.
    assert.equal(
      ob.check(p, p.start + 14, () => sas[i]!, 0),
      0,
      v.name,
    );
    return p;
  });
  ob.open();
  vs.forEach((v, i) => {
    const info = new EspRxInfo();
    assert.equal(ob.finish(i, pkts[i]!, 0, info), 0, v.name);
    const padLen = v.plaintext[v.plaintext.length - 2]!;
    const payload = v.plaintext.subarray(0, v.plaintext.length - 2 - padLen);
    const want = compose([eth(0x0800), ip4('192.0.2.1', '192.0.2.2', v.plaintext[v.plaintext.length - 1]!, { ident: 7 }), { kind: 'data', bytes: payload }]);
    assert.equal(hex(pkts[i]!.bytes()), hex(want), v.name);
    assert.deepEqual([sas[i]!.topHi, sas[i]!.topLo, sas[i]!.packets], [v.seqHi, v.seqLo, 1], v.name);
  });
});

function keyingOf(cipher: AeadAlgorithm, seed: number): EspKeying {
  const r = rng(seed);
  return { cipher, key: new Uint8Array(AEAD_KEY_LEN[cipher]).map(() => r() & 0xff), salt: new Uint8Array(4).map(() => r() & 0xff) };
}

for (const [name, nat] of [
  ['native', native],
  ['per-packet fallback', null],
] as const) {
  test(
    `${name}: a batch mixing SAs of every cipher with one tampered packet fails only that packet, which holds no plaintext`,
    name === 'native' ? nativeOpts : {},
    () => {
      const n = 24;
      const cs = Array.from({ length: n }, (_, i) => new EspCrypto(keyingOf(ALGS[i % ALGS.length]!, i + 1), i % 3 === 0));
      const len = (i: number): number => 40 + i * 61;
      const offs: number[] = [];
      let o = 7;
      for (let i = 0; i < n; i++) {
        offs.push(o);
        o += len(i) + 3;
      }
      const buf = new Uint8Array(o);
      const r = rng(99);
      for (let i = 0; i < buf.length; i++) buf[i] = r() & 0xff;
      const plain = buf.slice();
      const seal = new AeadBatch(true, nat, n);
      for (let i = 0; i < n; i++) cs[i]!.queueSeal(seal, buf, offs[i]!, offs[i]! + len(i), i, i, 1000 + i);
      seal.run();
      for (let i = 0; i < n; i++) assert.equal(seal.ok(i), true);
      const bad = 13;
      buf[offs[bad]! + 16 + 5]! ^= 0x40;
      const received = buf.slice();
      const open = new AeadBatch(false, nat, n);
      for (let i = 0; i < n; i++) cs[i]!.queueOpen(open, buf, offs[i]!, offs[i]! + len(i), i);
      open.run();
      for (let i = 0; i < n; i++) {
        const msg = [offs[i]! + 16, offs[i]! + len(i) - 16] as const;
        if (i === bad) {
          assert.equal(open.ok(i), false);
          const got = buf.subarray(...msg);
          assert.notEqual(hex(got), hex(plain.subarray(...msg)), 'no plaintext left');
          // Native and node:crypto leave the packet as received; libsodium (the ChaCha fallback) zero-fills it.
          const zeroed = nat === null && cs[i]!.cipher === 'chacha20-poly1305';
          assert.equal(hex(got), zeroed ? '00'.repeat(got.length) : hex(received.subarray(...msg)));
        } else {
          assert.equal(open.ok(i), true, `packet ${i}`);
          assert.equal(hex(buf.subarray(...msg)), hex(plain.subarray(...msg)), `packet ${i}`);
        }
      }
    },
  );
}

test('native: bad arguments throw TypeError / RangeError naming them, and touch nothing', nativeOpts, () => {
  const nat = native!;
  const enc = nat.aeadCreate(AEAD_CIPHER_ID['aes-gcm-128'], new Uint8Array(16), true);
  const dec = nat.aeadCreate(AEAD_CIPHER_ID['aes-gcm-128'], new Uint8Array(16), false);
  const slab = new Uint8Array(512).map((_, i) => i & 0xff);
  const before = slab.slice();
  const nonces = new Uint8Array(24);
  const aad = new Uint8Array(32);
  const status = new Uint8Array(2).fill(7);
  // Packet 0 is good; packet 1 is what each case breaks (so a check after the first packet would show).
  const good = [0, 0, 100, 0, 8, 100];
  const cases: Array<[string, () => unknown, RegExp, ErrorConstructor]> = [
    [
      'tag outside the slab',
      () => nat.aeadSealBatch([enc], slab, new Int32Array([...good, 0, 200, 100, 0, 8, 500]), nonces, aad, status, 2),
      /packet 1: tag .* outside the slab/,
      RangeError,
    ],
    [
      'message outside the slab',
      () => nat.aeadSealBatch([enc], slab, new Int32Array([...good, 0, 400, 200, 0, 8, 120]), nonces, aad, status, 2),
      /packet 1: message/,
      RangeError,
    ],
    [
      'negative offset',
      () => nat.aeadSealBatch([enc], slab, new Int32Array([...good, 0, -1, 10, 0, 8, 120]), nonces, aad, status, 2),
      /packet 1: message/,
      RangeError,
    ],
    [
      'tag overlapping the message',
      () => nat.aeadSealBatch([enc], slab, new Int32Array([...good, 0, 200, 100, 0, 8, 290]), nonces, aad, status, 2),
      /packet 1: the tag overlaps/,
      RangeError,
    ],
    [
      'aad outside its array',
      () => nat.aeadSealBatch([enc], slab, new Int32Array([...good, 0, 200, 100, 30, 8, 300]), nonces, aad, status, 2),
      /packet 1: aad/,
      RangeError,
    ],
    [
      'context index',
      () => nat.aeadSealBatch([enc], slab, new Int32Array([...good, 1, 200, 100, 0, 8, 300]), nonces, aad, status, 2),
      /packet 1: context index 1/,
      RangeError,
    ],
    [
      'nonces too short',
      () => nat.aeadSealBatch([enc], slab, new Int32Array([...good, ...good]), new Uint8Array(12), aad, status, 2),
      /nonces has 12 elements, 24 needed/,
      RangeError,
    ],
    ['status too short', () => nat.aeadSealBatch([enc], slab, new Int32Array([...good, ...good]), nonces, aad, new Uint8Array(1), 2), /status/, RangeError],
    ['desc too short', () => nat.aeadSealBatch([enc], slab, new Int32Array(good), nonces, aad, status, 2), /desc has 6 elements, 12 needed/, RangeError],
    [
      'opening context to seal',
      () => nat.aeadSealBatch([dec], slab, new Int32Array([...good, ...good]), nonces, aad, status, 2),
      /ctxs\[0\] must be a sealing context/,
      TypeError,
    ],
    [
      'a foreign object',
      () => nat.aeadSealBatch([{}], slab, new Int32Array([...good, ...good]), nonces, aad, status, 2),
      /ctxs\[0\] must be a context from aeadCreate/,
      TypeError,
    ],
    [
      'slab of another type',
      () => nat.aeadSealBatch([enc], new Int32Array(128) as unknown as Uint8Array, new Int32Array(good), nonces, aad, status, 1),
      /slab must be a Uint8Array/,
      TypeError,
    ],
    [
      'desc of another type',
      () => nat.aeadSealBatch([enc], slab, new Uint32Array(good) as unknown as Int32Array, nonces, aad, status, 1),
      /desc must be an Int32Array/,
      TypeError,
    ],
    ['count not an integer', () => nat.aeadSealBatch([enc], slab, new Int32Array(good), nonces, aad, status, 0.5), /count must be an integer/, RangeError],
    [
      'ctxs not an array',
      () => nat.aeadSealBatch(enc as unknown as object[], slab, new Int32Array(good), nonces, aad, status, 1),
      /ctxs must be an Array/,
      TypeError,
    ],
    [
      'key of the wrong length',
      () => nat.aeadCreate(AEAD_CIPHER_ID['aes-gcm-256'], new Uint8Array(16), true),
      /key is 16 bytes, cipher 2 needs 32/,
      RangeError,
    ],
    ['unknown cipher', () => nat.aeadCreate(9, new Uint8Array(16), true), /cipher must be an integer in \[0, 3\]/, RangeError],
  ];
  for (const [what, call, msg, type] of cases) {
    assert.throws(call, (e: unknown) => e instanceof type && msg.test((e as Error).message), what);
    assert.equal(hex(slab), hex(before), `${what}: slab untouched`);
    assert.deepEqual([...status], [7, 7], `${what}: status untouched`);
  }
  // A freed context is refused; the good call works (so the cases above failed for their own reason).
  assert.equal(
    nat.aeadSealBatch([enc], slab, new Int32Array([...good, ...good].map((x, i) => (i === 7 ? 200 : i === 11 ? 300 : x))), nonces, aad, status, 2),
    2,
  );
  nat.aeadFree(enc);
  assert.throws(() => nat.aeadSealBatch([enc], slab, new Int32Array(good), nonces, aad, status, 1), /ctxs\[0\] must be a context not yet freed/);
  nat.aeadFree(enc); // twice is harmless
});

test('native: a batch seal opens per packet and a per-packet seal opens in a batch (random sizes, ciphers, buffers)', nativeOpts, () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.record({
          alg: fc.constantFrom(...ALGS),
          len: fc.integer({ min: 0, max: 3000 }),
          seed: fc.integer({ min: 1, max: 1e6 }),
          aadLen: fc.constantFrom(0, 8, 12, 16),
          gap: fc.integer({ min: 0, max: 9 }),
        }),
        { minLength: 1, maxLength: 40 },
      ),
      fc.boolean(),
      (jobs, batchSeals) => {
        // Each job in its own window of one ArrayBuffer (as packets of a pool), starting 5 bytes in.
        let size = 5;
        const at = jobs.map((j) => {
          const o = size + j.gap;
          size = o + j.len + 16;
          return o;
        });
        const ab = new ArrayBuffer(size + 3);
        const data = new Uint8Array(ab, 5);
        const r = rng(jobs[0]!.seed);
        for (let i = 0; i < data.length; i++) data[i] = r() & 0xff;
        const plain = data.slice();
        const keys = jobs.map(
          (j) =>
            new AeadKey(
              j.alg,
              new Uint8Array(AEAD_KEY_LEN[j.alg]).map((_, i) => (i * 7 + j.seed) & 0xff),
            ),
        );
        const nonce = (i: number): Uint8Array => new Uint8Array(12).map((_, k) => (k * 31 + i + jobs[i]!.seed) & 0xff);
        const aad = (i: number): Uint8Array => new Uint8Array(jobs[i]!.aadLen).map((_, k) => (k + jobs[i]!.seed) & 0xff);
        const off = (i: number): number => at[i]! - 5;
        const batch = new AeadBatch(batchSeals, native, jobs.length);
        const each = (i: number, seal: boolean): boolean => {
          const a = createAead(
            jobs[i]!.alg,
            new Uint8Array(AEAD_KEY_LEN[jobs[i]!.alg]).map((_, k) => (k * 7 + jobs[i]!.seed) & 0xff),
          );
          return seal
            ? a.seal(data, off(i), jobs[i]!.len, off(i) + jobs[i]!.len, nonce(i), aad(i))
            : a.open(data, off(i), jobs[i]!.len, off(i) + jobs[i]!.len, nonce(i), aad(i));
        };
        const phase = (seal: boolean, batched: boolean): void => {
          if (!batched) {
            jobs.forEach((_, i) => assert.equal(each(i, seal), true));
            return;
          }
          const b = seal === batchSeals ? batch : new AeadBatch(seal, native, jobs.length);
          jobs.forEach((j, i) => assert.equal(b.add(keys[i]!, data, off(i), j.len, off(i) + j.len, nonce(i), aad(i), j.aadLen), i));
          b.run();
          jobs.forEach((_, i) => assert.equal(b.ok(i), true));
        };
        phase(true, batchSeals);
        if (jobs.some((j) => j.len > 0)) assert.notEqual(hex(data), hex(plain));
        phase(false, !batchSeals);
        // Back to the plaintext, tags aside (they sit where the next job's gap and bytes were).
        jobs.forEach((j, i) => assert.equal(hex(data, off(i), j.len), hex(plain, off(i), j.len)));
      },
    ),
    { numRuns: 60 },
  );
});

// ---- ESP batches against the per-packet functions ------------------------------------------------------

function frame(family: 4 | 6, innerLen: number, seed: number): Uint8Array {
  const r = rng(seed);
  const data: Layer = { kind: 'data', bytes: new Uint8Array(innerLen).map(() => r() & 0xff) };
  const outer: Layer[] =
    family === 4
      ? [eth(0x0800), ip4('192.168.1.1', '192.168.1.2', 17), udp(49152 + (seed & 0xff), 4789, true)]
      : [eth(0x86dd), ip6('fd00::1', 'fd00::2', 17), udp(49152 + (seed & 0xff), 4789)];
  return compose([...outer, data]);
}

for (const [name, nat] of [
  ['native', native],
  ['per-packet fallback', null],
] as const) {
  test(
    `${name}: EspSealBatch gives espProtect's bytes, EspOpenBatch espUnprotect's results (random sizes, families, UDP, ESN, duplicates, a tampered packet)`,
    name === 'native' ? nativeOpts : {},
    () => {
      fc.assert(
        fc.property(
          fc.constantFrom<AeadAlgorithm>('aes-gcm-128', 'aes-gcm-256', 'chacha20-poly1305'),
          fc.boolean(),
          fc.boolean(),
          fc.constantFrom<4 | 6>(4, 6),
          fc.array(fc.integer({ min: 8, max: 1500 }), { minLength: 1, maxLength: 70 }),
          fc.nat(),
          fc.nat(),
          (alg, esn, inUdp, family, sizes, dupAt, badAt) => {
            const k = keyingOf(alg, sizes.length);
            const opts: EspProtectOptions = inUdp ? { udpEncap: { srcPort: 4500, dstPort: 4500 } } : {};
            const pool = new PacketPool({ count: 2 * sizes.length + 4, frameCapacity: 2048 });
            const outA = new OutboundSa({ spi: 77, keying: k, esn, resumeAfter: esn ? 0xffff_fff0n : 0n });
            const outB = new OutboundSa({ spi: 77, keying: k, esn, resumeAfter: esn ? 0xffff_fff0n : 0n });
            const sb = new EspSealBatch(nat, 32); // smaller than the batch: it seals itself when full
            const a = sizes.map((n, i) => {
              const p = pool.alloc()!;
              p.load(frame(family, n, i + 1));
              return p;
            });
            const b = sizes.map((n, i) => {
              const p = pool.alloc()!;
              p.load(frame(family, n, i + 1));
              return p;
            });
            a.forEach((p) => assert.equal(espProtect(p, p.start + 14, outA, 0, opts), 0));
            b.forEach((p) => assert.equal(sb.protect(p, p.start + 14, outB, 0, opts), 0));
            sb.seal();
            a.forEach((p, i) => assert.equal(hex(b[i]!.bytes()), hex(p.bytes()), `packet ${i}`));
            // Receive b's packets (one duplicated, one tampered) per packet and in a batch: the same verdicts and bytes.
            const rx = [...b.map((p) => p.bytes().slice())];
            rx.splice(dupAt % (rx.length + 1), 0, rx[dupAt % rx.length]!.slice());
            const bad = badAt % rx.length;
            rx[bad]![rx[bad]!.length - 20]! ^= 1;
            for (const p of [...a, ...b]) p.release();
            const inA = new InboundSa({ spi: 77, keying: k, esn, resumeAfter: esn ? 0xffff_fff0n : 0n });
            const inB = new InboundSa({ spi: 77, keying: k, esn, resumeAfter: esn ? 0xffff_fff0n : 0n });
            const ob = new EspOpenBatch(nat, rx.length);
            const one = rx.map((f) => {
              const p = pool.alloc()!;
              p.load(f);
              const r = espUnprotect(p, p.start + 14, () => inA, 0);
              const out = hex(p.bytes());
              p.release();
              return [r, out];
            });
            const ps = rx.map((f) => {
              const p = pool.alloc()!;
              p.load(f);
              return p;
            });
            const qd = ps.map((p) => ob.check(p, p.start + 14, () => inB, 0));
            ob.open();
            let j = 0;
            const many = ps.map((p, i) => {
              const r = qd[i] === 0 ? ob.finish(j++, p, 0) : qd[i]!;
              return [r, hex(p.bytes())];
            });
            assert.deepEqual(
              many.map((x) => x[0]),
              one.map((x) => x[0]),
            );
            many.forEach((x, i) => {
              if (x[0] === 0) assert.equal(x[1], one[i]![1], `packet ${i}`);
            });
            assert.notEqual(many[bad]![0], 0, 'the tampered packet is refused (an ICV failure, or a replay when its twin came first)');
            assert.deepEqual(
              [inB.topHi, inB.topLo, inB.packets, inB.bytes, inB.drops[DropReason.EspReplay], inB.drops[DropReason.EspAuthFailed]],
              [inA.topHi, inA.topLo, inA.packets, inA.bytes, inA.drops[DropReason.EspReplay], inA.drops[DropReason.EspAuthFailed]],
            );
            for (const p of ps) p.release();
          },
        ),
        { numRuns: 40 },
      );
    },
  );
}

test('native: the addon links no OpenSSL of its own — its EVP symbols are undefined, resolved from the node binary', nativeOpts, (t) => {
  const addon = fileURLToPath(new URL('../../../native/build/Release/seine.node', import.meta.url));
  const nm = spawnSync('nm', ['-D', addon], { encoding: 'utf8' });
  const ldd = spawnSync('ldd', [addon], { encoding: 'utf8' });
  if (nm.error !== undefined || ldd.error !== undefined) {
    t.skip(`nm or ldd is missing (binutils, libc-bin): ${String(nm.error ?? ldd.error)}`);
    return;
  }
  const evp = nm.stdout.split('\n').filter((l) => /\bEVP_/.test(l));
  assert.ok(evp.length >= 6, `EVP symbols: ${evp.join('; ')}`);
  for (const l of evp) assert.match(l, /^\s+U EVP_/, `undefined, not defined here: ${l}`);
  assert.doesNotMatch(ldd.stdout, /libcrypto|libssl/, ldd.stdout);
  // And node itself defines them (what the loader resolves them to).
  const node = spawnSync('nm', ['-D', process.execPath], { encoding: 'utf8' }).stdout;
  for (const l of evp) assert.match(node, new RegExp(`\\sT ${l.trim().split(/\s+/).at(-1)}$`, 'm'));
});
