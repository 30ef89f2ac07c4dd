#!/usr/bin/env node
/**
 * The `seine` command. Each command is a `Command` (command.ts) in its own module: its option table,
 * from which its help and the general help are made, and what it does. This file holds the table of
 * commands (adding one is one entry), parses every command's arguments with the one parser, maps errors
 * to exit statuses (0 ok, 1 the input was damaged or an expectation failed, 2 usage or input error) and
 * never lets a stack trace reach the user for a mistake of theirs. Every error reads `seine <command>: …`.
 */
import { readFileSync } from 'node:fs';
import { CliError, commandHelp, generalHelp, parseCommandArgs, type Command } from './command.js';

/**
 * Every command, in the order the general help lists them: its name (two words for a subcommand) and how
 * to load it — modules load on use, so `seine mtu` does not load the live side.
 */
const COMMANDS: readonly { name: string; load: () => Promise<Command> }[] = [
  { name: 'run', load: async () => (await import('./run.js')).RUN },
  { name: 'trace', load: async () => (await import('./run.js')).TRACE },
  { name: 'decode', load: async () => (await import('./decode.js')).DECODE },
  { name: 'mtu', load: async () => (await import('./mtu.js')).MTU },
  { name: 'report', load: async () => (await import('./report.js')).REPORT },
  { name: 'bench overhead', load: async () => (await import('./overhead.js')).BENCH_OVERHEAD },
  { name: 'agent', load: async () => (await import('./agent.js')).AGENT },
  { name: 'install-cni', load: async () => (await import('./installcni.js')).INSTALL_CNI },
  { name: 'k8s-config', load: async () => (await import('./k8sconfig.js')).K8S_CONFIG },
  { name: 'lab up', load: async () => (await import('./lab.js')).LAB_UP },
  { name: 'lab down', load: async () => (await import('./lab.js')).LAB_DOWN },
  { name: 'lab status', load: async () => (await import('./lab.js')).LAB_STATUS },
  { name: 'lab exec', load: async () => (await import('./lab.js')).LAB_EXEC },
  { name: 'capture', load: async () => (await import('./lab.js')).CAPTURE },
  { name: 'bench live', load: async () => (await import('./benchlive.js')).BENCH_LIVE },
];

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** Writes to stdout; a closed pipe (`seine decode x | head`) ends the program quietly. */
function out(line: string): void {
  process.stdout.write(line + '\n');
}
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(0);
  throw e;
});

const io = {
  out,
  err: (text: string): void => {
    process.stderr.write(text);
  },
  tty: process.stderr.isTTY === true,
};

const isHelp = (a: string | undefined): boolean => a === '-h' || a === '--help' || a === 'help';

/**
 * The command `words` name: the entry itself (`run`, `lab up`), the subcommands under a group's word
 * (`lab`: up, down, status, exec), or nothing. `used` is how many words the name took.
 */
function find(words: readonly string[]): { entries: (typeof COMMANDS)[number][]; used: number } {
  const [w0, w1] = words;
  const two = COMMANDS.find((c) => c.name === `${w0} ${w1}`);
  if (two !== undefined) return { entries: [two], used: 2 };
  const one = COMMANDS.find((c) => c.name === w0);
  if (one !== undefined) return { entries: [one], used: 1 };
  return { entries: COMMANDS.filter((c) => c.name.startsWith(`${w0} `)), used: 1 };
}

/** The command being run, named in errors (`seine lab up: …`), once known. */
let current = '';

async function main(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined || isHelp(first)) {
    // `seine help run`, `seine --help lab`: that command's help.
    if (first !== undefined && rest.length > 0) return help(rest);
    out(generalHelp(await Promise.all(COMMANDS.map((c) => c.load()))));
    return first === undefined ? 2 : 0;
  }
  if (first === '-V' || first === '--version') {
    out(version());
    return 0;
  }
  const { entries, used } = find(argv);
  if (entries.length === 0) throw new CliError(`unknown command '${first}' (try seine --help)`);
  if (entries.length > 1 || entries[0]!.name.split(' ').length > used) {
    // A group's word alone (`seine lab`), or with help: the group's commands; anything else is unknown.
    current = first;
    const sub = argv[1];
    if (sub === undefined || isHelp(sub)) {
      out(generalHelpOf(await Promise.all(entries.map((c) => c.load()))));
      return sub === undefined ? 2 : 0;
    }
    throw new CliError(`${first}: unknown subcommand '${sub}' (${entries.map((e) => e.name.split(' ')[1]).join(', ')}; see seine ${first} --help)`);
  }
  const cmd = await entries[0]!.load();
  current = cmd.name;
  const args = argv.slice(used);
  // `seine trace --live …` is trace with --live: the parsed table says so; help comes first.
  const a = parseCommandArgs(cmd, args);
  if (a.has('help')) {
    out(commandHelp(cmd));
    return 0;
  }
  return await cmd.run(a, io);
}

/** Several commands' own help, one after the other (a group such as `lab`). */
function generalHelpOf(cmds: readonly Command[]): string {
  return cmds.map(commandHelp).join('\n');
}

async function help(words: readonly string[]): Promise<number> {
  const { entries } = find(words);
  if (entries.length === 0) throw new CliError(`help: no command '${words.join(' ')}' (try seine --help)`);
  out(generalHelpOf(await Promise.all(entries.map((c) => c.load()))));
  return 0;
}

/** `seine <command>: <message>`: a message that does not begin with the command's name gets it. */
function errorLine(message: string): string {
  if (current === '' || message.startsWith(`${current}:`) || message.startsWith(`${current} `)) return `seine ${message}`;
  return `seine ${current}: ${message}`;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    if (e instanceof CliError) {
      process.stderr.write(`${errorLine(e.message)}\n`);
      process.exitCode = e.code;
    } else {
      process.stderr.write(`${errorLine(`internal error (please report): ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`)}\n`);
      process.exitCode = 70;
    }
  },
);
