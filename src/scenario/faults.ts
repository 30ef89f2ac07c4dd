/**
 * The scenario's `faults` section: a node's uplink or the path between two nodes going down (for a while,
 * or until an `up`) at given times.
 */
import { didYouMean, fmtDuration, type Obj, type Reader, type V } from './reader.js';
import type { Refs, Topology } from './topology.js';
import type { FaultSpec, FaultTarget } from './types.js';
import { isSeq } from './yaml.js';

const FAULT_KEYS = ['at', 'link', 'action', 'for'] as const;

export function parseFaults(r: Reader, o: Obj, topo: Topology, refs: Refs, durationNs: number): FaultSpec[] {
  const faults: FaultSpec[] = [];
  const faultsV = o.get('faults');
  for (const fv of faultsV === undefined ? [] : r.list(faultsV)) {
    const fo = r.map(fv, FAULT_KEYS);
    const atV = fo.req('at', 'a time');
    const atNs = r.duration(atV);
    if (atNs > durationNs) r.fail(atV, `a time within the scenario's duration (${fmtDuration(durationNs)})`);
    const lV = fo.req('link', 'a node, a-b or [a, b]');
    const target = faultTarget(r, lV, topo, refs);
    if (target.kind === 'link' && target.a === target.b) r.fail(lV, 'a link between two different nodes', `${target.a}-${target.b}`);
    const action = r.oneOf(fo.req('action', 'down or up'), ['down', 'up'] as const);
    const forV = fo.get('for');
    let forNs: number | null = null;
    if (forV !== undefined) {
      if (action !== 'down') r.fail(forV, 'no "for" on an up action');
      forNs = r.duration(forV);
      if (forNs <= 0) r.fail(forV, 'a duration above 0');
      if (atNs + forNs > durationNs)
        r.fail(forV, `a fault that ends within the scenario's duration (${fmtDuration(durationNs)})`, `${fmtDuration(forNs)} from ${fmtDuration(atNs)}`);
    }
    faults.push({ atNs, target, action, forNs });
  }
  return faults;
}

/** `link:` as a node (its uplink), `a-b` (node names may hold "-": every split is tried) or `[a, b]`. */
function faultTarget(r: Reader, lV: V, topo: Topology, refs: Refs): FaultTarget {
  const { nodeIndex } = topo;
  if (isSeq(lV.node)) {
    const ends = r.list(lV);
    if (ends.length !== 2) r.fail(lV, 'two nodes, [a, b]', `${ends.length} item(s)`);
    return { kind: 'link', a: refs.nodeRef(ends[0]!).name, b: refs.nodeRef(ends[1]!).name };
  }
  const s = r.str(lV, 'a node, a-b or [a, b]');
  if (nodeIndex.has(s)) return { kind: 'node', node: s };
  for (let k = s.indexOf('-'); k >= 0; k = s.indexOf('-', k + 1)) {
    const a = s.slice(0, k);
    const b = s.slice(k + 1);
    if (nodeIndex.has(a) && nodeIndex.has(b)) return { kind: 'link', a, b };
  }
  const h = didYouMean(s, [...nodeIndex.keys()]);
  r.fail(
    lV,
    `a node or a link a-b between existing nodes (${[...nodeIndex.keys()].join(', ')})`,
    JSON.stringify(s),
    h === null ? null : `did you mean "${h}"?`,
  );
}
