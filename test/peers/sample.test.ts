import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { writeCatalogue } from './write-catalogue.js';

test('the sample capture the README decodes is the current catalogue (npm run catalogue rewrites it)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'seine-sample-'));
  try {
    const path = join(dir, 'catalogue.pcapng');
    writeCatalogue(path);
    const committed = readFileSync(new URL('../../../scenarios/captures/catalogue.pcapng', import.meta.url));
    assert.ok(Buffer.compare(readFileSync(path), committed) === 0, 'scenarios/captures/catalogue.pcapng is stale: run npm run build && npm run catalogue');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
