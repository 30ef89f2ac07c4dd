/**
 * A fake Kubernetes API server for Nodes, speaking the list/watch protocol the real one speaks (no API
 * server can run on this machine): `GET /api/v1/nodes/NAME` is one Node, `GET /api/v1/nodes` a NodeList with the store's resourceVersion;
 * `GET /api/v1/nodes?watch=true&resourceVersion=RV` streams watch events as JSON lines — first every
 * event after RV that the store still holds, then each new one as it happens — and BOOKMARKs when asked
 * to (only to watches that set `allowWatchBookmarks=true`, as the API server does). A watch from a
 * resourceVersion older than the last compaction gets what the API server sends for an expired one: a
 * 200 whose only event is an ERROR carrying a Status with code 410 (reason Expired), then the end.
 *
 * Every request is recorded (path, query, Authorization) so that tests can check what the client sent.
 * It listens on 127.0.0.1 over HTTPS, as an API server does, with a certificate made for the run by
 * openssl: the kubeconfig carries it as the cluster's CA, and the client verifies it.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireCommand } from './rig.js';

/** A self-signed certificate for 127.0.0.1 (EC P-256, one day). */
function makeCert(): { cert: string; key: string } {
  requireCommand('openssl', 'openssl');
  const dir = mkdtempSync(join(tmpdir(), 'seine-fakeapi-'));
  try {
    const r = spawnSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=127.0.0.1',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
      ],
      { encoding: 'utf8', timeout: 20_000 },
    );
    if (r.status !== 0) throw new Error(`openssl req failed: ${r.stderr}`);
    return { cert: readFileSync(join(dir, 'cert.pem'), 'utf8'), key: readFileSync(join(dir, 'key.pem'), 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface FakeNodeSpec {
  name: string;
  podCIDRs?: string[];
  /** The older single field (set alone, as a cluster without dual-stack allocation does). */
  podCIDR?: string;
  internalIPs?: string[];
}

interface WatchEvent {
  rv: number;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  object: Record<string, unknown>;
}

export interface RecordedRequest {
  path: string;
  query: Record<string, string>;
  authorization: string | null;
}

export class FakeKubeApi {
  private server: Server | null = null;
  private rv = 100;
  private readonly nodes = new Map<string, Record<string, unknown>>();
  private history: WatchEvent[] = [];
  /** Watches older than this get 410 Gone. */
  private compactedRv = 0;
  private readonly watches = new Set<{ res: ServerResponse; bookmarks: boolean }>();
  readonly requests: RecordedRequest[] = [];
  /** While true, watch requests are answered 503 (an API server restarting): the informer's error path. */
  refuseWatches = false;
  /**
   * How an expired resourceVersion is refused: an ERROR event with a 410 Status in a 200 stream (what
   * the API server sends), or an HTTP 410 Gone answer (what some proxies and older servers send).
   */
  expiredAs: 'event' | 'status' = 'event';
  url = '';
  /** The server's certificate and key (made for the run unless given: a restarted server keeps its own). */
  readonly tls: { cert: string; key: string };

  constructor(tls?: { cert: string; key: string }) {
    this.tls = tls ?? makeCert();
  }

  /** Listens on 127.0.0.1:`port` (0: one the kernel picks); resolves with the server's URL. */
  async listen(port = 0): Promise<string> {
    this.server = createServer({ cert: this.tls.cert, key: this.tls.key }, (req, res) => this.handle(req, res));
    await new Promise<void>((r, j) => {
      this.server!.once('error', j);
      this.server!.listen(port, '127.0.0.1', r);
    });
    this.url = `https://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this.url;
  }

  async close(): Promise<void> {
    this.endWatches();
    this.server?.closeAllConnections();
    await new Promise<void>((r) => (this.server === null ? r() : this.server.close(() => r())));
  }

  get resourceVersion(): string {
    return String(this.rv);
  }

  /** Watch requests so far (their query strings), oldest first. */
  watchRequests(): RecordedRequest[] {
    return this.requests.filter((r) => r.query['watch'] === 'true' || r.query['watch'] === '1');
  }

  listRequests(): RecordedRequest[] {
    return this.requests.filter((r) => r.query['watch'] === undefined);
  }

  openWatches(): number {
    return this.watches.size;
  }

  private nodeObject(s: FakeNodeSpec, rv: number): Record<string, unknown> {
    const spec: Record<string, unknown> = {};
    if (s.podCIDRs !== undefined) {
      spec['podCIDRs'] = s.podCIDRs;
      if (s.podCIDRs[0] !== undefined) spec['podCIDR'] = s.podCIDRs[0];
    }
    if (s.podCIDR !== undefined) spec['podCIDR'] = s.podCIDR;
    return {
      kind: 'Node',
      apiVersion: 'v1',
      metadata: { name: s.name, uid: `uid-${s.name}`, resourceVersion: String(rv), labels: { 'kubernetes.io/hostname': s.name } },
      spec,
      status: {
        addresses: [...(s.internalIPs ?? []).map((a) => ({ type: 'InternalIP', address: a })), { type: 'Hostname', address: s.name }],
      },
    };
  }

  /** Adds or replaces a Node (an ADDED or MODIFIED event). */
  put(s: FakeNodeSpec): void {
    this.rv++;
    const obj = this.nodeObject(s, this.rv);
    const type = this.nodes.has(s.name) ? 'MODIFIED' : 'ADDED';
    this.nodes.set(s.name, obj);
    this.emit({ rv: this.rv, type, object: obj });
  }

  delete(name: string): void {
    const had = this.nodes.get(name);
    if (had === undefined) throw new Error(`fake API: no Node ${name}`);
    this.rv++;
    this.nodes.delete(name);
    const obj = structuredClone(had);
    (obj['metadata'] as Record<string, unknown>)['resourceVersion'] = String(this.rv);
    this.emit({ rv: this.rv, type: 'DELETED', object: obj });
  }

  private emit(e: WatchEvent): void {
    this.history.push(e);
    for (const w of this.watches) w.res.write(`${JSON.stringify({ type: e.type, object: e.object })}\n`);
  }

  /**
   * A BOOKMARK to every watch that asked for them: the store's resourceVersion moves on (other kinds of
   * object changed meanwhile) and the bookmark carries it, so a watch restarted later resumes from there.
   */
  bookmark(): string {
    this.rv += 10;
    const rv = String(this.rv);
    for (const w of this.watches)
      if (w.bookmarks) w.res.write(`${JSON.stringify({ type: 'BOOKMARK', object: { kind: 'Node', apiVersion: 'v1', metadata: { resourceVersion: rv } } })}\n`);
    return rv;
  }

  /** Forgets the history (etcd compaction): watches from before now get 410 Gone. */
  compact(): void {
    this.compactedRv = this.rv;
    this.history = [];
  }

  /** Ends every open watch cleanly (the API server's watch timeout does this). */
  endWatches(): void {
    for (const w of this.watches) w.res.end();
    this.watches.clear();
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const u = new URL(req.url ?? '/', 'http://fake');
    const query = Object.fromEntries(u.searchParams);
    this.requests.push({ path: u.pathname, query, authorization: req.headers.authorization ?? null });
    const json = (code: number, body: unknown): void => {
      res.writeHead(code, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    const one = /^\/api\/v1\/nodes\/([^/]+)$/.exec(u.pathname);
    if (req.method === 'GET' && one !== null) {
      const n = this.nodes.get(decodeURIComponent(one[1]!));
      if (n !== undefined) json(200, n);
      else
        json(404, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: `nodes "${one[1]}" not found`, reason: 'NotFound', code: 404 });
      return;
    }
    if (req.method !== 'GET' || u.pathname !== '/api/v1/nodes') {
      json(404, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: `${u.pathname} not found`, reason: 'NotFound', code: 404 });
      return;
    }
    const watch = query['watch'] === 'true' || query['watch'] === '1';
    if (!watch) {
      json(200, {
        kind: 'NodeList',
        apiVersion: 'v1',
        metadata: { resourceVersion: String(this.rv) },
        items: [...this.nodes.values()],
      });
      return;
    }
    if (this.refuseWatches) {
      json(503, {
        kind: 'Status',
        apiVersion: 'v1',
        metadata: {},
        status: 'Failure',
        message: 'the server is shutting down',
        reason: 'ServiceUnavailable',
        code: 503,
      });
      return;
    }
    const from = Number(query['resourceVersion'] ?? '0');
    const gone = {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: `too old resource version: ${query['resourceVersion']} (${this.compactedRv})`,
      reason: 'Expired',
      code: 410,
    };
    if ((!Number.isInteger(from) || from < this.compactedRv) && this.expiredAs === 'status') {
      json(410, gone);
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    // The API server sends the headers at once: the client's watch call returns on them, before any event.
    res.flushHeaders();
    if (!Number.isInteger(from) || from < this.compactedRv) {
      res.end(`${JSON.stringify({ type: 'ERROR', object: gone })}\n`);
      return;
    }
    for (const e of this.history) if (e.rv > from) res.write(`${JSON.stringify({ type: e.type, object: e.object })}\n`);
    const w = { res, bookmarks: query['allowWatchBookmarks'] === 'true' };
    this.watches.add(w);
    res.on('close', () => this.watches.delete(w));
  }
}

/** A kubeconfig for the fake server: its certificate as the CA, and a bearer token (the client must send it). */
export function fakeKubeconfig(api: Pick<FakeKubeApi, 'url' | 'tls'>, token: string): string {
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    `  - name: fake`,
    `    cluster: { server: "${api.url}", certificate-authority-data: "${Buffer.from(api.tls.cert).toString('base64')}" }`,
    'users:',
    `  - name: seine`,
    `    user: { token: "${token}" }`,
    'contexts:',
    '  - name: fake',
    '    context: { cluster: fake, user: seine }',
    'current-context: fake',
    '',
  ].join('\n');
}
