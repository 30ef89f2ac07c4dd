/**
 * Peers from the Kubernetes API: every Node but this one, with its `spec.podCIDRs` (or the older
 * `spec.podCIDR`) and its InternalIP, is a routed peer (node/config.ts `NodePeerConfig`). The Nodes come
 * through `@kubernetes/client-node`'s informer (its `ListWatch`) — a list, then a watch from the list's resourceVersion
 * (bookmarks keep it fresh), a watch that ends resumed from the last resourceVersion seen, and an
 * expired one (410 Gone, as an HTTP status or an ERROR event carrying a Status) answered by a relist,
 * whose differences arrive as adds, updates and deletes. The informer stops on any other error (an
 * unreachable API server, a refused list): the source starts it again after `retrySeconds`.
 *
 * Every change recomputes the whole peer list from the informer's cache and hands it over when it
 * differs from the last one; every `resyncSeconds` it is handed over again even when it does not (the
 * agent's `applyPeers` leaves unchanged peers alone, and a list whose application failed gets another
 * chance). A Node without a podCIDR (not yet allocated by the controller manager) or without an
 * InternalIP of the underlay's family is skipped with the reason logged once, never a crash.
 *
 * The agent imports this module only when its configuration has a `kubernetes` section: the client and
 * what it pulls in take about a second of CPU to load, which a node without Kubernetes does not pay.
 */
import { CoreV1Api, KubeConfig, ListWatch, type V1Node, Watch } from '@kubernetes/client-node';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { NodePeerConfig } from '../node/config.js';
import { ipv4FromString, ipv6FromString } from '../wire/bytes.js';
import type { KubeSourceConfig } from './config.js';
import { underlayMacFor } from './k8s-node.js';
import type { Logger } from './log.js';

/** The watch path: bookmarks let an idle watch resume from a recent resourceVersion, not relist. */
const NODES_PATH = '/api/v1/nodes';

function isPrefix(s: string): boolean {
  const [a, l, rest] = s.split('/');
  if (a === undefined || l === undefined || rest !== undefined || !/^\d{1,3}$/.test(l)) return false;
  const len = Number(l);
  if (ipv4FromString(a) !== null) return len <= 32;
  return ipv6FromString(a) !== null && len <= 128;
}

/**
 * A Node as a peer, or why it is not one. `family` is the underlay's (this node's underlayIp): a
 * dual-stack Node lists an InternalIP of each family, and the tunnel runs over one.
 */
export function peerFromNode(node: V1Node, family: 4 | 6): { peer: NodePeerConfig } | { skip: string } {
  const name = node.metadata?.name;
  if (name === undefined || name === '') return { skip: 'the Node has no metadata.name' };
  const spec = node.spec ?? {};
  const cidrs =
    spec.podCIDRs !== undefined && spec.podCIDRs.length > 0 ? spec.podCIDRs : spec.podCIDR !== undefined && spec.podCIDR !== '' ? [spec.podCIDR] : [];
  if (cidrs.length === 0) return { skip: 'no spec.podCIDR(s) yet (the controller manager allocates them with --allocate-node-cidrs)' };
  const bad = cidrs.find((c) => !isPrefix(c));
  if (bad !== undefined) return { skip: `spec.podCIDRs holds "${bad.slice(0, 60)}", not an address with a prefix length` };
  const internal = (node.status?.addresses ?? []).filter((a) => a.type === 'InternalIP').map((a) => a.address);
  const ip = internal.find((a) => (family === 4 ? ipv4FromString(a) !== null : ipv6FromString(a) !== null));
  if (ip === undefined)
    return { skip: internal.length === 0 ? 'no InternalIP in status.addresses' : `no IPv${family} InternalIP (has ${internal.join(', ').slice(0, 80)})` };
  return { peer: { name, underlayIp: ip, underlayMac: underlayMacFor(ip), podCIDRs: [...cidrs], vnis: [] } };
}

/** What `status` shows of the source (the agent's `peerSources.kubernetes`). */
export interface KubeSourceStatus {
  /** The kubeconfig file, or "in-cluster" (the pod's service account). */
  credentials: string;
  server: string;
  /** This node's Node name (never a peer). */
  nodeName: string;
  /** Whether the first list has arrived. */
  synced: boolean;
  /** The last resourceVersion the informer saw (a list's, an event's or a bookmark's); "" before the first list. */
  resourceVersion: string;
  nodes: number;
  peers: number;
  /** Nodes that are not peers, and why. */
  skipped: Record<string, string>;
  /** Lists made (the first and every relist), relists alone, watches started again after one ended, errors. */
  lists: number;
  relists: number;
  watchRestarts: number;
  errors: number;
  lastError: string | null;
  /** Peer lists handed to the agent (changes and resyncs). */
  updates: number;
}

