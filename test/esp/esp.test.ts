/**
 * ESP in place on packet buffers: protect → unprotect round trips (random sizes, IPv4 and IPv6 outer,
 * with and without UDP encapsulation, every cipher, with and without ESN) give back the frame byte for
 * byte with the layout `espOverhead` describes; a flip of any bit of the ESP packet is caught; random and
 * damaged input never throws; and every drop comes with its reason and counter.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { AeadAlgorithm } from '../../src/esp/aead.js';
import { ESP_DUMMY, ESP_NOT_ESP, espProtect, espUnprotect, EspRxInfo, type EspProtectOptions } from '../../src/esp/esp.js';
import { EspCrypto, InboundSa, OutboundSa, type EspKeying } from '../../src/esp/sa.js';
import { ESP_CIPHERS, espOverhead, type EspCipher } from '../../src/mtu/overhead.js';
import { PacketBuf, HEADROOM, TAILROOM } from '../../src/packet/buf.js';
import { rd16, rd32 } from '../../src/wire/bytes.js';
import { fold, ipv4HeaderValid, onesSum, pseudoSumV6At } from '../../src/wire/checksum.js';
import { DropReason, dropReasonName } from '../../src/wire/drop.js';
import { compose, type Layer } from '../../src/wire/stack.js';
import { eth, ip4, ip6, udp } from '../peers/catalogue.js';
import { fromHex, guarded, hex, rng } from '../helpers.js';

const CIPHERS: EspCipher[] = ['aes-gcm-128', 'aes-gcm-256', 'chacha20-poly1305'];
const KEYLEN: Record<AeadAlgorithm, number> = { 'aes-gcm-128': 16, 'aes-gcm-192': 24, 'aes-gcm-256': 32, 'chacha20-poly1305': 32 };
const SPI = 0x0a0b0c0d;

function keying(cipher: AeadAlgorithm, seed = 1): EspKeying {
  const r = rng(seed);
  return { cipher, key: new Uint8Array(KEYLEN[cipher]).map(() => r() & 0xff), salt: new Uint8Array(4).map(() => r() & 0xff) };
}

function bytesOf(n: number, seed: number): Layer {
  const r = rng(seed);
  return { kind: 'data', bytes: new Uint8Array(n).map(() => r() & 0xff) };
}

const vx: Layer = { kind: 'vxlan', repr: { vni: 5001 } };
const ext = (headerType: number, nextHeader: number, data: string): Layer => ({ kind: 'ipv6ext', repr: { headerType, nextHeader, data: fromHex(data) } });

/** An outer VXLAN frame carrying an inner IPv4/UDP packet of `innerLen` bytes (≥ 28). */
function tunnelFrame(family: 4 | 6, innerLen: number, seed = 1, ipv4Options = 0): Uint8Array {
  const inner: Layer[] = [eth(0x0800), ip4('10.244.1.5', '10.244.2.7', 17), udp(40000, 5201), bytesOf(innerLen - 28, seed)];
  const outer: Layer[] =
    family === 4
      ? [eth(0x0800), ip4('192.168.1.1', '192.168.1.2', 17, { options: new Uint8Array(ipv4Options).fill(1) }), udp(49152 + (seed & 0xff), 4789, true)]
      : [eth(0x86dd), ip6('fd00::1', 'fd00::2', 17, { flowLabel: seed & 0xfffff }), udp(49152 + (seed & 0xff), 4789)];
  return compose([...outer, vx, ...inner]);
}

/** A buffer as a pool makes them (a failing property must not exhaust a shared pool). */
const buffer = (): PacketBuf => new PacketBuf(new Uint8Array(HEADROOM + 9216 + TAILROOM));

/** A buffer holding `frame` at HEADROOM, head- and tailroom dirty. */
function load(frame: Uint8Array): PacketBuf {
  const p = buffer();
  p.data.fill(0xa5);
  assert.equal(p.load(frame), true);
  p.l2 = p.start;
  return p;
}

/** The IP payload length of the packet at `l3` (IPv4 total − header, IPv6 payload length). */
function ipPayloadLen(b: Uint8Array, l3: number, ins: number): number {
  return b[l3]! >>> 4 === 4 ? rd16(b, l3 + 2) - (ins - l3) : 40 + rd16(b, l3 + 4) - (ins - l3);
}

