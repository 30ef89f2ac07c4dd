/**
 * The HTML run report: the series it draws are the run's own numbers (and sampling them does not change
 * the run), a saved report gives the same page, bad input is refused with the file and key named, and
 * Debian's headless Chromium loads the page with no console error and no request, draws every chart,
 * and its screenshot is not blank.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadScenario } from '../../src/scenario/scenario.js';
import { Cluster } from '../../src/sim/cluster.js';
import { type RunRecord, SERIES_FLOWS, SeriesRecorder, seriesInterval, seriesSamples, SERIES_SAMPLES } from '../../src/sim/record.js';
import { renderHtml } from '../../src/cli/html.js';
import { esc } from '../../src/plot/svg.js';
import { runRecord } from '../../src/sim/record.js';
import { parseRunRecord } from '../../src/cli/report.js';
import { CHROMIUM, checkPage, checkPages, haveChromium, pngStats } from './chromium.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const MAIN = join(ROOT, 'dist', 'src', 'cli', 'main.js');
const dir = mkdtempSync(join(tmpdir(), 'seine-html-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function seine(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 60_000, maxBuffer: 64 << 20 });
  if (r.error !== undefined) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A run with its series, and the report of the same run without them. */
function runBoth(file: string): { withSeries: Cluster; rec: SeriesRecorder; without: Cluster } {
  const s = loadScenario(join(ROOT, file));
  const withSeries = new Cluster(s, { capture: false });
  const rec = new SeriesRecorder(withSeries);
  withSeries.run(() => {}, rec);
  const without = new Cluster(s, { capture: false });
  without.run(() => {});
  return { withSeries, rec, without };
}

test('record: the sampling interval is 1, 2 or 5 × 10^k ns and gives at most SERIES_SAMPLES samples', () => {
  assert.equal(seriesInterval(4e9), 20e6);
  assert.equal(seriesInterval(10e9), 50e6);
  assert.equal(seriesInterval(1e6), 5e3);
  for (const d of [1e3, 7e5, 3.3e9, 86400e9]) {
    const i = seriesInterval(d);
    assert.ok(d / i <= SERIES_SAMPLES, `${d}`);
    assert.ok(d / (i / 2.5) > SERIES_SAMPLES || i === 1e3, `${d}: ${i} is not the smallest`);
  }
});

test('record: a big cluster gets fewer samples (each reads every port and path), never fewer than 20', () => {
  assert.equal(seriesSamples(3, 3 * 4), SERIES_SAMPLES);
  assert.equal(seriesSamples(200, 2400), 94);
  assert.equal(seriesSamples(1000, 12000), 20);
  assert.equal(seriesInterval(2e9, seriesSamples(200, 2400)), 50e6);
});

test('record: sampling reads between events — the run and its report are the same with and without series', () => {
  const { withSeries, without } = runBoth('scenarios/tcp-goodput.yaml');
  assert.equal(withSeries.sim.events, without.sim.events);
  assert.equal(JSON.stringify(withSeries.report()), JSON.stringify(without.report()));
});

test('record: the series add up to the report — TCP bytes acknowledged, drops by reason, samples over the whole run', () => {
  const { withSeries: c, rec } = runBoth('scenarios/tcp-goodput.yaml');
  const s = rec.series;
  const r = c.report();
  assert.equal(s.t.length, c.scenario.durationNs / s.intervalNs);
  assert.equal(s.t[s.t.length - 1], c.scenario.durationNs);
  for (const f of s.flows) {
    const fr = r.flows.find((x) => x.name === f.name)!;
    // Goodput per interval × interval = the bytes acknowledged, to the byte.
    const bytes = f.goodputBps.reduce((a, x) => a + (x * s.intervalNs) / 8e9, 0);
    assert.ok(Math.abs(bytes - fr.delivered) < 1e-3, `${f.name}: ${bytes} vs ${fr.delivered}`);
    assert.ok(f.cwndBytes?.some((x) => x >= 10 * 1410) === true, `${f.name}: a cwnd of at least the initial window`);
    assert.ok(
      f.latencyNs.some((x) => x !== null && x > 2e6),
      `${f.name}: RTTs above the 2 ms the links take`,
    );
  }
  // The lossy link's losses, interval by interval, are the report's underlay losses.
  const lost = (s.drops['underlay:loss'] ?? []).reduce((a, x) => a + x, 0);
  const reported = r.underlay.paths.reduce((a, p) => a + (p.dropped.loss ?? 0), 0);
  assert.ok(reported > 0);
  assert.equal(lost, reported);
  for (const v of Object.values(s.drops)) assert.equal(v.length, s.t.length);
});