export interface KubeSourceOptions {
  /** The underlay's family (this node's underlayIp's). */
  family: 4 | 6;
  log: Logger;
  /** Takes the peer list (calls come one at a time: the next waits for the last to settle). */
  onPeers: (peers: NodePeerConfig[]) => Promise<void>;
}

function same(a: readonly NodePeerConfig[], b: readonly NodePeerConfig[]): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function message(e: unknown): string {
  if (e instanceof Error) return e.message;
  if (typeof e === 'object' && e !== null) {
    // The generated client throws an ApiException with a code and a body; a Status has a message.
    const o = e as { code?: unknown; body?: unknown; message?: unknown };
    if (o.code !== undefined) return `HTTP ${String(o.code)}: ${String(o.message ?? o.body ?? '').slice(0, 200)}`;
  }
  return String(e);
}

/** Builds the client's configuration: the kubeconfig file named, or the pod's service account. */
export function kubeConfigFor(cfg: KubeSourceConfig): KubeConfig {
  const kc = new KubeConfig();
  if (cfg.kubeconfig !== null) {
    kc.loadFromFile(cfg.kubeconfig);
    if (kc.getCurrentCluster() === null) throw new Error(`${cfg.kubeconfig}: the kubeconfig has no current context with a cluster`);
  } else {
    if (process.env['KUBERNETES_SERVICE_HOST'] === undefined || process.env['KUBERNETES_SERVICE_PORT'] === undefined)
      throw new Error(
        'kubernetes: in-cluster credentials need KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT (set in every pod); outside a cluster give kubernetes.kubeconfig',
      );
    kc.loadFromCluster();
  }
  return kc;
}

export class KubePeerSource {
  private readonly informer: ListWatch<V1Node>;
  private readonly server: string;
  private started = false;
  private stopped = false;
  private lists = 0;
  private connects = 0;
  private errors = 0;
  private updates = 0;
  private lastError: string | null = null;
  private skipped: Record<string, string> = {};
  private peers: NodePeerConfig[] = [];
  private given: NodePeerConfig[] | null = null;
  /** The hand-over in progress, so that the next waits (and `settled` can wait for the last). */
  private chain: Promise<void> = Promise.resolve();
  private pending = false;
  private retry: NodeJS.Timeout | null = null;
  private readonly resync: NodeJS.Timeout;

  constructor(
    private readonly cfg: KubeSourceConfig,
    private readonly o: KubeSourceOptions,
  ) {
    const kc = kubeConfigFor(cfg);
    this.server = kc.getCurrentCluster()!.server;
    const api = kc.makeApiClient(CoreV1Api);
    const list = (): ReturnType<CoreV1Api['listNode']> => {
      this.lists++;
      return api.listNode();
    };
    // The informer `makeInformer` makes, built directly for its `latestResourceVersion` (status shows it).
    this.informer = new ListWatch<V1Node>(`${NODES_PATH}?allowWatchBookmarks=true`, new Watch(kc), list, false);
    this.informer.on('add', () => this.changed());
    this.informer.on('update', () => this.changed());
    this.informer.on('delete', () => this.changed());
    // 'connect' comes before each list or watch the informer starts: its first is the start.
    this.informer.on('connect', () => {
      this.connects++;
    });
    this.informer.on('error', (e: unknown) => this.failed(e));
    this.resync = setInterval(() => this.recompute(true), cfg.resyncSeconds * 1000);
    this.resync.unref();
  }

  /** Starts the list and watch; resolves once the first list has been made or has failed (failures are retried). */
  async start(): Promise<void> {
    this.o.log.info('kubernetes: watching Nodes', { server: this.server, credentials: this.cfg.kubeconfig ?? 'in-cluster', nodeName: this.cfg.nodeName });
    try {
      await this.informer.start();
    } catch (e) {
      this.failed(e);
    }
    this.started = true;
    // A cluster of one Node (or of Nodes without podCIDRs yet) has no peers, and says so once.
    this.recompute(false);
  }

