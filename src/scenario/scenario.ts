/**
 * Scenario files: a lab or an experiment as one YAML document (or JSON with the same schema, for a file
 * named `*.json`: json.ts), loaded into a typed, normalised
 * `Scenario` (units converted to ns and bit/s, defaults filled in, pod addresses assigned) or refused
 * with a `ScenarioError` that names the file, line, column and key and says what was expected:
 *
 *     scenarios/x.yaml:7:5: nodes[0].podCidr: expected one of the keys name, podCIDR, underlayIp, pods, got "podCidr" (did you mean "podCIDR"?)
 *
 * The schema (every key optional unless marked *; durations are `<number><ns|us|ms|s>`, bandwidths
 * `<number><bit|Kbit|Mbit|Gbit|Tbit>`, losses a fraction or a percentage):
 *
 * ```yaml
 * name: two-nodes-vxlan            # * text
 * description: ...                 # text: what the lab shows
 * lesson: ...                      # text: what to look at afterwards
 * seed: 1                          # PRNG seed, an integer (default 1)
 * duration: 10s                    # simulated time (default 10s)
 * underlay: { mtu: 1500, latency: 100us, jitter: 0ns, bandwidth: 10Gbit, loss: 0, family: 4 }
 *                                  # defaults: mtu 1500, latency 0, jitter 0, bandwidth unlimited, loss 0, family 4
 * tunnel:                          # the overlay between nodes
 *   type: vxlan                    # vxlan | geneve | gre (Ethernet over GRE with the key as VNI; default vxlan)
 *   mode: routed                   # routed (per-node podCIDR, gateway) | l2 (flood-and-learn segments)
 *   vni: 1                         # routed mode's VNI, and the default segment of l2 pods
 *   options: [{ class: 0x0102, type: 0x80, data: "0000000a" }]   # geneve only; class*, type*; data is hex, 4n bytes
 *   fragmentPolicy: outer          # outer | inner | drop
 *   icmpTooBig: true               # false: silent drops, a PMTU black hole
 *   mssClamp: true
 * encryption: { cipher: aes-gcm-128, udpEncap: false, secret: seine }   # ESP between nodes, optional; cipher*
 * nodes:                           # * at least one
 *   - name: node1                  # *
 *     podCIDR: 10.244.1.0/24       # one or a list of two (IPv4 and IPv6); * in routed mode
 *     underlayIp: 172.18.0.2       # default 172.18.0.0/16 + i + 2 (fd00:18::<i+2> over IPv6)
 *     pods:
 *       - name: a                  # *
 *         ip: 10.244.1.2           # one or a list (IPv4 and/or IPv6); default the next free address of podCIDR
 *         vlan: 10                 # access VLAN 1-4094 (default untagged)
 *         vni: 100                 # l2 mode: the pod's segment (default tunnel.vni)
 *         mtu: 1450                # default the pod MTU the underlay and overlay leave (mtu/overhead.ts)
 * links:                           # per node pair overrides of the underlay
 *   - { between: [node1, node2], mtu: 1400, latency: 1ms, jitter: 0ns, bandwidth: 1Gbit, loss: 1% }   # between*
 * traffic:
 *   - name: ping-ab                # default flow-<i+1>
 *     type: ping                   # * ping | udp | tcp
 *     from: node1/a                # * node/pod or node (the node's own stack; routed mode)
 *     to: node2/b                  # *
 *     family: 4                    # which address (default 4 if both ends have one, else 6)
 *     start: 1s                    # default 0
 *     count: 10                    # ping/udp packets (default 5 / 100; with replay, the capture's)
 *     interval: 100ms              # default 1s for ping, 1ms for udp; or give `rate` (udp); not for tcp
 *     rate: 100Mbit                # udp: interval follows from rate and size
 *     size: 1400                   # IP packet bytes (default ping 84, or 104 over IPv6; udp 1000); not for tcp; or
 *     sizes: imix                  # imix (Simple IMIX: 7×64, 4×576, 1×1500) or a list of sizes
 *     replay: captures/x.pcapng    # udp: sizes and timing from a capture's IP packets (relative to this file)
 *     bytes: 1000000               # tcp: bytes to send (default 1 MB)
 *     df: true                     # default true for ping and tcp, false for udp
 * faults:
 *   - { at: 2s, link: node1-node2, action: down, for: 1s }   # at*, link*, action*; link: a node (its uplink), a-b or [a, b]
 * capture: [node1/a, node1/underlay]      # a pod's port or the node's uplink (the gateway is inside the bridge: no wire)
 * expect:
 *   - flow: ping-ab                # a traffic name
 *     delivered: ">= 99%"
 *     latencyP50: "< 1ms"          # also latencyP99, latencyMax
 *     icmpSeen: frag-needed        # or a list: frag-needed, packet-too-big, echo-reply, dest-unreachable, time-exceeded, none
 *   - drops: { node1: { MtuExceeded: ">0" } }   # node → DropReason name → count or comparison
 *     counters: { node1.tunnel.icmpSent: ">= 1" }
 * live:                            # how the lab goes live (`seine run --live`, `seine lab up`), when a part cannot
 *   without: [latency]             # parts left out by default (the --without default): latency, jitter, loss,
 *                                  # bandwidth, linkMtu, linkFaults, nodeFaults
 *   note: "..."                    # * why, and what the live report then shows differently
 * ```
 *
 * Besides the shape, the loader refuses impossible topologies: duplicate node or pod names, duplicate
 * addresses (per segment in l2 mode), overlapping podCIDRs (routed mode), a pod address outside its
 * node's podCIDR, references to missing nodes, pods or flows, MTUs below 576 (IPv4) or 1280 (IPv6),
 * an underlay that leaves pods less than that after the overlay's overhead, fault times past the end.
 * (One VNI on two different VLANs across nodes in l2 mode is refused when the cluster is built.)
 * And it refuses what no run could finish: `SCENARIO_LIMITS` (limits.ts) bounds the file, what its aliases
 * expand to, the nodes, pods and flows, and the packets and events the run is estimated to take.
 */
