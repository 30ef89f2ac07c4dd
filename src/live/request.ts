/**
 * One request on the agent's control socket: a line of JSON out, the first line back parsed. The CLI's
 * control client (live/control.ts: one reply, or a reply and then a stream of raw bytes) and the CNI
 * plugin (cni/client.ts) all send it through `openRequest`; it loads nothing but `node:net`, so the
 * plugin's start-up stays Node's. `fail` makes the error each caller throws when the agent cannot be
 * reached, does not answer in time, or answers with no readable line.
 */
import { createConnection, type Socket } from 'node:net';

/** The agent's first reply line, parsed; the socket, open and paused after it; the bytes already read past the line. */
export interface OpenedRequest {
  reply: Record<string, unknown>;
  socket: Socket;
  rest: Buffer;
}

/**
 * Sends `req` and resolves at the first reply line, leaving the socket open (a streaming operation's raw
 * bytes follow the line). A reply the agent ends without a newline counts as the line.
 */
export function openRequest(path: string, req: object, timeoutMs: number, fail: (what: string) => Error): Promise<OpenedRequest> {
  return new Promise((res, rej) => {
    const c = createConnection(path);
    let buf: Buffer = Buffer.alloc(0);
    let settled = false;
    // Whichever comes first of the line, the end, an error and the time limit settles the request.
    const settle = (): boolean => {
      if (settled) return false;
      settled = true;
      clearTimeout(timer);
      c.off('data', onData);
      return true;
    };
    const timer = setTimeout(() => {
      if (!settle()) return;
      c.destroy();
      rej(fail(`no answer from the seine agent at ${path} within ${timeoutMs} ms`));
    }, timeoutMs);
    const answer = (line: Buffer, rest: Buffer): void => {
      if (!settle()) return;
      let reply: Record<string, unknown>;
      try {
        reply = JSON.parse(line.toString('utf8')) as Record<string, unknown>;
      } catch {
        c.destroy();
        rej(fail(`the seine agent at ${path} sent no readable answer`));
        return;
      }
      c.pause();
      res({ reply, socket: c, rest });
    };
    const onData = (d: Buffer): void => {
      buf = buf.length === 0 ? d : Buffer.concat([buf, d]);
      const nl = buf.indexOf(10);
      if (nl >= 0) answer(buf.subarray(0, nl), buf.subarray(nl + 1));
    };
    c.once('connect', () => c.write(`${JSON.stringify(req)}\n`));
    c.on('data', onData);
    c.once('end', () => answer(buf, Buffer.alloc(0)));
    c.once('error', (e: NodeJS.ErrnoException) => {
      if (!settle()) return;
      rej(
        fail(
          e.code === 'ENOENT' || e.code === 'ECONNREFUSED' ? `no seine agent listening at ${path} (is it running?)` : `seine agent at ${path}: ${e.message}`,
        ),
      );
    });
  });
}

/** One request, one reply: the reply line, parsed (the connection is closed once it is read). */
export async function requestLine(path: string, req: object, timeoutMs: number, fail: (what: string) => Error): Promise<Record<string, unknown>> {
  const { reply, socket } = await openRequest(path, req, timeoutMs, fail);
  socket.destroy();
  return reply;
}