  private failed(e: unknown): void {
    this.errors++;
    this.lastError = message(e);
    this.o.log.warn('kubernetes: list or watch failed; retrying', { error: this.lastError, retrySeconds: this.cfg.retrySeconds });
    if (this.stopped || this.retry !== null) return;
    this.retry = setTimeout(() => {
      this.retry = null;
      if (!this.stopped) this.informer.start().catch((err: unknown) => this.failed(err));
    }, this.cfg.retrySeconds * 1000);
  }

  /** Events come in bursts (a relist delivers one per Node): one recomputation after the burst. */
  private changed(): void {
    if (this.pending) return;
    this.pending = true;
    setImmediate(() => {
      this.pending = false;
      this.recompute(false);
    });
  }

  private recompute(force: boolean): void {
    if (this.stopped) return;
    const peers: NodePeerConfig[] = [];
    const skipped: Record<string, string> = {};
    for (const n of this.informer.list()) {
      const name = n.metadata?.name ?? '';
      if (name === this.cfg.nodeName) continue;
      const r = peerFromNode(n, this.o.family);
      if ('skip' in r) {
        skipped[name] = r.skip;
        if (this.skipped[name] !== r.skip) this.o.log.warn('kubernetes: Node skipped', { node: name, reason: r.skip });
      } else peers.push(r.peer);
    }
    peers.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    this.skipped = skipped;
    this.peers = peers;
    if (!force && this.given !== null && same(this.given, peers)) return;
    this.given = peers;
    this.updates++;
    this.chain = this.chain.then(() =>
      this.o
        .onPeers(peers)
        .catch((e: unknown) => this.o.log.error('kubernetes: applying the peers failed; the next resync tries again', { error: message(e) })),
    );
  }

  /** Resolves when every peer list handed over so far has been applied. */
  async settled(): Promise<void> {
    let c: Promise<void>;
    do {
      c = this.chain;
      await c;
    } while (c !== this.chain);
  }

  status(): KubeSourceStatus {
    return {
      credentials: this.cfg.kubeconfig ?? 'in-cluster',
      server: this.server,
      nodeName: this.cfg.nodeName,
      synced: this.started && this.lists > 0 && this.informer.latestResourceVersion() !== '',
      resourceVersion: this.informer.latestResourceVersion(),
      nodes: this.informer.list().length,
      peers: this.peers.length,
      skipped: { ...this.skipped },
      lists: this.lists,
      relists: Math.max(0, this.lists - 1),
      watchRestarts: Math.max(0, this.connects - this.lists),
      errors: this.errors,
      lastError: this.lastError,
      updates: this.updates,
    };
  }

  /** The source's counters on the agent's Prometheus registry, read at scrape time. */
  register(reg: Registry): void {
    const counter = (name: string, help: string, read: () => number): void => {
      new Counter({
        name,
        help,
        registers: [reg],
        collect(this: Counter) {
          this.reset();
          this.inc(read());
        },
      });
    };
    counter('seine_k8s_lists_total', 'Node lists made by the Kubernetes peer source (the first and every relist).', () => this.lists);
    counter('seine_k8s_relists_total', 'Node relists (after a 410 Gone or an error).', () => Math.max(0, this.lists - 1));
    counter('seine_k8s_watch_restarts_total', 'Node watches started again from the last resourceVersion after one ended.', () =>
      Math.max(0, this.connects - this.lists),
    );
    counter('seine_k8s_errors_total', 'Failed Node lists or watches (each retried).', () => this.errors);
    counter('seine_k8s_peer_updates_total', 'Peer lists handed to the datapath (changes and resyncs).', () => this.updates);
    const gauge = (name: string, help: string, read: () => number): void => {
      new Gauge({
        name,
        help,
        registers: [reg],
        collect(this: Gauge) {
          this.set(read());
        },
      });
    };
    gauge('seine_k8s_nodes', 'Nodes in the informer cache.', () => this.informer.list().length);
    gauge('seine_k8s_peers', 'Peers the Nodes give.', () => this.peers.length);
    gauge('seine_k8s_skipped_nodes', 'Nodes skipped (no podCIDR or no InternalIP of the underlay family).', () => Object.keys(this.skipped).length);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.resync);
    if (this.retry !== null) clearTimeout(this.retry);
    await this.informer.stop();
    await this.chain;
  }
}
