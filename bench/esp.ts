/**
 * ESP benchmarks: the whole ESP path on a pooled buffer against the bare AEAD primitive it is built on,
 * per cipher, in one group (one process, rounds interleaved) so that the ratio carries no drift.
 *
 * The packet is a VXLAN tunnel packet carrying a 1400-byte inner IP packet: an outer IPv4 packet of 1450
 * bytes (20 + 8 + 8 + 14 + 1400) in a 1464-byte frame, so ESP protects a 1430-byte IP payload (1432
 * bytes with the trailer, no padding needed). Rates are Gbit/s of inner bytes (1400 per packet) for every
 * figure, so a ratio is a ratio of per-packet times.
 *
 * - `esp.<c>.aead.seal`: `Aead.seal` over the 1432 plaintext bytes in place (tag behind them);
 * - `esp.<c>.encrypt`: `espProtect` of the frame — the headers are put back first (34 bytes and the
 *   window), as the encrypted payload can be encrypted again without changing the cost;
 * - `esp.<c>.aead.open`: copy of a sealed message (1448 bytes) into place, then `Aead.open`;
 * - `esp.<c>.decrypt`: copy of a protected frame (1498 bytes) into place, then `espUnprotect` — 64
 *   frames with sequence numbers 1-64, the SA's window reset after each pass over them.
 */
import { spawnSync } from 'node:child_process';
import { createAead } from '../src/esp/aead.js';
import type { NativeAead } from '../src/esp/aead-batch.js';
import { EspOpenBatch, espProtect, EspSealBatch, espUnprotect } from '../src/esp/esp.js';
import { loadNative, nativeUnavailable } from '../src/live/native.js';
import { InboundSa, OutboundSa, type EspKeying } from '../src/esp/sa.js';
import { PacketPool } from '../src/packet/buf.js';
import { compose, type Layer } from '../src/wire/stack.js';
import { eth, ip4, udp } from '../test/peers/catalogue.js';
import type { Bench, BenchEntry } from './harness.js';

const INNER = 1400;
const ETH = 14;
const SPI = 0x5e1e;
const RING = 64;

type CipherKey = 'chacha' | 'aes128gcm';
const CIPHER: Record<CipherKey, EspKeying['cipher']> = { chacha: 'chacha20-poly1305', aes128gcm: 'aes-gcm-128' };
const TARGET: Record<CipherKey, number> = { chacha: 5, aes128gcm: 3 };

function keying(c: CipherKey): EspKeying {
  const cipher = CIPHER[c];
  return { cipher, key: new Uint8Array(cipher === 'aes-gcm-128' ? 16 : 32).map((_, i) => i * 7 + 1), salt: new Uint8Array([1, 2, 3, 4]) };
}

function frame(seed: number): Uint8Array {
  const payload = new Uint8Array(INNER - 28).map((_, i) => (i * 31 + seed) & 0xff);
  const layers: Layer[] = [
    eth(0x0800),
    ip4('192.168.1.1', '192.168.1.2', 17, { ident: seed }),
    udp(49152 + seed, 4789, true),
    { kind: 'vxlan', repr: { vni: 5001 } },
    eth(0x0800),
    ip4('10.244.1.5', '10.244.2.7', 17),
    udp(40000, 5201),
    { kind: 'data', bytes: payload },
  ];
  const f = compose(layers);
  if (f.length !== ETH + 20 + 8 + 8 + 14 + INNER) throw new Error(`esp bench: frame of ${f.length} bytes`);
  return f;
}

/** The ESP plaintext length for the frame: IP payload + trailer (+ padding, none here). */
const PT_LEN = 8 + 8 + 14 + INNER + 2;

function sealBench(c: CipherKey): Bench {
  const pool = new PacketPool({ count: 1, frameCapacity: 2048 });
  const p = pool.alloc()!;
  p.load(frame(1));
  const k = keying(c);
  const aead = createAead(k.cipher, k.key);
  const nonce = new Uint8Array(12);
  const aad = new Uint8Array(8);
  const off = p.start + ETH + 20;
  return {
    name: `esp.${c}.aead.seal`,
    what: `bare ${k.cipher} seal of ${PT_LEN} bytes in place (the ESP plaintext of a 1400-byte inner packet)`,
    unit: 'Gbit/s',
    bytesPerOp: INNER,
    run(n) {
      let s = 0;
      for (let i = 0; i < n; i++) {
        nonce[11] = i & 0xff;
        if (aead.seal(p.data, off, PT_LEN, off + PT_LEN, nonce, aad)) s++;
      }
      if (s !== n) throw new Error('esp bench: seal failed');
      return { ops: n, sink: p.data[off]! + s };
    },
  };
}