import { FileRefused, readRegularFile } from './file.js';
import { JsonSyntaxError, parseJsonDocument } from './json.js';
import { num, SCENARIO_LIMITS } from './limits.js';
import { Reader, ScenarioError, type V } from './reader.js';
import { defaultPodMtu, parseEncryption, parseLinks, parseNodes, parseTunnel, parseUnderlay, Refs } from './topology.js';
import { checkCost, parseTraffic } from './traffic.js';
import { parseFaults } from './faults.js';
import { parseCapture, parseExpect, parseLive } from './expect.js';
import type { Scenario } from './types.js';
import { LineCounter, parseDocument, type Document } from './yaml.js';

// The loader's parts, one file per part; their public names are the module's, as before the split.
export * from './types.js';
export { SCENARIO_LIMITS } from './limits.js';
export { EXCERPT_CHARS, ScenarioError, didYouMean, durationOf, editDistance, excerpt, fmtDuration } from './reader.js';
export { ipBig } from './addr.js';
export { estimateCost, IMIX, type CostEstimate } from './traffic.js';
export { endpointText, scenarioToObject } from './emit.js';

const ROOT_KEYS = [
  'name',
  'description',
  'lesson',
  'seed',
  'duration',
  'underlay',
  'tunnel',
  'encryption',
  'nodes',
  'links',
  'traffic',
  'faults',
  'capture',
  'expect',
  'live',
] as const;

/**
 * Reads and parses a scenario file; a file that cannot be read, is not a regular file (a FIFO, a device) or
 * is over `SCENARIO_LIMITS.fileBytes` becomes a ScenarioError at 1:1 too, before anything is read from it.
 */
export function loadScenario(path: string): Scenario {
  let buf: Buffer;
  try {
    buf = readRegularFile(path, SCENARIO_LIMITS.fileBytes);
  } catch (e: unknown) {
    if (e instanceof FileRefused) throw new ScenarioError(path, 1, 1, '', 'a readable scenario file', e.what);
    throw e;
  }
  // A NUL is in no YAML text (YAML 1.2 section 5.1): a capture or a program given by mistake is said so,
  // not quoted back as escapes.
  const nul = buf.indexOf(0);
  if (nul >= 0) {
    const before = buf.subarray(0, nul);
    let line = 1;
    for (const b of before) if (b === 0x0a) line++;
    throw new ScenarioError(path, line, nul - before.lastIndexOf(0x0a), '', 'a scenario (YAML text)', `binary data (a NUL byte at byte ${nul})`);
  }
  return parseScenario(buf.toString('utf8'), path);
}