test('the ciphers have the 8-byte IV, 16-byte ICV and stream padding espProtect assumes', () => {
  for (const c of CIPHERS)
    assert.deepEqual(
      [ESP_CIPHERS[c].ivLen, ESP_CIPHERS[c].icvLen, ESP_CIPHERS[c].blockSize, ESP_CIPHERS[c].saltLen, ESP_CIPHERS[c].keyLen],
      [8, 16, 1, 4, KEYLEN[c]],
    );
});

test('protect → unprotect restores the frame byte for byte; the protected layout is exactly espOverhead', () => {
  fc.assert(
    fc.property(
      fc.constantFrom(...CIPHERS),
      fc.constantFrom<4 | 6>(4, 6),
      fc.boolean(),
      fc.boolean(),
      fc.integer({ min: 28, max: 9000 }),
      fc.integer({ min: 0, max: 0xffff }),
      fc.bigInt({ min: 0n, max: 1n << 40n }),
      fc.constantFrom(0, 0, 4, 12),
      (cipher, family, encap, esn, innerLen, seed, start, v4opts) => {
        const frame = tunnelFrame(family, innerLen, seed, family === 4 ? v4opts : 0);
        const k = keying(cipher, seed + 7);
        const resume = esn ? start : start % 0xffff_ffffn; // below 2^32−1, which would leave nothing to send
        const out = new OutboundSa({ spi: SPI, keying: k, esn, resumeAfter: resume });
        const inb = new InboundSa({ spi: SPI, keying: k, esn, resumeAfter: resume });
        const opts: EspProtectOptions = encap ? { udpEncap: { srcPort: 4500 + (seed & 7), dstPort: 4500 } } : {};
        const p = load(frame);
        const l3 = p.start + 14;
        const ins = l3 + (family === 4 ? 20 + v4opts : 40);
        const payLen = ipPayloadLen(p.data, l3, ins);
        assert.equal(espProtect(p, l3, out, 0, opts), 0);
        const b = p.data;
        // Length: exactly what mtu/overhead.ts says ESP adds.
        assert.equal(p.length, frame.length + espOverhead({ cipher, udpEncap: encap }, payLen));
        assert.equal(p.l3, l3 - (encap ? 24 : 16));
        assert.equal(p.l2, p.start);
        const nl3 = p.l3;
        const nins = ins - (encap ? 24 : 16);
        // Outer IP: protocol, lengths, checksum.
        if (family === 4) {
          assert.equal(b[nl3 + 9], encap ? 17 : 50);
          assert.equal(rd16(b, nl3 + 2), p.end - nl3);
          assert.equal(ipv4HeaderValid(p.view, nl3, 20 + v4opts), true);
        } else {
          assert.equal(b[nl3 + 6], encap ? 17 : 50);
          assert.equal(rd16(b, nl3 + 4), p.end - nl3 - 40);
        }
        let esp = nins;
        if (encap) {
          assert.equal(p.l4, nins);
          assert.deepEqual([rd16(b, nins), rd16(b, nins + 2), rd16(b, nins + 4)], [4500 + (seed & 7), 4500, p.end - nins]);
          if (family === 4) assert.equal(rd16(b, nins + 6), 0);
          else assert.equal(fold(onesSum(b, nins, p.end - nins, pseudoSumV6At(b, nl3 + 8, nl3 + 24, 17, p.end - nins))), 0xffff);
          esp += 8;
        }
        // ESP header: SPI, the low sequence bits; the IV is the whole sequence number.
        assert.equal(rd32(b, esp), SPI);
        assert.equal(BigInt(rd32(b, esp + 4)), (resume + 1n) & 0xffff_ffffn);
        assert.equal((BigInt(rd32(b, esp + 8)) << 32n) | BigInt(rd32(b, esp + 12)), resume + 1n);
        assert.equal(out.seq, resume + 1n);
        assert.deepEqual([out.packets, out.bytes], [1, payLen]);
        // Nothing in front of the packet or behind it was written.
        assert.equal(b[p.start - 1], 0xa5);
        assert.equal(b[p.end], 0xa5);
        const info = new EspRxInfo();
        assert.equal(
          espUnprotect(p, nl3, (spi) => (spi === SPI ? inb : null), 0, info),
          0,
        );
        assert.equal(hex(p.bytes()), hex(frame));
        assert.deepEqual([p.start, p.l3, p.l2, p.l4], [HEADROOM, l3, HEADROOM, ins]);
        assert.deepEqual(
          [info.spi, (BigInt(info.seqHi) << 32n) | BigInt(info.seqLo), info.udpEncap, info.nextHeader, info.sa === inb],
          [SPI, resume + 1n, encap, 17, true],
        );
        assert.deepEqual([inb.packets, inb.bytes], [1, payLen]);
        p.release();
      },
    ),
    { numRuns: 250 },
  );
});