function encryptBench(c: CipherKey): Bench {
  const pool = new PacketPool({ count: 1, frameCapacity: 2048 });
  const p = pool.alloc()!;
  const f = frame(1);
  p.load(f);
  const start = p.start;
  const head = f.subarray(0, ETH + 20);
  const k = keying(c);
  const sa = new OutboundSa({ spi: SPI, keying: k });
  return {
    name: `esp.${c}.encrypt`,
    what: `espProtect of a 1464-byte VXLAN frame over IPv4 (1400-byte inner packet) with ${k.cipher}, pooled buffer`,
    unit: 'Gbit/s',
    bytesPerOp: INNER,
    target: TARGET[c],
    reference: `esp.${c}.aead.seal`,
    minRatio: 0.8,
    run(n) {
      let s = 0;
      const d = p.data;
      for (let i = 0; i < n; i++) {
        d.set(head, start);
        p.start = start;
        p.end = start + f.length;
        s += espProtect(p, start + ETH, sa, 0);
      }
      if (s !== 0) throw new Error(`esp bench: espProtect failed (${s})`);
      return { ops: n, sink: p.end + sa.seqLo };
    },
  };
}

function openBench(c: CipherKey): Bench {
  const pool = new PacketPool({ count: 1, frameCapacity: 2048 });
  const p = pool.alloc()!;
  p.load(frame(1));
  const k = keying(c);
  const aead = createAead(k.cipher, k.key);
  const nonce = new Uint8Array(12);
  const aad = new Uint8Array(8);
  const off = p.start + ETH + 20;
  aead.seal(p.data, off, PT_LEN, off + PT_LEN, nonce, aad);
  const sealed = p.data.slice(off, off + PT_LEN + 16);
  return {
    name: `esp.${c}.aead.open`,
    what: `copy of ${PT_LEN + 16} sealed bytes into place and bare ${k.cipher} open`,
    unit: 'Gbit/s',
    bytesPerOp: INNER,
    run(n) {
      let s = 0;
      for (let i = 0; i < n; i++) {
        p.data.set(sealed, off);
        if (aead.open(p.data, off, PT_LEN, off + PT_LEN, nonce, aad)) s++;
      }
      if (s !== n) throw new Error('esp bench: open failed');
      return { ops: n, sink: p.data[off]! + s };
    },
  };
}

function decryptBench(c: CipherKey): Bench {
  const pool = new PacketPool({ count: 1, frameCapacity: 2048 });
  const p = pool.alloc()!;
  const k = keying(c);
  const out = new OutboundSa({ spi: SPI, keying: k });
  const wires: Uint8Array[] = [];
  for (let i = 0; i < RING; i++) {
    p.load(frame(1));
    if (espProtect(p, p.start + ETH, out, 0) !== 0) throw new Error('esp bench: protect failed');
    wires.push(p.bytes().slice());
  }
  const sa = new InboundSa({ spi: SPI, keying: k });
  const lookup = (spi: number): InboundSa | null => (spi === SPI ? sa : null);
  let j = 0;
  return {
    name: `esp.${c}.decrypt`,
    what: `copy of a protected frame (${wires[0]!.length} bytes) into a pooled buffer and espUnprotect with ${k.cipher}`,
    unit: 'Gbit/s',
    bytesPerOp: INNER,
    target: TARGET[c],
    reference: `esp.${c}.aead.open`,
    minRatio: 0.8,
    run(n) {
      let s = 0;
      const d = p.data;
      for (let i = 0; i < n; i++) {
        const w = wires[j]!;
        d.set(w, 0);
        p.start = 0;
        p.end = w.length;
        s += espUnprotect(p, ETH, lookup, 0);
        if (++j === RING) {
          j = 0;
          sa.resetWindow();
        }
      }
      if (s !== 0) throw new Error(`esp bench: espUnprotect failed (${s})`);
      return { ops: n, sink: p.end + sa.topLo };
    },
  };
}

export function espBenches(): BenchEntry[] {
  const out: BenchEntry[] = [];
  for (const c of ['chacha', 'aes128gcm'] as const) {
    const group = `esp.${c}`;
    out.push(
      { name: `esp.${c}.aead.seal`, group, make: () => sealBench(c) },
      { name: `esp.${c}.encrypt`, group, make: () => encryptBench(c) },
      { name: `esp.${c}.aead.open`, group, make: () => openBench(c) },
      { name: `esp.${c}.decrypt`, group, make: () => decryptBench(c) },
    );
  }
  return out;
}

// ---- the live path: ESP over the native batch AEAD, against `openssl speed` --------------------------------

