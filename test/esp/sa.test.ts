/**
 * Security associations: the sender's sequence numbers (strictly increasing, never wrapping, resumable)
 * and lifetimes; the receiver's anti-replay window against a reference model written from RFC 4303
 * §3.4.3 and Appendix A2 independently of the implementation (a set of received numbers and a top; the
 * high bits of an ESN inferred as "the number ≡ seqLo mod 2^32 nearest above the window's bottom").
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { InboundSa, OutboundSa, type EspKeying } from '../../src/esp/sa.js';
import { DropReason } from '../../src/wire/drop.js';

const KEYING: EspKeying = { cipher: 'aes-gcm-128', key: new Uint8Array(16).fill(3), salt: new Uint8Array([9, 9, 9, 9]) };
const TWO32 = 1n << 32n;
const MAX64 = (1n << 64n) - 1n;

const seqOf = (sa: OutboundSa): bigint => (BigInt(sa.seqHi) << 32n) | BigInt(sa.seqLo);

test('OutboundSa: sequence numbers start at 1 and increase by one, across the 32-bit boundary with ESN', () => {
  const sa = new OutboundSa({ spi: 1, keying: KEYING });
  const got: bigint[] = [];
  for (let i = 0; i < 5; i++) {
    assert.equal(sa.next(), true);
    got.push(seqOf(sa));
  }
  assert.deepEqual(got, [1n, 2n, 3n, 4n, 5n]);
  const e = new OutboundSa({ spi: 1, keying: KEYING, esn: true, resumeAfter: TWO32 - 2n });
  const seen: bigint[] = [];
  for (let i = 0; i < 4; i++) {
    assert.equal(e.next(), true);
    seen.push(e.seq);
  }
  assert.deepEqual(seen, [TWO32 - 1n, TWO32, TWO32 + 1n, TWO32 + 2n]);
  assert.deepEqual([e.seqHi, e.seqLo], [1, 2]);
});

test('OutboundSa: exhausted after 2^32−1 without ESN and 2^64−1 with it, never wrapping', () => {
  const a = new OutboundSa({ spi: 1, keying: KEYING, resumeAfter: TWO32 - 3n });
  assert.equal(a.next(), true);
  assert.equal(a.exhausted, false);
  assert.equal(a.next(), true);
  assert.equal(a.seq, TWO32 - 1n);
  assert.equal(a.exhausted, true);
  assert.equal(a.next(), false);
  assert.equal(a.seq, TWO32 - 1n, 'nothing changes once exhausted');
  const b = new OutboundSa({ spi: 1, keying: KEYING, esn: true, resumeAfter: MAX64 - 1n });
  assert.equal(b.next(), true);
  assert.equal(b.seq, MAX64);
  assert.equal(b.next(), false);
  assert.equal(b.seq, MAX64);
  // Resuming at the limit is already exhausted.
  assert.equal(new OutboundSa({ spi: 1, keying: KEYING, resumeAfter: TWO32 - 1n }).next(), false);
  // Without ESN the 32-bit limit holds even where ESN would go on.
  const c = new OutboundSa({ spi: 1, keying: KEYING, esn: false, resumeAfter: TWO32 - 2n });
  c.next();
  assert.equal(c.next(), false);
});

test('OutboundSa: sequence numbers never repeat for any resume point and run length', () => {
  fc.assert(
    fc.property(fc.boolean(), fc.bigInt({ min: 0n, max: MAX64 }), fc.integer({ min: 1, max: 300 }), (esn, start0, n) => {
      const start = esn ? start0 : start0 & (TWO32 - 1n);
      const sa = new OutboundSa({ spi: 7, keying: KEYING, esn, resumeAfter: start });
      let prev = start;
      const limit = esn ? MAX64 : TWO32 - 1n;
      for (let i = 0; i < n; i++) {
        const ok = sa.next();
        assert.equal(ok, prev < limit);
        if (!ok) {
          assert.equal(sa.exhausted, true);
          assert.equal(sa.seq, prev);
          break;
        }
        assert.equal(sa.seq, prev + 1n);
        prev = sa.seq;
      }
    }),
    { numRuns: 300 },
  );
});

test('OutboundSa and InboundSa: lifetimes in packets, bytes and ns', () => {
  const sa = new OutboundSa({ spi: 1, keying: KEYING, lifetime: { packets: 2, bytes: 1000, ns: 5_000 }, createdAt: 1_000 });
  assert.equal(sa.expired(1_000), false);
  assert.equal(sa.expired(5_999), false);
  assert.equal(sa.expired(6_000), true);
  sa.packets = 2;
  assert.equal(sa.expired(1_000), true);
  sa.packets = 0;
  sa.bytes = 1000;
  assert.equal(sa.expired(1_000), true);
  const none = new InboundSa({ spi: 1, keying: KEYING });
  none.packets = 1e15;
  assert.equal(none.expired(1e18), false);
});

test('SA configuration errors are RangeErrors naming the field', () => {
  const bad: [() => unknown, RegExp][] = [
    [() => new OutboundSa({ spi: 0, keying: KEYING }), /SPI 0/],
    [() => new OutboundSa({ spi: 2 ** 32, keying: KEYING }), /SPI/],
    [() => new OutboundSa({ spi: 1, keying: { ...KEYING, key: new Uint8Array(15) } }), /key of 15 bytes/],
    [() => new OutboundSa({ spi: 1, keying: { ...KEYING, salt: new Uint8Array(3) } }), /salt of 3 bytes/],
    [() => new OutboundSa({ spi: 1, keying: { ...KEYING, cipher: 'aes-cbc' as 'aes-gcm-128' } }), /aes-cbc/],
    [() => new OutboundSa({ spi: 1, keying: KEYING, resumeAfter: TWO32 }), /32-bit/],
    [() => new OutboundSa({ spi: 1, keying: KEYING, lifetime: { packets: 0 } }), /packets/],
    [() => new InboundSa({ spi: 1, keying: KEYING, window: 48 }), /window 48/],
    [() => new InboundSa({ spi: 1, keying: KEYING, window: 8192 }), /window 8192/],
    [() => new InboundSa({ spi: 1, keying: KEYING, window: 16 }), /window 16/],
  ];
  for (const [f, re] of bad) assert.throws(f, (e: unknown) => e instanceof RangeError && re.test(e.message));
  for (const w of [32, 64, 128, 1024, 4096]) assert.equal(new InboundSa({ spi: 1, keying: KEYING, window: w }).window, w);
});

/** The reference window: RFC 4303 §3.4.3 over full sequence numbers, and Appendix A2's inference. */
class Model {
  top: bigint;
  readonly seen = new Set<bigint>();
  /** Everything up to here counts as received (a resumed SA). */
  constructor(
    readonly w: number,
    readonly esn: boolean,
    readonly floor: bigint,
  ) {
    this.top = floor;
  }

