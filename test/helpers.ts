/** Shared test helpers. */
import { execFileSync, spawnSync } from 'node:child_process';

export { fromHex, hex } from '../src/wire/bytes.js';

/** A buffer pre-filled with 0xa5 so that a field `emit` forgot to write shows up in the comparison. */
export function dirty(len: number): Uint8Array {
  return new Uint8Array(len).fill(0xa5);
}

function which(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

/**
 * Peers are required, not optional: `.ci/run` installs them. A missing peer fails the test with a
 * message naming the install step instead of silently skipping what the test exists to prove.
 */
export function requireTool(cmd: string, aptPackage: string): void {
  if (!which(cmd)) throw new Error(`${cmd} is required for this test: apt-get install ${aptPackage} (see .ci/run)`);
}

/** Debian's python3 (with python3-scapy); the python3 first on PATH may be another one. */
export const SYSTEM_PYTHON = '/usr/bin/python3';

export function requireScapy(): void {
  const r = spawnSync(SYSTEM_PYTHON, ['-c', 'import scapy'], { stdio: 'ignore' });
  if (r.status !== 0) throw new Error('scapy is required for this test: apt-get install python3-scapy (see .ci/run)');
}

export function run(cmd: string, args: string[], input?: string): string {
  return execFileSync(cmd, args, { encoding: 'utf8', maxBuffer: 256 << 20, ...(input !== undefined ? { input } : {}), stdio: ['pipe', 'pipe', 'pipe'] });
}

/**
 * A view of `bytes` that throws on any index read or write outside `[0, length)`. A plain Uint8Array
 * returns `undefined` there, which `!`-asserted arithmetic silently turns into 0 — exactly the bug a
 * fuzz test must catch. Methods are bound to the real array (typed-array methods refuse a Proxy `this`).
 */
export function guarded(bytes: Uint8Array): Uint8Array {
  const isIndex = (p: string | symbol): p is string => typeof p === 'string' && /^-?\d+$/.test(p);
  return new Proxy(bytes, {
    get(target, p) {
      if (isIndex(p)) {
        const i = Number(p);
        if (i < 0 || i >= target.length) throw new RangeError(`read at ${i} outside frame of ${target.length}`);
        return target[i];
      }
      const v: unknown = Reflect.get(target, p, target);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
    set(target, p, value) {
      if (isIndex(p)) {
        const i = Number(p);
        if (i < 0 || i >= target.length) throw new RangeError(`write at ${i} outside frame of ${target.length}`);
        target[i] = value as number;
        return true;
      }
      return Reflect.set(target, p, value, target);
    },
  });
}

/** A seeded xorshift32 generator: loops that need many random values (floods, shuffles, spreads) replay exactly. */
export function rng(seed: number): () => number {
  let x = seed | 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
}

/** Seeded random bytes (`rng`'s low bytes): an ESP node's `random`, or a payload that replays exactly. */
export function randomBytesFrom(seed: number): (n: number) => Uint8Array {
  const r = rng(seed);
  return (n) => Uint8Array.from({ length: n }, () => r() & 0xff);
}