test('sequence numbers in the packets strictly increase and never repeat; the IV is always the sequence number', () => {
  for (const esn of [false, true]) {
    const k = keying('chacha20-poly1305');
    const out = new OutboundSa({ spi: SPI, keying: k, esn, resumeAfter: esn ? (1n << 32n) - 3n : 0n });
    let prev = -1n;
    const seen = new Set<string>();
    for (let i = 0; i < 40; i++) {
      const p = load(tunnelFrame(4, 28 + i * 13, i));
      assert.equal(espProtect(p, p.start + 14, out, 0), 0);
      const esp = p.l4;
      const lo = BigInt(rd32(p.data, esp + 4));
      const iv = (BigInt(rd32(p.data, esp + 8)) << 32n) | BigInt(rd32(p.data, esp + 12));
      assert.equal(iv & 0xffff_ffffn, lo);
      assert.ok(iv > prev, `${iv} after ${prev}`);
      assert.equal(seen.has(hex(p.data, esp + 8, 8)), false);
      seen.add(hex(p.data, esp + 8, 8));
      prev = iv;
      p.release();
    }
    if (esn) assert.ok(prev > 1n << 32n, 'crossed into the next 2^32 block');
  }
});

test('ESN: the high sequence bits are authenticated but not sent; a receiver without ESN cannot open the packet', () => {
  for (const cipher of CIPHERS) {
    const k = keying(cipher, 3);
    const frame = tunnelFrame(6, 300);
    const out = new OutboundSa({ spi: SPI, keying: k, esn: true, resumeAfter: (7n << 32n) + 99n });
    const p = load(frame);
    assert.equal(espProtect(p, p.start + 14, out, 0), 0);
    const wire = p.bytes().slice();
    const l3 = p.l3;
    assert.equal(rd32(p.data, p.l4 + 4), 100, 'only the low half is on the wire');
    // The same keys without ESN: the AAD lacks seqHi, the ICV fails.
    const plain = new InboundSa({ spi: SPI, keying: k, esn: false });
    assert.equal(
      espUnprotect(p, l3, () => plain, 0),
      DropReason.EspAuthFailed,
    );
    // With ESN but a window in another 2^32 block: the inferred high bits are wrong, the ICV fails.
    const off = new InboundSa({ spi: SPI, keying: k, esn: true, resumeAfter: (6n << 32n) + 50n });
    p.load(wire);
    assert.equal(
      espUnprotect(p, p.start + 14, () => off, 0),
      DropReason.EspAuthFailed,
    );
    const right = new InboundSa({ spi: SPI, keying: k, esn: true, resumeAfter: (7n << 32n) + 20n });
    p.load(wire);
    assert.equal(
      espUnprotect(p, p.start + 14, () => right, 0),
      0,
    );
    assert.equal(hex(p.bytes()), hex(frame));
    assert.deepEqual([right.topHi, right.topLo], [7, 100]);
    p.release();
  }
});

