/**
 * The control socket's client side, on a unix socket in a temporary directory (no root, no agent): one
 * request and its reply (controlRequest, and the CNI plugin's requestLine), a streaming request whose raw
 * bytes follow the reply line (controlStream), all three through live/request.ts — and each way a
 * request fails says which in the same words: no agent, no answer in time, an unreadable answer, a refusal.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ControlError, ControlServer, controlRequest, controlStream } from '../../src/live/control.js';
import { requestLine } from '../../src/live/request.js';

const dir = mkdtempSync(join(tmpdir(), 'seine-control-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A raw server that answers every connection with `answer` (after the request line arrives). */
async function rawServer(name: string, answer: (s: Socket) => void): Promise<{ path: string; server: Server }> {
  const path = join(dir, name);
  const server = createServer((s) => {
    s.on('error', () => {});
    s.once('data', () => answer(s));
  });
  await new Promise<void>((r) => server.listen(path, r));
  return { path, server };
}

const STREAMED = Buffer.from([0, 1, 2, 0x0a, 0xff, 0xfe]);

test('control: a reply, a refusal and a stream through the agent side (ControlServer)', async () => {
  const path = join(dir, 'agent.sock');
  const srv = new ControlServer(path, {
    echo: (req) => ({ x: req['x'] }),
    refuse: () => {
      throw new Error('not today');
    },
    stream: (_req, conn) => {
      conn.stream({ kind: 'bytes' }, () => {});
      // The line and the first bytes may arrive in one read: `rest` must hold those.
      conn.socket.write(STREAMED);
      setTimeout(() => conn.socket.end(STREAMED), 20);
      return undefined;
    },
  });
  await srv.listen();
  try {
    assert.deepEqual(await controlRequest(path, { op: 'echo', x: 7 }), { ok: true, x: 7 });
    assert.deepEqual(await requestLine(path, { op: 'echo', x: 'é' }, 2000, (w) => new Error(w)), { ok: true, x: 'é' }, 'the CNI plugin reads the same');
    await assert.rejects(controlRequest(path, { op: 'refuse' }), (e: unknown) => e instanceof ControlError && e.message === 'not today');
    await assert.rejects(controlStream(path, { op: 'refuse' }), (e: unknown) => e instanceof ControlError && e.message === 'not today');
    // The plugin passes a refusal on whole: for it, ok: false is a reply.
    assert.deepEqual(await requestLine(path, { op: 'refuse' }, 2000, (w) => new Error(w)), { ok: false, error: 'not today' });

    const { reply, socket, rest } = await controlStream(path, { op: 'stream' });
    assert.deepEqual(reply, { ok: true, kind: 'bytes' });
    const chunks: Buffer[] = [rest];
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.resume();
    await new Promise<void>((r) => socket.once('end', r));
    assert.deepEqual(Buffer.concat(chunks), Buffer.concat([STREAMED, STREAMED]), 'every raw byte after the reply line, none lost or doubled');
    socket.destroy();
  } finally {
    srv.close();
  }
});

test('control: no agent, no answer in time, an unreadable answer; a last line without a newline is read', async () => {
  const none = join(dir, 'none.sock');
  for (const p of [controlRequest(none, { op: 'x' }), controlStream(none, { op: 'x' })])
    await assert.rejects(p, (e: unknown) => e instanceof ControlError && e.message === `no seine agent listening at ${none} (is it running?)`);

  const silent = await rawServer('silent.sock', () => {});
  const t0 = performance.now();
  await assert.rejects(
    controlStream(silent.path, { op: 'x' }, 200),
    (e: unknown) => e instanceof ControlError && e.message === `no answer from the seine agent at ${silent.path} within 200 ms`,
  );
  assert.ok(performance.now() - t0 < 2000, 'the time limit holds');
  silent.server.close();

  const garbled = await rawServer('garbled.sock', (s) => s.end('not json\n'));
  for (const p of [controlRequest(garbled.path, { op: 'x' }), controlStream(garbled.path, { op: 'x' })])
    await assert.rejects(p, (e: unknown) => e instanceof ControlError && e.message === `the seine agent at ${garbled.path} sent no readable answer`);
  garbled.server.close();

  const closed = await rawServer('closed.sock', (s) => s.end());
  await assert.rejects(controlRequest(closed.path, { op: 'x' }), (e: unknown) => e instanceof ControlError && /sent no readable answer/.test(e.message));
  closed.server.close();

  const unterminated = await rawServer('unterminated.sock', (s) => s.end('{"ok":true,"n":1}'));
  assert.deepEqual(await controlRequest(unterminated.path, { op: 'x' }), { ok: true, n: 1 });
  unterminated.server.close();
});