  /** The full number a receiver infers from the low 32 bits, or null when there is none. */
  infer(lo: number): bigint | null {
    if (!this.esn) return BigInt(lo);
    const bottom = this.top - BigInt(this.w) + 1n;
    const x = bottom + ((((BigInt(lo) - bottom) % TWO32) + TWO32) % TWO32);
    return x < 0n || x > MAX64 ? null : x;
  }

  verdict(s: bigint | null): number {
    if (s === null || s === 0n) return DropReason.EspOutsideWindow;
    if (s > this.top) return 0;
    if (this.top - s >= BigInt(this.w)) return DropReason.EspOutsideWindow;
    return this.seen.has(s) || s <= this.floor ? DropReason.EspReplay : 0;
  }

  accept(s: bigint): void {
    this.seen.add(s);
    if (s > this.top) this.top = s;
  }
}

/**
 * Drives an InboundSa and the model with the same arrivals: each arrival is the sender's true sequence
 * number; the receiver sees its low 32 bits. A packet the model says may pass is "authenticated" when
 * the inferred number is the true one (a wrong guess of the high bits fails the ICV in real ESP) and
 * the arrival is not marked forged; only then is it accepted.
 */
function drive(w: number, esn: boolean, start: bigint, steps: { delta: number; forged: boolean; again: number }[]): void {
  const sa = new InboundSa({ spi: 1, keying: KEYING, window: w, esn, resumeAfter: start });
  const m = new Model(w, esn, start);
  const limit = esn ? MAX64 : TWO32 - 1n;
  const sent: bigint[] = [];
  for (const st of steps) {
    // Mostly near the top, sometimes a repeat of something sent before.
    let s = st.again >= 0 && sent.length > 0 ? sent[st.again % sent.length]! : m.top + BigInt(st.delta);
    if (s < 0n) s = 0n;
    if (s > limit) s = limit;
    sent.push(s);
    const lo = Number(s & (TWO32 - 1n));
    const inferred = m.infer(lo);
    const want = m.verdict(inferred);
    const got = sa.check(lo);
    assert.equal(got, want, `check(${s}) with top ${m.top}`);
    if (got !== 0) continue;
    assert.equal(BigInt(sa.checkedHi), inferred! >> 32n, `inferred high bits of ${s}`);
    if (st.forged || inferred !== s) continue; // fails the ICV: the window must not move
    assert.equal(sa.accept(sa.checkedHi, lo), 0);
    m.accept(s);
    assert.equal((BigInt(sa.topHi) << 32n) | BigInt(sa.topLo), m.top);
  }
  // Every number below the top that the model holds, and no other in the window, is a replay now.
  for (let k = 0n; k < BigInt(w) && m.top - k > 0n; k++) {
    const s = m.top - k;
    const r = sa.check(Number(s & (TWO32 - 1n)));
    assert.equal(r, m.seen.has(s) || s <= start ? DropReason.EspReplay : 0, `final window at ${s}`);
  }
}