test('flipping any single bit of the ESP packet is caught, and the window does not move', () => {
  for (const cipher of CIPHERS) {
    for (const encap of [false, true]) {
      const k = keying(cipher, 11);
      const out = new OutboundSa({ spi: SPI, keying: k });
      const inb = new InboundSa({ spi: SPI, keying: k });
      const p = load(tunnelFrame(4, 40));
      assert.equal(espProtect(p, p.start + 14, out, 0, encap ? { udpEncap: { srcPort: 4500, dstPort: 4500 } } : {}), 0);
      const wire = p.bytes().slice();
      const esp = p.l4 - p.start + (encap ? 8 : 0);
      const seen = new Set<number>();
      for (let bit = esp * 8; bit < wire.length * 8; bit++) {
        const bad = wire.slice();
        bad[bit >>> 3]! ^= 1 << (bit & 7);
        p.load(bad);
        const r = espUnprotect(p, p.start + 14, (spi) => (spi === SPI ? inb : null), 0);
        seen.add(r);
        const at = (bit >>> 3) - esp;
        if (at < 4) assert.equal(r, DropReason.EspUnknownSpi, `${cipher} SPI bit ${bit}`);
        else assert.ok(r === DropReason.EspAuthFailed || r === DropReason.EspOutsideWindow, `${cipher} bit ${bit} (ESP byte ${at}): ${r}`);
      }
      // Every flip of the SPI is an unknown SPI; the one that turns sequence number 1 into 0 is outside
      // the window; every other is an ICV failure.
      assert.deepEqual([...seen].sort(), [DropReason.EspUnknownSpi, DropReason.EspAuthFailed, DropReason.EspOutsideWindow].sort());
      assert.deepEqual([inb.topLo, inb.packets], [0, 0]);
      assert.equal(inb.drops[DropReason.EspAuthFailed], (wire.length - esp - 4) * 8 - 1);
      assert.equal(inb.drops[DropReason.EspOutsideWindow], 1);
      // The unflipped packet still goes through.
      p.load(wire);
      assert.equal(
        espUnprotect(p, p.start + 14, () => inb, 0),
        0,
      );
      p.release();
    }
  }
});

test('after EspAuthFailed no plaintext is in the buffer: AES-GCM leaves it as received, ChaCha20 zero-fills the ciphertext', () => {
  for (const cipher of CIPHERS) {
    const k = keying(cipher, 5);
    const p = load(tunnelFrame(4, 200));
    assert.equal(espProtect(p, p.start + 14, new OutboundSa({ spi: SPI, keying: k }), 0), 0);
    const esp = p.l4;
    p.data[p.end - 1]! ^= 0x80; // the ICV
    const before = p.bytes().slice();
    const info = new EspRxInfo();
    assert.equal(
      espUnprotect(p, p.l3, () => new InboundSa({ spi: SPI, keying: k }), 0, info),
      DropReason.EspAuthFailed,
    );
    assert.equal(info.nextHeader, -1);
    const after = p.bytes();
    const ct = [esp + 16 - p.start, p.end - 16 - p.start] as const;
    assert.equal(hex(after.subarray(0, ct[0])), hex(before.subarray(0, ct[0])), 'headers, SPI, sequence number, IV as received');
    assert.equal(hex(after.subarray(ct[1])), hex(before.subarray(ct[1])), 'ICV as received');
    if (cipher === 'chacha20-poly1305') assert.ok(after.subarray(ct[0], ct[1]).every((x) => x === 0));
    else assert.equal(hex(after), hex(before));
    p.release();
  }
});

test('replays and old packets are dropped before decryption, with their counters', () => {
  const k = keying('aes-gcm-128');
  const out = new OutboundSa({ spi: SPI, keying: k });
  const inb = new InboundSa({ spi: SPI, keying: k, window: 32 });
  const wires: Uint8Array[] = [];
  for (let i = 0; i < 40; i++) {
    const p = load(tunnelFrame(4, 64, i));
    espProtect(p, p.start + 14, out, 0);
    wires.push(p.bytes().slice());
    p.release();
  }
  const p = buffer();
  const rx = (i: number): number => {
    p.load(wires[i]!);
    return espUnprotect(p, p.start + 14, () => inb, 0);
  };
  assert.equal(rx(39), 0); // seq 40
  assert.equal(rx(39), DropReason.EspReplay);
  assert.equal(rx(8), 0); // seq 9: the bottom of a 32-packet window under 40
  assert.equal(rx(7), DropReason.EspOutsideWindow); // seq 8
  assert.equal(rx(20), 0);
  assert.equal(rx(20), DropReason.EspReplay);
  assert.deepEqual([inb.drops[DropReason.EspReplay], inb.drops[DropReason.EspOutsideWindow], inb.packets], [2, 1, 3]);
  p.release();
});

