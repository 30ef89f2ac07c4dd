/**
 * The simulator's output is byte for byte what golden.json recorded (reports, text, captures, traces;
 * see golden.ts). A difference names every output that changed.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { computeGolden, GOLDEN_FILE, type Golden } from './golden.js';

test('golden: every lab (two seeds), the extra scenarios and the traces give the recorded reports, captures and traces', () => {
  const want = JSON.parse(readFileSync(GOLDEN_FILE, 'utf8')) as Golden;
  const got = computeGolden();
  const changed = Object.keys({ ...want, ...got }).filter((k) => want[k] !== got[k]);
  assert.deepEqual(changed, [], `outputs that differ from ${GOLDEN_FILE}: missing in one side or another digest`);
  assert.ok(Object.keys(want).length > 50);
});