/** The document's YAML, or a ScenarioError at the first syntax error. */
function readYaml(text: string, file: string): { lc: LineCounter; contents: unknown } {
  const lc = new LineCounter();
  let doc: Document;
  try {
    doc = parseDocument(text, { lineCounter: lc, prettyErrors: true, uniqueKeys: true });
  } catch (e: unknown) {
    // The parser recurses into nested collections: thousands of levels exhaust its stack.
    if (e instanceof RangeError) throw new ScenarioError(file, 1, 1, '', 'YAML nested to a sensible depth', `nesting too deep for the parser (${e.message})`);
    throw e;
  }
  const bad = doc.errors[0];
  if (bad !== undefined) {
    const p = lc.linePos(bad.pos[0]);
    const msg = bad.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
    throw new ScenarioError(file, p.line, p.col, '', 'well-formed YAML', `a syntax error: ${msg}`);
  }
  return { lc, contents: doc.contents };
}

/** The document's JSON, or a ScenarioError at the first syntax error. */
function readJson(text: string, file: string): { lc: LineCounter; contents: unknown } {
  try {
    return parseJsonDocument(text);
  } catch (e: unknown) {
    if (e instanceof RangeError) throw new ScenarioError(file, 1, 1, '', 'JSON nested to a sensible depth', `nesting too deep for the parser (${e.message})`);
    if (!(e instanceof JsonSyntaxError)) throw e;
    const lc = new LineCounter();
    lc.addNewLine(0);
    for (let i = text.indexOf('\n'); i >= 0 && i < e.offset; i = text.indexOf('\n', i + 1)) lc.addNewLine(i + 1);
    const p = lc.linePos(e.offset);
    throw new ScenarioError(file, p.line, p.col, '', 'well-formed JSON', `a syntax error: ${e.message}`);
  }
}

/**
 * Parses a scenario's text; `file` names it in errors, and a name ending in `.json` reads the text as JSON
 * (the same schema: a generated experiment need not be YAML). Each section of the file is read by a
 * function of its own.
 */
export function parseScenario(text: string, file: string): Scenario {
  if (text.length > SCENARIO_LIMITS.fileBytes)
    throw new ScenarioError(file, 1, 1, '', `a scenario of at most ${num(SCENARIO_LIMITS.fileBytes)} bytes`, `${num(text.length)} characters`);
  const { lc, contents } = /\.json$/i.test(file) ? readJson(text, file) : readYaml(text, file);
  const r: Reader = new Reader(file, lc, contents);
  const root: V = { node: r.resolve(contents), path: '', at: 0 };
  if (root.node === null) r.fail(root, 'a scenario mapping', 'an empty document');
  const o = r.map(root, ROOT_KEYS, 'a scenario mapping');

  const name = r.str(o.req('name', 'a scenario name'));
  const optText = (k: string): string => {
    const v = o.get(k);
    return v === undefined ? '' : r.text(v);
  };
  const description = optText('description');
  const lesson = optText('lesson');
  const seedV = o.get('seed');
  const seed = seedV === undefined ? 1 : r.int(seedV, 0, 0xffffffff);
  const durV = o.get('duration');
  const durationNs = durV === undefined ? 10e9 : r.duration(durV);
  if (durV !== undefined && durationNs <= 0) r.fail(durV, 'a duration above 0');

  const u = parseUnderlay(r, o);
  const { tunnel, optBytes } = parseTunnel(r, o);
  const encryption = parseEncryption(r, o);
  const podMtu = defaultPodMtu(r, u, tunnel, optBytes, encryption);
  const topo = parseNodes(r, o, u, tunnel, podMtu);
  const refs = new Refs(r, topo);
  const links = parseLinks(r, o, refs, u);
  const { traffic, at } = parseTraffic({ r, file, durationNs, mode: tunnel.mode, topo, refs }, o);
  // What the traffic costs, refused before anything is built when it is more than a run may take.
  checkCost(r, { durationNs, podMtu, traffic }, at);
  const faults = parseFaults(r, o, topo, refs, durationNs);
  const capture = parseCapture(r, o, refs);
  const expect = parseExpect(r, o, topo, traffic);
  const live = parseLive(r, o);
  return {
    name,
    description,
    lesson,
    seed,
    durationNs,
    underlay: u.underlay,
    tunnel,
    encryption,
    podMtu,
    nodes: topo.nodes,
    links,
    traffic,
    faults,
    capture,
    expect,
    live,
  };
}
