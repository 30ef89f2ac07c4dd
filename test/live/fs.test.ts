/**
 * A file replaced whole (live/fs.ts `writeFileAtomic`): the new bytes and mode on success; on any
 * failure no temporary file left beside the target, and the reason in words (no root needed).
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { FileWriteError, writeFileAtomic } from '../../src/live/fs.js';

const DIR = mkdtempSync(join(tmpdir(), 'seine-fs-'));
after(() => rmSync(DIR, { recursive: true, force: true }));

/** Runs `f`, which must throw a FileWriteError; returns it. */
function refused(f: () => void): FileWriteError {
  let caught: unknown = null;
  try {
    f();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof FileWriteError, `threw ${String(caught)}`);
  return caught;
}

test('writeFileAtomic: replaces the file whole, with the mode asked whatever the umask, and leaves nothing else', () => {
  const d = join(DIR, 'ok');
  mkdirSync(d);
  const f = join(d, 'conf');
  writeFileSync(f, 'old');
  const umask = process.umask(0o077);
  try {
    writeFileAtomic(f, 'new', { mode: 0o755 });
  } finally {
    process.umask(umask);
  }
  assert.equal(readFileSync(f, 'utf8'), 'new');
  assert.equal(statSync(f).mode & 0o777, 0o755);
  assert.deepEqual(readdirSync(d), ['conf']);
});

test('writeFileAtomic: a rename onto a directory fails in words, leaves no temporary file and the directory as it was', () => {
  const d = join(DIR, 'ontodir');
  mkdirSync(join(d, 'target'), { recursive: true });
  writeFileSync(join(d, 'target', 'inside'), 'x');
  const e = refused(() => writeFileAtomic(join(d, 'target'), 'data'));
  assert.equal(e.why, 'is a directory');
  assert.equal(e.message, `cannot write '${join(d, 'target')}': is a directory`);
  assert.deepEqual(readdirSync(d), ['target']);
  assert.deepEqual(readdirSync(join(d, 'target')), ['inside']);
});

test('writeFileAtomic: a directory that is missing, or a file where a directory should be, fails in words', () => {
  assert.equal(refused(() => writeFileAtomic(join(DIR, 'absent', 'f'), 'x')).why, 'no such file or directory');
  writeFileSync(join(DIR, 'plain'), '');
  assert.equal(refused(() => writeFileAtomic(join(DIR, 'plain', 'f'), 'x')).why, 'a part of the path is a file, not a directory');
});

test('writeFileAtomic: a file system that refuses the write (read-only /proc) fails in words and leaves nothing', () => {
  // /proc/self takes no new files for anyone, root included (permission bits would not stop root).
  const e = refused(() => writeFileAtomic('/proc/self/seine-test', 'x'));
  assert.match(e.why, /^(no such file or directory|permission denied|the file system is read-only)$/);
  assert.ok(!readdirSync('/proc/self').some((n) => n.startsWith('seine-test')));
});

test('writeFileAtomic: a check that refuses the written file leaves the old file and no temporary one, its error unchanged', () => {
  const d = join(DIR, 'check');
  mkdirSync(d);
  const f = join(d, 'agent.yaml');
  writeFileSync(f, 'old');
  let seen = '';
  const refusal = new Error('refused by the check');
  assert.throws(
    () =>
      writeFileAtomic(f, 'new', {
        check: (tmp) => {
          seen = readFileSync(tmp, 'utf8');
          throw refusal;
        },
      }),
    (e: unknown) => e === refusal,
  );
  assert.equal(seen, 'new', 'the check read what was written');
  assert.equal(readFileSync(f, 'utf8'), 'old');
  assert.deepEqual(readdirSync(d), ['agent.yaml']);
});