const stepArb = (w: number) =>
  fc.record(
    {
      delta: fc.oneof(fc.integer({ min: -2 * w, max: 3 * w }), fc.integer({ min: -1, max: 2 }), fc.integer({ min: -(2 ** 33), max: 2 ** 33 })),
      forged: fc.boolean(),
      again: fc.oneof(fc.constant(-1), fc.constant(-1), fc.nat()),
    },
    { noNullPrototype: true },
  );

for (const w of [32, 64, 1024, 4096]) {
  test(`InboundSa window ${w}: replayed and reordered packets accepted exactly once, older ones dropped (32-bit)`, () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: TWO32 - 1n }), fc.array(stepArb(w), { minLength: 1, maxLength: 200 }), (start, steps) => {
        drive(w, false, start, steps);
      }),
      { numRuns: w >= 1024 ? 40 : 150 },
    );
  });

  test(`InboundSa window ${w}: the same with ESN, around 2^32 boundaries`, () => {
    const near = fc.oneof(
      fc.bigInt({ min: TWO32 - 4n * BigInt(w), max: TWO32 + 4n * BigInt(w) }),
      fc.bigInt({ min: 5n * TWO32 - 4n * BigInt(w), max: 5n * TWO32 + 4n * BigInt(w) }),
      fc.bigInt({ min: 0n, max: 4n * BigInt(w) }),
      fc.bigInt({ min: MAX64 - 4n * BigInt(w), max: MAX64 }),
    );
    fc.assert(
      fc.property(near, fc.array(stepArb(w), { minLength: 1, maxLength: 200 }), (start, steps) => {
        drive(w, true, start, steps);
      }),
      { numRuns: w >= 1024 ? 40 : 150 },
    );
  });
}

test('InboundSa ESN: Appendix A2 examples across a 2^32 boundary', () => {
  const sa = new InboundSa({ spi: 1, keying: KEYING, esn: true, window: 64, resumeAfter: TWO32 - 3n });
  // Case A (window within block 0): a small low half is block 1.
  assert.equal(sa.check(2), 0);
  assert.equal(sa.checkedHi, 1);
  assert.equal(sa.accept(1, 2), 0);
  assert.deepEqual([sa.topHi, sa.topLo], [1, 2]);
  // Case B (the window straddles the boundary): a large low half is block 0, inside the window.
  assert.equal(sa.check(0xffff_fffe), 0);
  assert.equal(sa.checkedHi, 0);
  assert.equal(sa.accept(0, 0xffff_fffe), 0);
  assert.equal(sa.check(0xffff_fffe), DropReason.EspReplay);
  assert.equal(sa.check(0xffff_ffff), 0, 'not received yet (resumeAfter was 2^32−3)');
  assert.equal(sa.check(0xffff_fffd), DropReason.EspReplay, 'at or below resumeAfter counts as received');
  // Older than the window: Appendix A2 takes it as the next block (the ICV then fails, as the sender
  // used other high bits), so the pre-check cannot reject it.
  assert.equal(sa.check(0xffff_ff00), 0);
  assert.equal(sa.checkedHi, 1);
  // Without ESN nothing wraps: a small number after a large top is old.
  const plain = new InboundSa({ spi: 1, keying: KEYING, resumeAfter: TWO32 - 3n });
  assert.equal(plain.check(2), DropReason.EspOutsideWindow);
  // Sequence number 0 is never valid; before anything arrived, everything else is new.
  const fresh = new InboundSa({ spi: 1, keying: KEYING, esn: true });
  assert.equal(fresh.check(0), DropReason.EspOutsideWindow);
  assert.equal(fresh.check(0xffff_ffff), DropReason.EspOutsideWindow, 'would be block −1');
  assert.equal(fresh.check(1), 0);
});

test('InboundSa: accept repeats the check (a batch checked before decryption still takes each number once)', () => {
  const sa = new InboundSa({ spi: 1, keying: KEYING });
  assert.equal(sa.check(10), 0);
  assert.equal(sa.check(10), 0, 'not yet accepted');
  assert.equal(sa.accept(0, 10), 0);
  assert.equal(sa.accept(0, 10), DropReason.EspReplay);
  assert.equal(sa.accept(0, 200), 0);
  assert.equal(sa.accept(0, 100), DropReason.EspOutsideWindow, 'the window moved past it meanwhile');
  assert.equal(sa.accept(0, 137), 0, 'the window bottom (200 − 64 + 1) is inside');
  assert.equal(sa.accept(0, 136), DropReason.EspOutsideWindow, 'one below the bottom is outside');
});