test('unknown SPI, SPI 0, expired inbound SA: EspUnknownSpi, the SPI reported for the trace', () => {
  const k = keying('chacha20-poly1305');
  const p = load(tunnelFrame(4, 64));
  assert.equal(espProtect(p, p.start + 14, new OutboundSa({ spi: SPI, keying: k }), 0), 0);
  const wire = p.bytes().slice();
  const info = new EspRxInfo();
  assert.equal(
    espUnprotect(p, p.l3, () => null, 0, info),
    DropReason.EspUnknownSpi,
  );
  assert.deepEqual([info.spi, info.seqLo, info.sa], [SPI, 1, null]);
  const old = new InboundSa({ spi: SPI, keying: k, lifetime: { ns: 1000 } });
  p.load(wire);
  assert.equal(
    espUnprotect(p, p.start + 14, () => old, 999),
    0,
  );
  p.load(wire);
  assert.equal(
    espUnprotect(p, p.start + 14, () => old, 1000),
    DropReason.EspUnknownSpi,
  );
  assert.equal(old.drops[DropReason.EspUnknownSpi], 1);
  // SPI 0 is reserved: not even looked up.
  const zero = wire.slice();
  zero.fill(0, 14 + 20, 14 + 24);
  p.load(zero);
  let asked = false;
  assert.equal(
    espUnprotect(
      p,
      p.start + 14,
      () => {
        asked = true;
        return old;
      },
      0,
    ),
    DropReason.EspUnknownSpi,
  );
  assert.equal(asked, false);
  p.release();
});

/** An authentic ESP packet (IPv4, protocol 50) whose plaintext (payload ‖ padding ‖ pad len ‖ nh) is given. */
function crafted(k: EspKeying, seq: number, plaintext: Uint8Array): Uint8Array {
  const esp = new Uint8Array(16 + plaintext.length + 16);
  new DataView(esp.buffer).setUint32(0, SPI);
  new DataView(esp.buffer).setUint32(4, seq);
  esp.set(plaintext, 16);
  assert.equal(new EspCrypto(k, false).seal(esp, 0, esp.length, 0, 0, seq), true);
  return compose([eth(0x0800), ip4('192.168.1.1', '192.168.1.2', 50), { kind: 'data', bytes: esp }]);
}

test('padding other than 1, 2, 3, … or a pad length beyond the payload: EspBadPadding after authentication', () => {
  const k = keying('aes-gcm-256');
  const inb = new InboundSa({ spi: SPI, keying: k });
  const p = buffer();
  const cases: [string, number][] = [
    ['aabbccdd 01 02 02 11', 0], // good
    ['aabbccdd 01 03 02 11', DropReason.EspBadPadding],
    ['aabbccdd 00 00 02 11', DropReason.EspBadPadding],
    ['aabb 0102030405 05 11', 0],
    ['aabb 0102030405 07 11', DropReason.EspBadPadding], // 7 > the 7 bytes before? payload would start before ESP's
    ['01 02 03 03 11', 0], // empty payload
    ['01 02 03 04 11', DropReason.EspBadPadding],
  ];
  let seq = 1;
  for (const [pt, want] of cases) {
    p.load(crafted(k, seq++, fromHex(pt)));
    assert.equal(
      espUnprotect(p, p.start + 14, () => inb, 0),
      want,
      pt,
    );
  }
  assert.equal(inb.drops[DropReason.EspBadPadding], 4);
  // The window moved for them all: they were authentic.
  assert.equal(inb.topLo, cases.length);
  p.release();
});

test('a dummy packet (next header 59) is ESP_DUMMY: authenticated, counted, to be discarded', () => {
  const k = keying('chacha20-poly1305');
  const inb = new InboundSa({ spi: SPI, keying: k });
  const p = buffer();
  p.load(crafted(k, 1, fromHex('00000000 01 02 02 3b')));
  const info = new EspRxInfo();
  assert.equal(
    espUnprotect(p, p.start + 14, () => inb, 0, info),
    ESP_DUMMY,
  );
  assert.deepEqual([info.nextHeader, inb.packets, inb.topLo], [59, 1, 1]);
  p.release();
});