/*
 * `esp.native.<c>.encrypt` / `.decrypt`: the whole batched ESP path of the live datapath (EspSealBatch /
 * EspOpenBatch over the addon's AEAD, Node's own OpenSSL) on 64 pooled frames per batch, each a VXLAN
 * packet carrying a 1400-byte inner packet as above; Gbit/s of inner bytes. Per batch, encrypt puts the
 * 64 frames' headers back (the payload, already encrypted, costs the same again), protects them and
 * seals the batch in one call; decrypt copies 64 protected frames (sequence numbers 1-64) into place,
 * checks them, opens the batch in one call and finishes each, the window reset after each batch.
 *
 * `esp.native.<c>.openssl` is the reference the targets are relative to: `openssl speed -evp <cipher>
 * -bytes 1024 -seconds 1 -elapsed -mr` (1024 bytes: the largest size the figures use; wall-clock
 * time, as every figure here) in the same process group, its rounds interleaved with the ESP figures'.
 * Its rate is openssl's own (bytes per second of its loop, from the `+F` line of the machine-readable
 * output), not the process's start-up and exit: the harness divides by the wall time of `run`, so `run`
 * reports the operations openssl's rate gives for that time.
 *
 * Why ChaCha20-Poly1305 misses 0.4× of it while AES-GCM does not (measured 2026-12-07 on the 2-core AMD
 * EPYC with AVX-512, OpenSSL 3.0.19, a C harness over the system libcrypto, perf and uprobes): `openssl
 * speed -evp chacha20-poly1305` — with `-aead` too: 0 EVP_EncryptInit_ex and 1 Final per run — times one
 * EVP_EncryptUpdate per 1024 bytes of one long stream: no nonce, no Poly1305 key, no tag, and 1024 bytes
 * is exactly one pass of OpenSSL's 16-block AVX-512 ChaCha20 (~280 ns). An ESP packet pays per packet
 * what a stream does not, and its 1432 bytes are 22 blocks and 24 bytes: the update alone takes ~630 ns,
 * the full EVP sequence (nonce, AAD, update, final, tag) ~1000-1100 ns — the Poly1305 key is a one-block
 * ChaCha20 call in OpenSSL's latency-bound short-input code (~170 ns), the partial last block as much
 * again, Poly1305 set-up and final ~160-250 ns. The payload's offset in the slab (34 mod 64 vs aligned)
 * and 64 buffers vs 1 moved nothing beyond the noise. AES-GCM's per-message set-up is a counter and a
 * few blocks, so its stream and packet rates are close. Building the AEAD from OpenSSL's ChaCha20_ctr32
 * and Poly1305 primitives (exported by node, in no public header) was measured at ~620 ns per seal and
 * ~640 per open (encrypt 11.2-11.5, decrypt 10.1-10.4 Gbit/s: 0.36-0.39×, still short) and not adopted:
 * it would hand-compose an AEAD from non-public symbols where the design keeps the addon on EVP. The
 * 6 Gbit/s target is met; the ratio is missed by what the stream figure does not pay.
 */

type NativeKey = 'aes128gcm' | 'aes256gcm' | 'chacha';
const NATIVE_CIPHER: Record<NativeKey, { cipher: EspKeying['cipher']; openssl: string; target?: number }> = {
  aes128gcm: { cipher: 'aes-gcm-128', openssl: 'aes-128-gcm', target: 8 },
  aes256gcm: { cipher: 'aes-gcm-256', openssl: 'aes-256-gcm' },
  chacha: { cipher: 'chacha20-poly1305', openssl: 'chacha20-poly1305', target: 6 },
};
const BATCH = 64;
/** Each ESP figure must reach this fraction of `openssl speed` for its cipher. */
const OPENSSL_RATIO = 0.4;

function nativeKeying(c: NativeKey): EspKeying {
  const cipher = NATIVE_CIPHER[c].cipher;
  return { cipher, key: new Uint8Array(cipher === 'aes-gcm-128' ? 16 : 32).map((_, i) => i * 7 + 1), salt: new Uint8Array([1, 2, 3, 4]) };
}

function native(): NativeAead {
  const why = nativeUnavailable();
  if (why !== null) throw new Error(`esp bench: ${why}`);
  return loadNative();
}

/** One `openssl speed` run: bytes per second at 1024-byte buffers. */
function opensslRate(alg: string): number {
  const r = spawnSync('openssl', ['speed', '-evp', alg, '-bytes', '1024', '-seconds', '1', '-elapsed', '-mr'], { encoding: 'utf8' });
  if (r.error !== undefined) throw new Error(`esp bench: openssl speed did not run (${r.error.message}); the openssl CLI is in the Debian package openssl`);
  // `+F:<n>:<cipher>:<bytes/s for each size>`: one size asked, so the last field.
  const line = r.stdout.split('\n').find((l) => l.startsWith('+F:'));
  const rate = line === undefined ? NaN : Number(line.split(':').at(-1));
  if (!(rate > 0)) throw new Error(`esp bench: no rate in openssl speed's output for ${alg}:\n${r.stdout}${r.stderr}`);
  return rate;
}

