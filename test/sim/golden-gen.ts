/** Writes test/sim/golden.json from the current code: `node dist/test/sim/golden-gen.js`. See golden.ts. */
import { writeFileSync } from 'node:fs';
import { computeGolden, GOLDEN_FILE } from './golden.js';

const g = computeGolden();
writeFileSync(GOLDEN_FILE, JSON.stringify(g, null, 1) + '\n');
console.log(`${Object.keys(g).length} digests written to ${GOLDEN_FILE}`);