test('not ESP: other protocols and ports, a NAT-keepalive, an IKE message behind the non-ESP marker — untouched', () => {
  const frames: [string, Uint8Array][] = [
    ['VXLAN', tunnelFrame(4, 64)],
    [
      'UDP 4500, non-ESP marker',
      compose([eth(0x0800), ip4('1.1.1.1', '2.2.2.2', 17), udp(4500, 4500), { kind: 'data', bytes: fromHex('00000000 2233445566778899') }]),
    ],
    ['UDP 4500, NAT-keepalive', compose([eth(0x0800), ip4('1.1.1.1', '2.2.2.2', 17), udp(4500, 4500), { kind: 'data', bytes: fromHex('ff') }])],
    ['UDP to 4501', compose([eth(0x0800), ip4('1.1.1.1', '2.2.2.2', 17), udp(4500, 4501), bytesOf(60, 1)])],
    ['IPv6 UDP 4500, marker', compose([eth(0x86dd), ip6('fd00::1', 'fd00::2', 17), udp(4500, 4500), { kind: 'data', bytes: fromHex('00000000 2233') }])],
    ['ARP-ish (not IP)', fromHex('ffffffffffff0200000000010806' + '00'.repeat(28))],
  ];
  for (const [name, f] of frames) {
    const p = load(f);
    const r = espUnprotect(
      p,
      p.start + 14,
      () => {
        throw new Error('no lookup for non-ESP');
      },
      0,
    );
    assert.equal(r, ESP_NOT_ESP, name);
    assert.equal(hex(p.bytes()), hex(f), name);
    p.release();
  }
});

test('an ESP packet shorter than header, IV, trailer and ICV is EspTruncated before any lookup', () => {
  const short = [
    compose([eth(0x0800), ip4('1.1.1.1', '2.2.2.2', 50), bytesOf(33, 5)]),
    compose([eth(0x86dd), ip6('fd00::1', 'fd00::2', 50), bytesOf(20, 5)]),
    compose([eth(0x0800), ip4('1.1.1.1', '2.2.2.2', 17), udp(4500, 4500), { kind: 'data', bytes: fromHex('0a0b0c0d') }]),
  ];
  for (const f of short) {
    const p = load(f);
    assert.equal(
      espUnprotect(
        p,
        p.start + 14,
        () => {
          throw new Error('looked up');
        },
        0,
      ),
      DropReason.EspTruncated,
    );
    assert.equal(hex(p.bytes()), hex(f));
  }
  const p = load(compose([eth(0x0800), ip4('1.1.1.1', '2.2.2.2', 50), bytesOf(34, 5)]));
  assert.equal(
    espUnprotect(p, p.start + 14, () => null, 0),
    DropReason.EspUnknownSpi,
    '34 bytes is the minimum',
  );
});

test('fragments are never protected or unprotected: TunnelFragment (ESP goes before fragmentation, reassembly before ESP)', () => {
  const k = keying('aes-gcm-128');
  const out = new OutboundSa({ spi: SPI, keying: k });
  const frag = compose([eth(0x0800), ip4('1.1.1.1', '2.2.2.2', 17, { moreFrags: true, dontFrag: false }), udp(1, 4789), bytesOf(64, 2)]);
  const p = load(frag);
  assert.equal(espProtect(p, p.start + 14, out, 0), DropReason.TunnelFragment);
  assert.equal(out.seqLo, 0, 'no sequence number used');
  const esp = compose([eth(0x0800), ip4('1.1.1.1', '2.2.2.2', 50, { fragOffset: 64, dontFrag: false }), bytesOf(64, 3)]);
  const udp4500 = compose([eth(0x0800), ip4('1.1.1.1', '2.2.2.2', 17, { moreFrags: true, dontFrag: false }), udp(4500, 4500), bytesOf(64, 3)]);
  const v6frag = compose([
    eth(0x86dd),
    ip6('fd00::1', 'fd00::2', 44),
    { kind: 'ipv6frag', repr: { nextHeader: 50, fragOffset: 0, moreFrags: true, ident: 9 } },
    bytesOf(64, 4),
  ]);
  for (const f of [esp, udp4500, v6frag]) {
    p.load(f);
    assert.equal(
      espUnprotect(p, p.start + 14, () => null, 0),
      DropReason.TunnelFragment,
    );
  }
  p.load(
    compose([
      eth(0x86dd),
      ip6('fd00::1', 'fd00::2', 44),
      { kind: 'ipv6frag', repr: { nextHeader: 17, fragOffset: 0, moreFrags: true, ident: 9 } },
      udp(1, 4789),
      bytesOf(64, 4),
    ]),
  );
  assert.equal(espProtect(p, p.start + 14, out, 0), DropReason.TunnelFragment);
  p.release();
});

