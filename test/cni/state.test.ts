/**
 * The CNI attachments file: what is saved is what is loaded, a save replaces the file whole (no temporary
 * file left beside it), no file is no attachments, and a file that is not seine's is refused, not guessed.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { attachmentsFile, type CniAttachment, loadAttachments, saveAttachments } from '../../src/live/cni-state.js';

const dir = mkdtempSync(join(tmpdir(), 'seine-cni-state-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const a = (i: number): CniAttachment => ({
  containerId: `c${i}`,
  ifname: 'eth0',
  netns: `/run/netns/p${i}`,
  network: 'seine',
  port: `cni-c${i}-eth0`,
  mac: `02:00:00:00:00:0${i}`,
  mtu: 1450,
  ip4: `10.244.1.${i + 1}`,
  ip6: null,
  config: { cniVersion: '1.0.0', name: 'seine', type: 'seine', ipam: { type: 'host-local' } },
  path: '/opt/cni/bin',
  args: '',
  result: {
    cniVersion: '1.0.0',
    interfaces: [{ name: 'eth0', mac: `02:00:00:00:00:0${i}` }],
    ips: [{ address: `10.244.1.${i + 1}/24`, interface: 0 }],
    routes: [],
    dns: {},
  },
});

test('attachments: none without a file; saved and loaded alike; a save replaces the file whole', () => {
  const d = join(dir, 'one', 'deeper');
  assert.deepEqual(loadAttachments(d), []);
  saveAttachments(d, [a(1), a(2)]);
  assert.deepEqual(loadAttachments(d), [a(1), a(2)]);
  saveAttachments(d, [a(2)]);
  assert.deepEqual(loadAttachments(d), [a(2)]);
  assert.deepEqual(readdirSync(d), ['attachments.json']);
});

test("attachments: a file that is not seine's (or not JSON) is refused", () => {
  const d = join(dir, 'bad');
  saveAttachments(d, []);
  writeFileSync(attachmentsFile(d), '{"format": 2, "attachments": []}');
  assert.throws(() => loadAttachments(d), /not a seine attachments file/);
  writeFileSync(attachmentsFile(d), '{"format": 1, "attach');
  assert.throws(() => loadAttachments(d), SyntaxError);
});
