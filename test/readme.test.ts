/**
 * The README's code runs: its "Building a node" example is taken out of README.md, pointed at the built
 * package entry, executed, and the node it builds is inspected — so the README cannot drift from the API.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Bridge } from '../src/datapath/bridge.js';

/** This file runs as dist/test/readme.test.js: the project root is two levels up. */
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'seine-readme-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function snippetAfter(heading: string): string {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const at = readme.indexOf(heading);
  assert.ok(at >= 0, `README.md has "${heading}"`);
  const m = /```ts\n([\s\S]*?)```/.exec(readme.slice(at));
  assert.ok(m !== null, `a ts code block follows "${heading}"`);
  return m[1]!;
}

test('README: the "Building a node" example runs and builds the node it describes', async () => {
  const code = snippetAfter('**Building a node**');
  const entry = pathToFileURL(join(ROOT, 'dist', 'src', 'index.js')).href;
  assert.match(code, /from 'seine'/);
  const file = join(dir, 'example.mjs');
  writeFileSync(file, `${code.replace("from 'seine'", `from '${entry}'`)}\nexport { node, pool };\n`);
  const mod = (await import(pathToFileURL(file).href)) as { node: Bridge };
  const node = mod.node;
  assert.deepEqual(
    node.ports.map((p) => p?.name),
    ['gw0', 'pod-a', 'tun0'],
  );
  assert.equal(node.tunnel('tun0').kind, 'geneve');
  assert.equal(node.tunnel('tun0').vteps.length, 1);
  assert.notEqual(node.gateway, null);
  assert.notEqual(node.trace, null);
});

test('README: the MTU table is what `seine mtu` prints', async () => {
  const { formatMtuTable } = await import('../src/cli/mtu.js');
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  assert.ok(readme.includes(formatMtuTable([1500, 9000]) + '\n'), 'README.md shows the output of `seine mtu` (regenerate it: node dist/src/cli/main.js mtu)');
});

test('README: the sample report is what `seine run scenarios/two-nodes-vxlan.yaml` prints', async () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const at = readme.indexOf('## The simulator');
  assert.ok(at >= 0);
  const m = /```\n([\s\S]*?)```/.exec(readme.slice(at));
  assert.ok(m !== null, 'a code block follows "## The simulator"');
  const { Cluster, formatReport } = await import('../src/sim/cluster.js');
  const { loadScenario } = await import('../src/scenario/scenario.js');
  const c = new Cluster(loadScenario(join(ROOT, 'scenarios', 'two-nodes-vxlan.yaml')), { capture: false });
  c.run();
  assert.equal(m[1]!.trimEnd(), formatReport(c.report()));
});

test("README: the set-up is .ci/run's install, not a second package list, and needs no sudo; lessons say npx seine", () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const ci = readFileSync(join(ROOT, '.ci', 'run'), 'utf8');
  const setup = readme.slice(readme.indexOf('## Set-up on a fresh machine'), readme.indexOf('The main job'));
  assert.ok(setup.length > 0);
  // One list, in .ci/run: the README points at it instead of repeating (and forking) it.
  assert.doesNotMatch(readme, /apt-get install/, 'README.md names no packages to install: .ci/run holds the list');
  assert.match(setup, /\.ci\/run/);
  assert.match(ci, /^apt_packages=\(/m);
  // What the README says .ci/run does, .ci/run does.
  for (const w of ['apt-get update', 'DEBIAN_FRONTEND=noninteractive', '--no-install-recommends']) {
    assert.ok(setup.includes(w), `README.md says ${w}`);
    assert.ok(ci.includes(w), `.ci/run does ${w}`);
  }
  for (const p of ['wireshark-common', 'tshark']) assert.match(ci.slice(ci.indexOf('apt_packages=(')), new RegExp(`\\b${p}\\b`));
  assert.doesNotMatch(readme, /^\s*sudo /m, 'a root-only machine has no sudo');
  // Lessons: a newcomer types what the lesson says, and `seine` is not on the PATH; `npx seine` is.
  for (const f of readdirSync(join(ROOT, 'scenarios')).filter((x) => x.endsWith('.yaml'))) {
    const text = readFileSync(join(ROOT, 'scenarios', f), 'utf8');
    for (const m of text.matchAll(/seine (run|trace|decode|mtu|lab|capture|bench)\b/g))
      assert.equal(text.slice(Math.max(0, m.index - 4), m.index), 'npx ', `${f}: '${m[0]}' without npx`);
  }
});