test('IPv6: ESP goes after Hop-by-Hop, Routing and the Destination Options before Routing; later Destination Options are inside', () => {
  const HBH = 0,
    ROUTING = 43,
    DEST = 60;
  const frame = compose([
    eth(0x86dd),
    ip6('fd00::1', 'fd00::2', HBH),
    ext(HBH, DEST, '010400000000'), // PadN
    ext(DEST, ROUTING, '010400000000'),
    ext(ROUTING, DEST, 'fd0000000000'), // an unknown routing type, segments left 0
    ext(DEST, 17, '010400000000'),
    udp(49152, 4789),
    vx,
    eth(0x0800),
    ip4('10.0.0.1', '10.0.0.2', 17),
    udp(1, 2),
    bytesOf(50, 9),
  ]);
  for (const cipher of CIPHERS) {
    for (const encap of [false, true]) {
      const k = keying(cipher, 4);
      const p = load(frame);
      const l3 = p.start + 14;
      assert.equal(espProtect(p, l3, new OutboundSa({ spi: SPI, keying: k }), 0, encap ? { udpEncap: { srcPort: 1, dstPort: 4500 } } : {}), 0);
      const nl3 = p.l3;
      // The Routing header (third extension header) names ESP / UDP; the ESP header follows it.
      const routing = nl3 + 40 + 8 + 8;
      assert.equal(p.data[routing], encap ? 17 : 50);
      assert.equal(p.l4, routing + 8);
      assert.equal(p.data[nl3 + 6], HBH);
      assert.equal(
        espUnprotect(p, nl3, () => new InboundSa({ spi: SPI, keying: k }), 0),
        0,
      );
      assert.equal(hex(p.bytes()), hex(frame));
      assert.equal(p.l4, l3 + 40 + 24, 'the payload ESP carried starts with the trailing Destination Options');
      p.release();
    }
  }
});

test('a VLAN tag, link-layer padding after the IP packet, and IPv4 options come through', () => {
  const k = keying('aes-gcm-128');
  const vlanFrame = compose([
    eth(0x0800, [{ tpid: 0x8100, pcp: 3, dei: false, vid: 42 }]),
    ip4('1.1.1.1', '2.2.2.2', 17, { options: fromHex('94040000') }),
    udp(5, 4789),
    vx,
    bytesOf(30, 1),
  ]);
  const p = load(vlanFrame);
  assert.equal(espProtect(p, p.start + 18, new OutboundSa({ spi: SPI, keying: k }), 0), 0);
  assert.equal(
    espUnprotect(p, p.l3, () => new InboundSa({ spi: SPI, keying: k }), 0),
    0,
  );
  assert.equal(hex(p.bytes()), hex(vlanFrame));
  // A 60-byte minimum Ethernet frame: the padding after the IP packet is not part of it.
  const small = compose([eth(0x0800), ip4('1.1.1.1', '2.2.2.2', 17), udp(5, 6), bytesOf(4, 2)]);
  const padded = new Uint8Array(60);
  padded.set(small);
  p.load(padded);
  assert.equal(espProtect(p, p.start + 14, new OutboundSa({ spi: SPI, keying: k }), 0), 0);
  assert.equal(p.length, small.length + espOverhead({ cipher: 'aes-gcm-128' }, 12));
  assert.equal(
    espUnprotect(p, p.l3, () => new InboundSa({ spi: SPI, keying: k }), 0),
    0,
  );
  assert.equal(hex(p.bytes()), hex(small));
  p.release();
});