test('record: a ping flow through a link failure shows the outage — no RTT and no goodput while the path is down', () => {
  const { rec } = runBoth('scenarios/link-failure.yaml');
  const s = rec.series;
  const steady = s.flows.find((f) => f.name === 'steady')!;
  const at = (ns: number): number => s.t.findIndex((t) => t >= ns);
  for (let i = at(1.6e9); i < at(2.5e9); i++) {
    assert.equal(steady.goodputBps[i], 0, `t=${s.t[i]}`);
    assert.equal(steady.latencyNs[i], null);
  }
  assert.ok(
    steady.goodputBps.slice(at(2.6e9), at(3e9)).some((x) => x > 0),
    'answers again after the outage',
  );
  assert.ok((s.drops['underlay:down'] ?? []).reduce((a, x) => a + x, 0) > 0);
});

const TRACE = join(dir, 'trace.json');
const RUN_JSON = join(dir, 'run.json');
const PAGE = join(dir, 'run.html');

test('cli: seine run --html writes the page; seine report on the saved --json writes the same page byte for byte', () => {
  const t = seine('trace', 'scenarios/tcp-goodput.yaml', '--from', 'node1/client', '--to', 'node3/server', '--json');
  assert.equal(t.status, 0, t.stderr);
  writeFileSync(TRACE, t.stdout);
  const r = seine('run', 'scenarios/tcp-goodput.yaml', '--json', '--html', PAGE, '--trace', TRACE);
  assert.equal(r.status, 0, r.stderr);
  writeFileSync(RUN_JSON, r.stdout);
  const rec = JSON.parse(r.stdout) as RunRecord;
  assert.equal(rec.traces?.length, 1);
  assert.equal(rec.topology?.nodes.length, 3);
  assert.ok(rec.series !== undefined && rec.series.flows.length === 3);
  const again = join(dir, 'again.html');
  const rep = seine('report', RUN_JSON, '--html', again);
  assert.equal(rep.status, 0, rep.stderr);
  assert.ok(readFileSync(PAGE).equals(readFileSync(again)));
  const html = readFileSync(PAGE, 'utf8');
  // Self-contained: no element loads anything; uPlot and the data are inline.
  assert.doesNotMatch(html, /<(script|link|img|iframe)[^>]*\s(src|href)=/i);
  assert.match(html, /uPlot/);
  assert.match(html, /<svg[^>]*class="topology"/);
  assert.match(html, /<svg[^>]*class="sequence"/);
  for (const f of rec.flows) assert.ok(html.includes(`<td>${esc(f.name)}</td>`), f.name);
});

test('cli: the JSON and the page keep the ESP secret out', () => {
  const page = join(dir, 'esp.html');
  const r = seine('run', 'scenarios/esp-encryption.yaml', '--json', '--html', page);
  assert.ok(r.status === 0 || r.status === 1, r.stderr);
  const secret = /secret:\s*(\S+)/.exec(readFileSync(join(ROOT, 'scenarios/esp-encryption.yaml'), 'utf8'))?.[1];
  assert.ok(secret !== undefined);
  assert.doesNotMatch(r.stdout, /"secret"/);
  assert.ok((JSON.parse(r.stdout) as RunRecord).topology?.encryption !== null);
  assert.doesNotMatch(readFileSync(page, 'utf8'), /"secret"/);
});

