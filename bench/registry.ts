/**
 * Every benchmark `npm run bench` knows, in the order it runs them, and the figures each writes into
 * bench-results.json. Later issues add their bench modules to the list below. Kept apart from run.ts
 * (which runs as soon as it is loaded) so that a test can read the declared figures without measuring.
 */
import type { BenchEntry } from './harness.js';
import { wireBenches } from './wire.js';
import { datapathBenches } from './datapath.js';
import { mssBenches } from './mss.js';
import { mtuBenches } from './mtu.js';
import { espBenches, espNativeBenches } from './esp.js';
import { simBenches } from './sim.js';
import { gsoBenches } from './gso.js';
import { superframeBenches } from './superframe.js';
import { cniBenches } from './cni.js';
import { spawnBenches } from './spawn.js';

export function allBenches(): BenchEntry[] {
  return [
    ...wireBenches(),
    ...datapathBenches(),
    ...mssBenches(),
    ...mtuBenches(),
    ...espBenches(),
    ...espNativeBenches(),
    ...gsoBenches(),
    ...simBenches(),
    ...superframeBenches(),
    ...cniBenches(),
    ...spawnBenches(),
  ];
}

/** The figure names an entry writes: its own name, or a one-shot benchmark's declared `figures`. */
export function entryFigures(e: BenchEntry): readonly string[] {
  return e.figures ?? [e.name];
}

/** Every figure name a full `npm run bench` writes, in order. */
export function declaredFigures(entries: readonly BenchEntry[] = allBenches()): string[] {
  return entries.flatMap((e) => entryFigures(e));
}
