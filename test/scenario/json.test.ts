/**
 * The JSON front door (src/scenario/json.ts): JSON text loads as the same scenario as its YAML form, the
 * parser agrees with `JSON.parse` on what is JSON and what is not, and mistakes are refused in the YAML
 * loader's words with the file, line, column and key.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { bigClusterJson, bigClusterYaml } from '../../bench/cluster-scenarios.js';
import { JsonSyntaxError, parseJsonDocument } from '../../src/scenario/json.js';
import { loadScenario, parseScenario, scenarioToObject } from '../../src/scenario/scenario.js';
import { scenarioError } from './refused.js';
import { isMap, isScalar, isSeq, stringify } from '../../src/scenario/yaml.js';

/** This file runs as dist/test/scenario/json.test.js: the project root is three levels up. */
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'seine-json-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const err = scenarioError;

/** Document nodes back to plain data, to compare with `JSON.parse`. */
function plain(n: unknown): unknown {
  if (isMap(n)) return Object.fromEntries(n.items.map((p) => [(p.key as { value: string }).value, plain(p.value)]));
  if (isSeq(n)) return n.items.map(plain);
  if (isScalar(n)) return n.value;
  throw new Error('not a document node');
}

test('json: every lab in scenarios/ loads from JSON as the same scenario as from its YAML', () => {
  const labs = readdirSync(join(ROOT, 'scenarios')).filter((f) => f.endsWith('.yaml'));
  assert.ok(labs.length >= 5, `found the labs (${labs.length})`);
  for (const f of labs) {
    const fromYaml = loadScenario(join(ROOT, 'scenarios', f));
    const json = JSON.stringify(scenarioToObject(fromYaml), null, 2);
    // The same folder: a replay capture is found relative to the scenario file.
    const fromJson = parseScenario(json, join(ROOT, 'scenarios', f.replace(/\.yaml$/, '.json')));
    assert.deepEqual(fromJson, parseScenario(stringify(scenarioToObject(fromYaml)), join(ROOT, 'scenarios', f)), f);
  }
});

test("json: the bench's generated cluster is one scenario in both forms", () => {
  const spec = { nodes: 6, podsPerNode: 3, flows: 40, packets: 4, intervalUs: 1000, startSpreadMs: 100, durationMs: 500, seed: 9 };
  const y = parseScenario(bigClusterYaml(spec), 'g.yaml');
  const j = parseScenario(bigClusterJson(spec), 'g.json');
  assert.deepEqual(j, y);
  assert.equal(j.traffic.length, 40);
});

test('json: property: the parser accepts what JSON.parse accepts, with the same values, and refuses the rest', () => {
  fc.assert(
    fc.property(fc.json(), (text) => {
      assert.deepEqual(plain(parseJsonDocument(text).contents), JSON.parse(text));
    }),
    { numRuns: 300 },
  );
  fc.assert(
    fc.property(
      fc.oneof(
        fc.string(),
        fc.json().map((t) => t.slice(0, Math.max(0, t.length - 1))),
      ),
      (text) => {
        let ok = true;
        try {
          JSON.parse(text);
        } catch {
          ok = false;
        }
        let ours = true;
        try {
          parseJsonDocument(text);
        } catch (e: unknown) {
          // A key twice is the one thing JSON.parse takes and we refuse (the YAML loader refuses it too).
          if (e instanceof JsonSyntaxError && /a second time/.test(e.message)) return;
          if (!(e instanceof JsonSyntaxError)) throw e;
          ours = false;
        }
        assert.equal(ours, ok, JSON.stringify(text));
      },
    ),
    { numRuns: 500 },
  );
});

