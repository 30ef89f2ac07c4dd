/**
 * The package's `install` script: builds the native addon (native/build/Release/seine.node) with the
 * node-gyp that npm bundles, and prints one line. It never fails the install — the simulator must install
 * everywhere; when the build fails or the system is not Linux, live mode stays off and
 * src/live/native.ts says why (the reason is kept in native/build/failure.txt, the full log after it).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

function finish(line) {
  console.log(`seine: ${line}`);
  process.exit(0);
}

function fail(reason, log) {
  try {
    mkdirSync(join(here, 'build'), { recursive: true });
    writeFileSync(join(here, 'build', 'failure.txt'), `${reason}\n\n${log}`);
  } catch {
    // Nowhere to keep the reason: the message below still says it.
  }
  finish(`native addon not built (${reason}); live mode is off, the simulator works without it`);
}

if (process.platform !== 'linux') {
  finish(`native addon skipped: live mode needs Linux (this is ${process.platform}); the simulator works without it`);
}

/** npm names its node-gyp for lifecycle scripts; run by hand, look next to npm, then next to node. */
function findNodeGyp() {
  const bin = join('node_modules', 'node-gyp', 'bin', 'node-gyp.js');
  const candidates = [
    process.env.npm_config_node_gyp,
    process.env.npm_execpath && join(dirname(process.env.npm_execpath), '..', bin),
    join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', bin),
  ];
  return candidates.find((p) => p && existsSync(p));
}

const gyp = findNodeGyp();
if (gyp === undefined) fail('node-gyp not found: run this through npm (npm rebuild seine)', '');

const args = [gyp, 'rebuild', '--directory', here];
// Without a configured nodedir node-gyp downloads headers; use the ones installed with this node if present.
const prefix = dirname(dirname(process.execPath));
if (!process.env.npm_config_nodedir && existsSync(join(prefix, 'include', 'node', 'node_api.h'))) {
  args.push(`--nodedir=${prefix}`);
}

const r = spawnSync(process.execPath, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 600_000 });
const log = `${r.stdout ?? ''}${r.stderr ?? ''}`;
if (r.status === 0) finish('native addon built (native/build/Release/seine.node)');

/** The most telling line: a compiler error, else node-gyp's own error, else the last line. */
const lines = log
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l !== '');
const reason =
  lines.find((l) => /\berror\b:/i.test(l) && !l.startsWith('gyp')) ??
  lines.find((l) => l.startsWith('gyp ERR! stack Error:'))?.replace('gyp ERR! stack ', '') ??
  lines.find((l) => l.startsWith('gyp ERR!') && !/ERR! (stack|System|command|cwd|node -v|node-gyp -v|not ok)/.test(l)) ??
  lines.at(-1) ??
  (r.error ? String(r.error.message) : `exit status ${r.status}`);
fail(`node-gyp failed: ${reason.slice(0, 300)}`, log);