test('short headroom or tailroom, a result over 65,535 bytes, an exhausted or expired SA: nothing changes', () => {
  const k = keying('chacha20-poly1305');
  const frame = tunnelFrame(4, 100);
  const out = new OutboundSa({ spi: SPI, keying: k });
  // A buffer with exactly the frame and a little room around it.
  const mk = (head: number, tail: number): PacketBuf => {
    const p = new PacketBuf(new Uint8Array(head + frame.length + tail));
    p.start = head;
    p.end = head + frame.length;
    p.data.set(frame, head);
    return p;
  };
  const payLen = frame.length - 34;
  const tail = espOverhead({ cipher: 'chacha20-poly1305' }, payLen) - 16;
  for (const [head, tl, encap, want] of [
    [15, tail, false, DropReason.HeadroomShort],
    [16, tail - 1, false, DropReason.HeadroomShort],
    [16, tail, false, 0],
    [23, tail, true, DropReason.HeadroomShort],
    [24, tail, true, 0],
  ] as const) {
    const p = mk(head, tl);
    const seq = out.seqLo;
    assert.equal(espProtect(p, head + 14, out, 0, encap ? { udpEncap: { srcPort: 1, dstPort: 4500 } } : {}), want, `${head}/${tl}/${encap}`);
    if (want !== 0) {
      assert.equal(hex(p.bytes()), hex(frame));
      assert.equal(out.seqLo, seq);
    }
  }
  const big = compose([eth(0x0800), ip4('1.1.1.1', '2.2.2.2', 17), udp(5, 6), bytesOf(65535 - 28 - 10, 1)]);
  const bp = new PacketBuf(new Uint8Array(HEADROOM + big.length + TAILROOM));
  bp.load(big);
  assert.equal(espProtect(bp, bp.start + 14, out, 0), DropReason.MtuExceeded);
  const done = new OutboundSa({ spi: SPI, keying: k, resumeAfter: 0xffff_ffffn });
  const p = load(frame);
  assert.equal(espProtect(p, p.start + 14, done, 0), DropReason.EspSaExhausted);
  const old = new OutboundSa({ spi: SPI, keying: k, lifetime: { packets: 1 } });
  assert.equal(espProtect(p, p.start + 14, old, 0), 0);
  p.load(frame);
  assert.equal(espProtect(p, p.start + 14, old, 0), DropReason.EspSaExhausted);
  assert.equal(hex(p.bytes()), hex(frame));
  assert.deepEqual([done.drops[DropReason.EspSaExhausted], old.drops[DropReason.EspSaExhausted], old.packets], [1, 1, 1]);
  p.release();
});

test('protect and unprotect never throw and never read or write outside the buffer, whatever the bytes', () => {
  const k = keying('chacha20-poly1305', 2);
  const inb = new InboundSa({ spi: SPI, keying: k });
  const out = new OutboundSa({ spi: SPI, keying: k });
  const good: Uint8Array[] = [];
  for (const [fam, encap] of [
    [4, false],
    [6, false],
    [4, true],
    [6, true],
  ] as const) {
    const p = load(tunnelFrame(fam, 60));
    espProtect(p, p.start + 14, out, 0, encap ? { udpEncap: { srcPort: 4500, dstPort: 4500 } } : {});
    good.push(p.bytes().slice());
    p.release();
  }
  const damaged = fc
    .tuple(fc.constantFrom(...good), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }), fc.nat(), fc.boolean())
    .map(([g, edits, cut, doCut]) => {
      const f = g.slice(0, doCut ? Math.max(0, g.length - (cut % g.length)) : g.length);
      for (const [at, v] of edits) if (f.length > 0) f[at % f.length] = v;
      return f;
    });
  const anyFrame = fc.oneof(damaged, fc.uint8Array({ maxLength: 200 }));
  const outcomes = new Set<number>();
  fc.assert(
    fc.property(anyFrame, fc.oneof(fc.constant(14), fc.integer({ min: 0, max: 24 })), fc.boolean(), (f, l3off, encap) => {
      // Exactly the frame, with room the code may use around it, behind a proxy that throws outside.
      const raw = new Uint8Array(64 + f.length + 32);
      raw.set(f, 64);
      const p = new PacketBuf(guarded(raw));
      p.start = 64;
      p.end = 64 + f.length;
      const r1 = espUnprotect(p, p.start + l3off, (spi) => (spi === SPI ? inb : null), 0);
      assert.equal(typeof r1, 'number');
      outcomes.add(r1);
      const r2 = espProtect(p, p.start + l3off, out, 0, encap ? { udpEncap: { srcPort: 1, dstPort: 4500 } } : {});
      assert.equal(typeof r2, 'number');
    }),
    { numRuns: 1500 },
  );
  // The damage reached every stage: parsing, the window, the ICV and success.
  for (const r of [0, ESP_NOT_ESP, DropReason.EspAuthFailed, DropReason.EspReplay, DropReason.Ipv4BadTotalLen]) {
    assert.ok(outcomes.has(r), `outcome ${dropReasonName(r)} never seen: ${[...outcomes].map(dropReasonName).join(', ')}`);
  }
});