test('json: property: a number reads as JSON.parse reads it, integers by hand and the rest by the regex alike', () => {
  const digits = fc.stringMatching(/^-?[0-9]{1,20}(\.[0-9]{0,3})?([eE][+-]?[0-9]{0,3})?$/);
  const odd = fc.constantFrom('0', '-0', '01', '-01', '00', '-', '1.', '1e', '0e1', '-0.0', '123456789012345', '1234567890123456', '99999999999999999999');
  fc.assert(
    fc.property(fc.oneof(digits, odd, fc.maxSafeInteger().map(String), fc.double({ noNaN: true, noDefaultInfinity: true }).map(JSON.stringify)), (n) => {
      for (const text of [n, `[${n}]`, `{"k": ${n}, "j": 1}`]) {
        let want: unknown;
        try {
          want = JSON.parse(text);
        } catch {
          assert.throws(() => parseJsonDocument(text), JsonSyntaxError, text);
          continue;
        }
        const got = plain(parseJsonDocument(text).contents);
        assert.deepEqual(got, want, text);
        if (typeof want === 'number') assert.ok(Object.is(got, want), `${text}: ${String(got)} is not ${String(want)}`);
      }
    }),
    { numRuns: 1000 },
  );
});

test('json: mistakes are refused with the file, line, column and key, in the words of the YAML loader', () => {
  const yaml = err('name: t\nnodes:\n  - name: a\n    podCidr: 10.0.0.0/24\n', 'bad.yaml');
  const json = err('{\n "name": "t",\n "nodes": [\n  { "name": "a", "podCidr": "10.0.0.0/24" }\n ]\n}\n', 'bad.json');
  assert.equal(json.key, yaml.key);
  assert.equal(json.expected, yaml.expected);
  assert.equal(json.hint, yaml.hint);
  assert.equal(
    json.message,
    'bad.json:4:18: nodes[0].podCidr: expected one of the keys name, podCIDR, underlayIp, pods, got "podCidr" (did you mean "podCIDR"?)',
  );
  const syntax = err('{\n "name": "t",\n "nodes": [ }\n', 'x.json');
  assert.equal(syntax.message, 'x.json:3:13: expected well-formed JSON, got a syntax error: expected a JSON value, got "}"');
  const dup = err('{"name": "t", "name": "u"}', 'd.json');
  assert.match(dup.message, /^d\.json:1:15: expected well-formed JSON, got a syntax error: the key "name" a second time in one object$/);
  // Past 16 keys a set finds the repeat instead of a search: the same refusal, at the second "k3".
  const many = `{${Array.from({ length: 20 }, (_, i) => `"k${i}": ${i}`).join(', ')}, "k3": 0}`;
  const dupMany = err(many, 'm.json');
  assert.equal(
    dupMany.message,
    `m.json:1:${many.lastIndexOf('"k3"') + 1}: expected well-formed JSON, got a syntax error: the key "k3" a second time in one object`,
  );
  const distinct = parseJsonDocument(`{${Array.from({ length: 40 }, (_, i) => `"k${i}": ${i}`).join(', ')}}`).contents;
  assert.ok(isMap(distinct) && distinct.items.length === 40, '40 distinct keys are all kept');
  assert.match(err('', 'e.json').message, /^e\.json:1:1: expected well-formed JSON/);
  assert.match(err('[1, 2]', 'l.json').message, /^l\.json:1:1: expected a scenario mapping, got a list$/);
  assert.match(err('{"name": "t"} x', 't.json').message, /^t\.json:1:15: expected well-formed JSON, got a syntax error: text after the value$/);
  // Deep nesting is refused, not a crash.
  assert.match(err('['.repeat(200_000), 'deep.json').message, /^deep\.json:1:1: expected JSON nested to a sensible depth/);
});

test('json: seine run takes a .json scenario and reports as for its YAML', () => {
  const main = join(ROOT, 'dist', 'src', 'cli', 'main.js');
  const yamlFile = join(ROOT, 'scenarios', 'two-nodes-vxlan.yaml');
  const jsonFile = join(dir, 'two-nodes-vxlan.json');
  writeFileSync(jsonFile, JSON.stringify(scenarioToObject(loadScenario(yamlFile))));
  const run = (f: string) => spawnSync(process.execPath, [main, 'run', f, '--json', '--no-progress'], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  const a = run(yamlFile);
  const b = run(jsonFile);
  assert.equal(a.status, 0, a.stderr);
  assert.equal(b.status, 0, b.stderr);
  assert.deepEqual(JSON.parse(b.stdout).flows, JSON.parse(a.stdout).flows);
});
