import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import { processAlive } from '../../src/esp/journal.js';

test('journal lock: a zombie (killed, not yet reaped) does not hold the journal; a running process does', {
  skip: process.platform !== 'linux' ? 'zombies are read from /proc (Linux)' : false,
}, async () => {
  // `sh` starts a child that exits at once, then becomes `sleep`, which never reaps it: a zombie for 2 s.
  const parent = spawn('sh', ['-c', 'sleep 0 & echo $!; exec sleep 2'], { stdio: ['ignore', 'pipe', 'ignore'] });
  try {
    const pid = await new Promise<number>((res) => parent.stdout.once('data', (d: Buffer) => res(Number(d.toString().trim()))));
    let zombie = false;
    for (let i = 0; i < 100 && !zombie; i++) {
      await new Promise((r) => setTimeout(r, 10));
      try {
        process.kill(pid, 0);
        zombie = true; // still answers kill(pid, 0): exited (sleep 0) but not reaped
      } catch {
        break;
      }
    }
    assert.ok(zombie, 'the child is a zombie that answers kill(pid, 0)');
    assert.equal(processAlive(pid), false);
    assert.equal(processAlive(parent.pid!), true);
    assert.equal(processAlive(process.pid), true);
  } finally {
    parent.kill('SIGKILL');
  }
});
