/**
 * The agent's control socket: a unix stream socket speaking newline-delimited JSON. A client writes one
 * request object `{"op": "...", ...}` and reads one reply line `{"ok": true, ...}` or
 * `{"ok": false, "error": "..."}`. A streaming operation (a live capture) replies with its first line and
 * then sends raw bytes until either side closes.
 *
 * The socket file is created mode 0600 (only root talks to the agent); a stale file left by a killed agent
 * is replaced, a live one is refused (another agent owns it).
 */
import { chmodSync, existsSync, mkdirSync, unlinkSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { openRequest, requestLine, type OpenedRequest } from './request.js';

export type ControlRequest = Record<string, unknown> & { op: string };
/** A handler returns the reply's fields, or takes over the socket (`conn.stream`) and returns `undefined`. */
export type ControlHandler = (req: ControlRequest, conn: ControlConn) => unknown;

/** One client connection, handed to handlers that stream. */
export class ControlConn {
  streaming = false;
  constructor(readonly socket: Socket) {}
  /** Sends the reply line and keeps the socket for raw bytes; `onClose` runs when the client goes. */
  stream(first: Record<string, unknown>, onClose: () => void): void {
    this.streaming = true;
    this.socket.write(`${JSON.stringify({ ok: true, ...first })}\n`);
    this.socket.on('close', onClose);
    this.socket.on('error', () => {});
  }
}

/** The largest request line accepted (a guard, not a limit anyone should reach). */
const MAX_REQUEST = 1 << 20;

export class ControlServer {
  private server: Server | null = null;

  constructor(
    readonly path: string,
    private readonly handlers: Record<string, ControlHandler>,
  ) {}

  async listen(): Promise<void> {
    mkdirSync(dirname(this.path), { recursive: true, mode: 0o700 });
    if (existsSync(this.path)) {
      if (await isLive(this.path)) throw new Error(`control socket ${this.path} is in use by another agent`);
      unlinkSync(this.path);
    }
    const server = createServer((s) => this.accept(s));
    this.server = server;
    await new Promise<void>((res, rej) => {
      server.once('error', rej);
      server.listen(this.path, () => {
        server.off('error', rej);
        res();
      });
    });
    chmodSync(this.path, 0o600);
  }

  close(): void {
    this.server?.close();
    this.server = null;
    try {
      unlinkSync(this.path);
    } catch {
      /* already gone */
    }
  }

  private accept(s: Socket): void {
    let buf = '';
    s.setEncoding('utf8');
    s.on('error', () => {});
    const onData = (chunk: string): void => {
      buf += chunk;
      if (buf.length > MAX_REQUEST) {
        s.end(`${JSON.stringify({ ok: false, error: 'request too long' })}\n`);
        return;
      }
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      s.off('data', onData);
      const line = buf.slice(0, nl);
      void this.handle(line, s);
    };
    s.on('data', onData);
  }

  private async handle(line: string, s: Socket): Promise<void> {
    const conn = new ControlConn(s);
    let reply: Record<string, unknown>;
    try {
      const req: unknown = JSON.parse(line);
      if (typeof req !== 'object' || req === null || typeof (req as { op?: unknown }).op !== 'string')
        throw new Error('a request is a JSON object with an "op" string');
      const op = (req as ControlRequest).op;
      const h = this.handlers[op];
      if (h === undefined) throw new Error(`unknown op "${op}" (known: ${Object.keys(this.handlers).sort().join(', ')})`);
      const r = await h(req as ControlRequest, conn);
      if (conn.streaming) return;
      reply = { ok: true, ...(typeof r === 'object' && r !== null ? r : {}) };
    } catch (e) {
      reply = { ok: false, error: e instanceof Error ? e.message : String(e) };
    }
    s.end(`${JSON.stringify(reply)}\n`);
  }
}

/** Whether something accepts connections on the socket. */
function isLive(path: string): Promise<boolean> {
  return new Promise((res) => {
    const c = createConnection(path);
    c.once('connect', () => {
      c.destroy();
      res(true);
    });
    c.once('error', () => res(false));
  });
}

export class ControlError extends Error {
  override readonly name = 'ControlError';
}

/** The agent's `ok: false` reply as an error. */
function refused(reply: Record<string, unknown>): ControlError {
  return new ControlError(String(reply['error'] ?? 'the agent refused the request'));
}

/** Sends one request and resolves with the reply (rejects with `ControlError` for `ok: false`, or when the agent cannot be reached in time). */
export async function controlRequest(path: string, req: ControlRequest, timeoutMs = 5000): Promise<Record<string, unknown>> {
  const r = await requestLine(path, req, timeoutMs, (what) => new ControlError(what));
  if (r['ok'] !== true) throw refused(r);
  return r;
}

/**
 * Opens a streaming request: resolves with the first reply line and the socket, whose further data are
 * the raw stream (the caller pipes it and destroys the socket to stop; `rest` holds what came with the line).
 */
export async function controlStream(path: string, req: ControlRequest, timeoutMs = 5000): Promise<OpenedRequest> {
  const o = await openRequest(path, req, timeoutMs, (what) => new ControlError(what));
  if (o.reply['ok'] !== true) {
    o.socket.destroy();
    throw refused(o.reply);
  }
  return o;
}
