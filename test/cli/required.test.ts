/**
 * A command's required options are refused by the one parser (cli/command.ts), not by each command: a
 * missing one is a usage error in the one form — `seine <command>: --opt ARG is required (see seine
 * <command> --help)`, one line, exit status 2 — before the command runs, while `--help` needs none.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CliError, type Command, parseCommandArgs } from '../../src/cli/command.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const MAIN = join(ROOT, 'dist', 'src', 'cli', 'main.js');

function seine(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 30_000 });
  if (r.error !== undefined) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const CMD: Command = {
  name: 'demo',
  operands: '',
  summary: 'a command to parse against',
  options: {
    file: { type: 'string', arg: 'FILE', required: true, help: 'required' },
    level: { type: 'string', arg: 'N', help: 'optional' },
  },
  run: () => 0,
};

test('parser: a required option missing is a CliError (status 2) naming the command and the option, with the hint to its help', () => {
  for (const args of [[], ['--level', '3'], ['--', '--file']]) {
    assert.throws(
      () => parseCommandArgs(CMD, args),
      (e: unknown) => e instanceof CliError && e.code === 2 && e.message === 'demo: --file FILE is required (see seine demo --help)',
      args.join(' '),
    );
  }
  assert.equal(parseCommandArgs(CMD, ['--file', 'a']).req('file'), 'a');
  assert.equal(parseCommandArgs(CMD, ['--file=b', '--file=c']).req('file'), 'c', 'the last one given');
  assert.equal(parseCommandArgs(CMD, ['--file=']).req('file'), '', 'given empty is given');
  // Help needs none of them.
  assert.equal(parseCommandArgs(CMD, ['-h']).has('help'), true);
  assert.equal(parseCommandArgs(CMD, ['--help', '--level', '1']).has('help'), true);
  // req on an option that may be missing is a programming error, not the user's.
  assert.throws(
    () => parseCommandArgs(CMD, ['--file', 'a']).req('level'),
    (e: unknown) => !(e instanceof CliError),
  );
});

test('cli: agent, report, k8s-config, trace and capture without a required option exit 2 in the one form, before doing anything', () => {
  const cases: [string[], string, string][] = [
    [['agent'], 'agent', '--config FILE'],
    [['agent', '--log-level', 'debug'], 'agent', '--config FILE'],
    [['report', 'run.json'], 'report', '--html FILE'],
    [['report', 'run.json', '--trace', 't.json'], 'report', '--html FILE'],
    [['k8s-config'], 'k8s-config', '--template FILE'],
    [['k8s-config', '--template', 'template.yaml'], 'k8s-config', '--out FILE'],
    [['k8s-config', '--out', 'agent.yaml', '--node-name', 'n1'], 'k8s-config', '--template FILE'],
    [['trace', 'scenarios/two-nodes-vxlan.yaml', '--from', 'node1/a'], 'trace', '--to NODE[/POD]'],
    [['trace', '--live', '--to', 'node2/c'], 'trace', '--from NODE[/POD]'],
    [['capture', 'node1', 'a'], 'capture', '--write FILE'],
  ];
  for (const [args, cmd, opt] of cases) {
    const r = seine(...args);
    const what = `seine ${args.join(' ')}`;
    assert.equal(r.status, 2, `${what}: ${r.stderr}`);
    assert.equal(r.stderr, `seine ${cmd}: ${opt} is required (see seine ${cmd} --help)\n`, what);
    assert.equal(r.stdout, '', what);
  }
});

test('cli: --help of a command with required options needs none of them, and shows them unbracketed', () => {
  for (const [cmd, opt] of [
    ['agent', '--config FILE'],
    ['report', '--html FILE'],
    ['k8s-config', '--out FILE'],
    ['capture', '--write FILE'],
  ] as const) {
    const r = seine(...cmd.split(' '), '--help');
    assert.equal(r.status, 0, `${cmd} --help: ${r.stderr}`);
    const usage = r.stdout.split('\n')[0]!;
    assert.ok(usage.startsWith(`usage: seine ${cmd} `) && usage.includes(` ${opt}`) && !usage.includes(`[${opt}]`), usage);
    assert.equal(r.stderr, '');
  }
});
