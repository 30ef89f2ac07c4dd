#!/usr/bin/env node
/**
 * The `seine` CNI plugin's entry (what the launcher `seine install-cni` writes execs): stdin and the
 * environment in, plugin.ts's answer out. Only the plugin's own small files load here: the runtime
 * waits for this process on every pod start.
 */
import { readFileSync } from 'node:fs';
import { isatty } from 'node:tty';
import { runPlugin } from './plugin.js';

/**
 * stdin whole, read synchronously: creating `process.stdin`'s stream costs the plugin's start-up more
 * than the rest of its own work (6 ms of CPU of about 15 here, measured). A runtime hands a blocking
 * pipe; one that is not (EAGAIN) is read as a stream.
 */
async function readStdin(): Promise<string> {
  // A runtime always gives stdin (VERSION may give it empty); a terminal is not a configuration.
  if (isatty(0)) return '';
  try {
    return readFileSync(0, 'utf8');
  } catch (e) {
    // Any failure but EAGAIN (a closed stdin: EBADF; or another read error) is taken as no stdin, as an
    // empty one: plugin.ts then answers with the CNI error saying the configuration is missing.
    if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') return '';
  }
  let s = '';
  process.stdin.setEncoding('utf8');
  for await (const chunk of process.stdin) s += chunk as string;
  return s;
}

// No top-level await: the same code runs as the one-file CommonJS bundle the launcher starts (cni/bundle.ts).
void readStdin()
  .then((stdin) => runPlugin(process.env, stdin))
  .then((out) => {
    process.exitCode = out.code;
    process.stdout.write(out.stdout);
  });