test('cli: a damaged saved report or trace is refused naming the file and the key; nothing is written', () => {
  const rec = JSON.parse(readFileSync(RUN_JSON, 'utf8')) as Record<string, unknown>;
  const cases: Array<[string, (r: Record<string, unknown>) => void, RegExp]> = [
    ['flows', (r) => ((r.flows as Array<Record<string, unknown>>)[1]!.deliveredRatio = 'x'), /flows\[1\]\.deliveredRatio: expected a number, got "x"/],
    [
      'series',
      (r) => (r.series as { flows: Array<{ goodputBps: number[] }> }).flows[0]!.goodputBps.pop(),
      /series\.flows\[0\]\.goodputBps: expected 200 values/,
    ],
    ['topology', (r) => delete (r.topology as Record<string, unknown>).nodes, /topology\.nodes: expected a list, got nothing/],
    [
      'traces',
      (r) => ((r.traces as Array<{ steps: Array<Record<string, unknown>> }>)[0]!.steps[2]!.node = 3),
      /traces\[0\]\.steps\[2\]\.node: expected a string/,
    ],
    ['top', (r) => delete r.scenario, /: scenario: expected a string, got nothing/],
  ];
  for (const [name, spoil, want] of cases) {
    const r = structuredClone(rec);
    spoil(r);
    assert.throws(
      () => parseRunRecord(JSON.stringify(r), 'saved.json'),
      (e: Error) => e.message.startsWith('saved.json: ') && want.test(e.message),
      name,
    );
  }
  // Through the command: exit 2, one line naming the file, no page.
  const r = structuredClone(rec);
  cases[0]![1](r);
  const f = join(dir, 'bad-flows.json');
  writeFileSync(f, JSON.stringify(r));
  const out = join(dir, 'bad-flows.html');
  const res = seine('report', f, '--html', out);
  assert.equal(res.status, 2);
  assert.equal(res.stderr, `seine report: ${f}: flows[1].deliveredRatio: expected a number, got "x"\n`);
  assert.ok(!existsSync(out));
  const notJson = join(dir, 'not.json');
  writeFileSync(notJson, '{"scenario": ');
  assert.match(seine('report', notJson, '--html', join(dir, 'x.html')).stderr, /not\.json: not JSON/);
  assert.match(seine('report', join(dir, 'missing.json'), '--html', join(dir, 'x.html')).stderr, /missing\.json': no such file/);
  const badTrace = join(dir, 'badtrace.json');
  writeFileSync(badTrace, JSON.stringify({ ...(JSON.parse(readFileSync(TRACE, 'utf8')) as object), outcome: 'maybe' }));
  const bt = seine('run', 'scenarios/link-failure.yaml', '--html', join(dir, 'y.html'), '--trace', badTrace);
  assert.equal(bt.status, 2);
  assert.match(bt.stderr, /badtrace\.json: trace\.outcome: expected one of delivered, dropped, lost, not-sent, got "maybe"/);
  assert.ok(!existsSync(join(dir, 'y.html')));
  assert.equal(seine('report', RUN_JSON).status, 2, '--html is required');
  assert.equal(seine('run', '--live', 'scenarios/link-failure.yaml', '--html', join(dir, 'z.html')).status, 2);
});

test('cli: an --html file that cannot be written is refused with exit 2, no partial page left', () => {
  const sub = join(dir, 'ro');
  const r = seine('report', RUN_JSON, '--html', join(sub, 'none', 'page.html'));
  assert.equal(r.status, 2);
  assert.match(r.stderr, /cannot write the HTML report '.*page\.html': no such file or directory/);
  const d = seine('report', RUN_JSON, '--html', dir);
  assert.equal(d.status, 2);
  assert.ok(
    readdirSync(dir).every((f) => !f.endsWith('.tmp')),
    'no temporary file left',
  );
});

test('report: parseRunRecord accepts a live run report (no topology, no series)', () => {
  const rec = JSON.parse(readFileSync(RUN_JSON, 'utf8')) as Record<string, unknown>;
  delete rec.topology;
  delete rec.series;
  delete rec.traces;
  rec.live = { lab: 'run-x', wallMs: 4000, without: [], notes: [] };
  const r = parseRunRecord(JSON.stringify(rec), 'live.json');
  assert.equal(r.live?.lab, 'run-x');
});

const noChromium = haveChromium ? false : `${CHROMIUM} is not installed (apt-get install chromium): the browser check did not run`;
if (noChromium !== false) process.stderr.write(`SKIP html.test: ${noChromium}\n`);

test('chromium: the page loads with no console error and no request, draws its charts, topology and trace; the screenshot is not blank', {
  skip: noChromium,
  timeout: 120_000,
}, async () => {
  const r = await checkPage(PAGE, [
    "document.body.getAttribute('data-charts-drawn')",
    "document.querySelectorAll('svg.topology g.node').length",
    "document.querySelectorAll('svg.sequence rect.stage').length",
    "Array.from(document.querySelectorAll('.uplot canvas')).filter((c) => c.width > 100 && c.height > 100).length",
  ]);
  assert.deepEqual(r.errors, []);
  assert.deepEqual(r.requests, []);
  const trace = JSON.parse(readFileSync(TRACE, 'utf8')) as { steps: unknown[] };
  assert.deepEqual(r.values, ['4', 3, trace.steps.length, 4]);
  const s = pngStats(r.png);
  assert.equal(s.width, 1280);
  assert.ok(s.colours > 50, `${s.colours} colours`);
  assert.ok(s.nonWhite > 0.03, `${(s.nonWhite * 100).toFixed(1)}% non-white`);
});

test('chromium: the check itself sees an exception, a console error, a request and a blank page', { skip: noChromium, timeout: 120_000 }, async () => {
  const bad = join(dir, 'bad.html');
  // The request goes to the discard port on loopback: nothing leaves the machine.
  writeFileSync(
    bad,
    `<!DOCTYPE html><html><body><img src="http://127.0.0.1:9/x.png" style="display:none"><script>console.error('boom'); null.x;</script></body></html>`,
  );
  const r = await checkPage(bad, [], { height: 600 });
  assert.ok(
    r.errors.some((e) => e.includes('console.error: boom')),
    r.errors.join('\n'),
  );
  assert.ok(
    r.errors.some((e) => e.startsWith('exception: TypeError')),
    r.errors.join('\n'),
  );
  assert.deepEqual(r.requests, ['http://127.0.0.1:9/x.png']);
  const s = pngStats(r.png);
  assert.ok(s.colours <= 3 && s.nonWhite < 0.001, `${s.colours} colours, ${s.nonWhite} non-white`);
});

/** Every lab's page, written in-process (one node, L2 segments, VLANs, ESP, faults, replayed captures). */
const labPages: Array<{ lab: string; file: string; nodes: number; flows: number }> = [];

test('html: every lab renders a page with its topology, one table row per flow and its series', () => {
  const labs = readdirSync(join(ROOT, 'scenarios')).filter((f) => f.endsWith('.yaml'));
  assert.ok(labs.length >= 10);
  for (const lab of labs) {
    const s = loadScenario(join(ROOT, 'scenarios', lab));
    const c = new Cluster(s, { capture: false });
    const rec = new SeriesRecorder(c);
    c.run(undefined, rec);
    const html = renderHtml(runRecord(c.report(), s, rec.series, []));
    const file = join(dir, lab.replace('.yaml', '.html'));
    writeFileSync(file, html);
    assert.equal((html.match(/<g class="node/g) ?? []).length, s.nodes.length, lab);
    for (const t of s.traffic) assert.ok(html.includes(`<td>${esc(t.name)}</td>`), `${lab}: ${t.name}`);
    labPages.push({ lab, file, nodes: s.nodes.length, flows: s.traffic.length });
  }
});

test("chromium: every lab's page loads with no console error and no request, draws its charts and is not blank", {
  skip: noChromium,
  timeout: 300_000,
}, async () => {
  assert.ok(labPages.length >= 10, 'the pages were written');
  const results = await checkPages(
    labPages.map((p) => p.file),
    ["document.body.getAttribute('data-charts-drawn')", "document.querySelectorAll('svg.topology g.node').length"],
    { height: 1600 },
  );
  labPages.forEach((p, i) => {
    const r = results[i]!;
    assert.deepEqual(r.errors, [], p.lab);
    assert.deepEqual(r.requests, [], p.lab);
    // Charts with nothing to draw (no TCP flow: no cwnd; no drop) say so instead.
    assert.ok(Number(r.values[0]) >= 2, `${p.lab}: ${String(r.values[0])} charts`);
    assert.equal(r.values[1], p.nodes, p.lab);
    const st = pngStats(r.png);
    assert.ok(st.colours > 20 && st.nonWhite > 0.03, `${p.lab}: ${st.colours} colours, ${st.nonWhite} non-white`);
  });
});

test('record: the first SERIES_FLOWS flows get series of their own; the others count in the totals only', () => {
  const s = loadScenario(join(ROOT, 'scenarios/two-nodes-vxlan.yaml'));
  const udp = s.traffic.find((t) => t.type === 'udp')!;
  const record = (n: number) => {
    const sc = { ...s, traffic: Array.from({ length: n }, (_, i) => ({ ...udp, name: `u${i}`, count: 20 })), expect: [] };
    const c = new Cluster(sc, { capture: false });
    const rec = new SeriesRecorder(c);
    c.run(() => {}, rec);
    return rec.series;
  };
  const sr = record(SERIES_FLOWS + 2);
  assert.deepEqual(
    sr.flows.map((f) => f.name),
    Array.from({ length: SERIES_FLOWS }, (_, i) => `u${i}`),
  );
  assert.equal(sr.flowsOmitted, 2);
  const sum = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0);
  // Every flow sends the same, so the totals of 26 flows are 26/24 of those of the 24 shown alone.
  const all = sum(sr.totals.podDeliveredBps);
  const shown = sum(record(SERIES_FLOWS).totals.podDeliveredBps);
  assert.ok(Math.abs(all / shown - (SERIES_FLOWS + 2) / SERIES_FLOWS) < 0.01, `${all} against ${shown}`);
});
