#!/usr/bin/env node
/**
 * The `seine` CNI plugin's entry (what the launcher `seine install-cni` writes execs): stdin and the
 * environment in, plugin.ts's answer out. Only the plugin's own small files load here: the runtime
 * waits for this process on every pod start.
 */
import { runPlugin } from './plugin.js';

async function readStdin(): Promise<string> {
  // A runtime always gives stdin (VERSION may give it empty); a terminal is not a configuration.
  if (process.stdin.isTTY === true) return '';
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