function opensslBench(c: NativeKey): Bench {
  const alg = NATIVE_CIPHER[c].openssl;
  return {
    name: `esp.native.${c}.openssl`,
    what: `openssl speed -evp ${alg} -bytes 1024 -seconds 1 -elapsed (its own loop, the machine's limit for this cipher)`,
    unit: 'Gbit/s',
    bytesPerOp: 1024,
    run(n) {
      const t0 = process.hrtime.bigint();
      let rate = 0;
      for (let i = 0; i < n; i++) rate += opensslRate(alg);
      const s = Number(process.hrtime.bigint() - t0) / 1e9;
      return { ops: ((rate / n) * s) / 1024, sink: rate };
    },
  };
}

function nativeSealBench(c: NativeKey): Bench {
  const pool = new PacketPool({ count: BATCH, frameCapacity: 2048 });
  const ps = Array.from({ length: BATCH }, (_, i) => {
    const p = pool.alloc()!;
    p.load(frame(i + 1));
    return p;
  });
  const f = frame(1);
  const start = ps[0]!.start;
  const heads = ps.map((p) => p.data.slice(start, start + ETH + 20));
  const k = nativeKeying(c);
  const sa = new OutboundSa({ spi: SPI, keying: k });
  const sb = new EspSealBatch(native(), BATCH);
  return {
    name: `esp.native.${c}.encrypt`,
    what: `EspSealBatch: ${BATCH} frames as esp.<c>.encrypt's protected and sealed in one native call, ${k.cipher}`,
    unit: 'Gbit/s',
    bytesPerOp: INNER,
    ...(NATIVE_CIPHER[c].target !== undefined ? { target: NATIVE_CIPHER[c].target } : {}),
    reference: `esp.native.${c}.openssl`,
    minRatio: OPENSSL_RATIO,
    run(n) {
      let s = 0;
      for (let i = 0; i < n; i++) {
        for (let j = 0; j < BATCH; j++) {
          const p = ps[j]!;
          p.data.set(heads[j]!, start);
          p.start = start;
          p.end = start + f.length;
          s += sb.protect(p, start + ETH, sa, 0);
        }
        sb.seal();
      }
      if (s !== 0) throw new Error(`esp bench: protect failed (${s})`);
      return { ops: n * BATCH, sink: ps[0]!.end + sa.seqLo };
    },
  };
}

function nativeOpenBench(c: NativeKey): Bench {
  const pool = new PacketPool({ count: BATCH, frameCapacity: 2048 });
  const k = nativeKeying(c);
  const out = new OutboundSa({ spi: SPI, keying: k });
  const ps = Array.from({ length: BATCH }, (_, i) => {
    const p = pool.alloc()!;
    p.load(frame(i + 1));
    return p;
  });
  const wires = ps.map((p) => {
    if (espProtect(p, p.start + ETH, out, 0) !== 0) throw new Error('esp bench: protect failed');
    return p.bytes().slice();
  });
  const sa = new InboundSa({ spi: SPI, keying: k });
  const lookup = (spi: number): InboundSa | null => (spi === SPI ? sa : null);
  const ob = new EspOpenBatch(native(), BATCH);
  return {
    name: `esp.native.${c}.decrypt`,
    what: `EspOpenBatch: ${BATCH} protected frames copied into pooled buffers, checked, opened in one native call, finished, ${k.cipher}`,
    unit: 'Gbit/s',
    bytesPerOp: INNER,
    ...(NATIVE_CIPHER[c].target !== undefined ? { target: NATIVE_CIPHER[c].target } : {}),
    reference: `esp.native.${c}.openssl`,
    minRatio: OPENSSL_RATIO,
    run(n) {
      let s = 0;
      for (let i = 0; i < n; i++) {
        for (let j = 0; j < BATCH; j++) {
          const p = ps[j]!;
          const w = wires[j]!;
          p.data.set(w, 0);
          p.start = 0;
          p.end = w.length;
          s += ob.check(p, ETH, lookup, 0);
        }
        ob.open();
        for (let j = 0; j < BATCH; j++) s += ob.finish(j, ps[j]!, 0);
        ob.clear();
        sa.resetWindow();
      }
      if (s !== 0) throw new Error(`esp bench: unprotect failed (${s})`);
      return { ops: n * BATCH, sink: ps[0]!.end + sa.topLo };
    },
  };
}

export function espNativeBenches(): BenchEntry[] {
  const out: BenchEntry[] = [];
  for (const c of ['aes128gcm', 'aes256gcm', 'chacha'] as const) {
    const group = `esp.native.${c}`;
    out.push(
      { name: `esp.native.${c}.openssl`, group, make: () => opensslBench(c) },
      { name: `esp.native.${c}.encrypt`, group, make: () => nativeSealBench(c) },
      { name: `esp.native.${c}.decrypt`, group, make: () => nativeOpenBench(c) },
    );
  }
  return out;
}
