/**
 * What every `seine` command is made of: its option table, its help (generated from that table, so the
 * two cannot drift) and one argument parser for all commands, over node's `util.parseArgs` — `--opt value`
 * and `--opt=value` both work, `-h`/`--help` is every command's, and a mistake is a CliError whose message
 * names the command and ends with the hint to its help.
 */
import { parseArgs } from 'node:util';

/** A mistake of the user's (status 2 unless `code` says otherwise); the message begins with the command's name. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly code = 2,
  ) {
    super(message);
  }
}

export interface RunIo {
  out(line: string): void;
  err(text: string): void;
  /** Whether to draw the progress bar (stderr is a terminal). */
  tty: boolean;
}

export interface CliOption {
  type: 'string' | 'boolean';
  /** The value's name in the help and the usage line: DIR, N, TIME. */
  arg?: string;
  short?: string;
  /** May be given more than once; every value is kept. */
  multiple?: boolean;
  /** What the value must be, for the message when it is missing: "a positive integer" (default: `arg`). */
  expects?: string;
  /** Must be given (the parser refuses a command without it; `-h`/`--help` needs none); shown without brackets in the usage line. */
  required?: boolean;
  help: string;
}

export interface Command {
  /** `run`, or `lab up` for a subcommand. */
  name: string;
  /** The operands as the usage line shows them, e.g. `<scenario.yaml>`; empty for none. */
  operands: string;
  /** One paragraph for the general help. */
  summary: string;
  /** The command's own help, between its usage line and its options (default: the summary). */
  about?: string;
  options: Record<string, CliOption>;
  /** Text after the options: exit statuses, notes. */
  footer?: string;
  /** A second way to call it, after `seine <name> `, with the options that way takes: `--live <scenario.yaml> [--lab NAME]`. */
  variant?: string;
  /** Listed under "live" in the general help (Linux, root). */
  live?: boolean;
  /** Arguments after `--` are the command's to pass on (`lab exec`); otherwise they are operands. */
  passthrough?: boolean;
  run(a: Args, io: RunIo): number | Promise<number>;
}

/** The help option every command has. */
const HELP: CliOption = { type: 'boolean', short: 'h', help: 'this help' };

/** A command's parsed arguments. */
export class Args {
  constructor(
    readonly cmd: string,
    private readonly given: Map<string, string[]>,
    readonly operands: string[],
    /** After `--`, for a passthrough command. */
    readonly rest: string[],
  ) {}
  /** Whether the option was given (a flag's value, or a string option's presence). */
  has(name: string): boolean {
    return this.given.has(name);
  }
  /** The value of a string option (the last one given), or undefined. */
  str(name: string): string | undefined {
    return this.given.get(name)?.at(-1);
  }
  /** The value of a required option: the parser has refused the command without it. */
  req(name: string): string {
    const v = this.str(name);
    if (v === undefined) throw new Error(`${this.cmd}: --${name} is not a required string option of this command`);
    return v;
  }
  /** Every value of a repeatable option, in order. */
  all(name: string): string[] {
    return this.given.get(name) ?? [];
  }
}

/** The hint every usage mistake ends with. */
export function helpHint(cmd: string): string {
  return `see seine ${cmd} --help`;
}

/**
 * Parses `args` against the command's table. Unknown options, a value missing or given to a flag, (for a
 * value not written as `--opt=value`) a value that is itself an option, and a required option not given
 * (unless help is asked for) are refused.
 */
export function parseCommandArgs(cmd: Command, args: readonly string[]): Args {
  const table: Record<string, CliOption> = { ...cmd.options, help: HELP };
  const nodeOptions: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = {};
  for (const [k, o] of Object.entries(table)) nodeOptions[k] = { type: o.type, multiple: true, ...(o.short !== undefined ? { short: o.short } : {}) };
  const usage = (what: string): CliError => new CliError(`${cmd.name}: ${what} (${helpHint(cmd.name)})`);
  // Not strict: the tokens are checked here, so that every mistake is said in the same words.
  const { tokens } = parseArgs({ args: [...args], options: nodeOptions, strict: false, allowPositionals: true, tokens: true });
  const given = new Map<string, string[]>();
  const operands: string[] = [];
  let rest: string[] = [];
  for (const t of tokens) {
    if (t.kind === 'positional') operands.push(t.value);
    else if (t.kind === 'option-terminator') {
      const after = args.slice(t.index + 1);
      if (cmd.passthrough === true) rest = after;
      else operands.push(...after);
      break;
    } else {
      const o = table[t.name];
      if (o === undefined) throw usage(`unknown option '${t.rawName}'`);
      const name = t.rawName.startsWith('--') ? t.rawName : `-${o.short}`;
      let value: string;
      if (o.type === 'boolean') {
        if (t.value !== undefined) throw usage(`${name} takes no value (got '${t.value}')`);
        value = '';
      } else {
        if (t.value === undefined || (!t.inlineValue && t.value.startsWith('-') && t.value !== '-'))
          throw usage(
            `${name} expects ${o.expects ?? o.arg ?? 'a value'}${t.value !== undefined ? ` (got the option '${t.value}'; write ${name}=${t.value} if you mean it)` : ''}`,
          );
        value = t.value;
      }
      const vs = given.get(t.name) ?? [];
      vs.push(value);
      given.set(t.name, vs);
    }
  }
  if (!given.has('help'))
    for (const [k, o] of Object.entries(cmd.options))
      if (o.required === true && !given.has(k)) throw usage(`--${k}${o.type === 'string' ? ` ${o.arg ?? 'VALUE'}` : ''} is required`);
  return new Args(cmd.name, given, operands, rest);
}

function optionWords(name: string, o: CliOption): string {
  const long = `--${name}${o.type === 'string' ? ` ${o.arg ?? 'VALUE'}` : ''}`;
  return o.short !== undefined ? `-${o.short}, ${long}` : long;
}

/** The usage line's words after `seine <name>`: operands, every option, then `-- CMD...` for a passthrough command. */
function synopsis(cmd: Command): string[] {
  const parts: string[] = cmd.operands === '' ? [] : [cmd.operands];
  for (const [name, o] of Object.entries(cmd.options)) {
    const w = `--${name}${o.type === 'string' ? ` ${o.arg ?? 'VALUE'}` : ''}`;
    parts.push(o.required === true ? w : `[${w}]${o.multiple === true ? '...' : ''}`);
  }
  if (cmd.passthrough === true) parts.push('-- CMD [ARG...]');
  return parts;
}

/** A usage text's words, a bracketed group (`[--lab NAME]`) kept whole. */
function groups(text: string): string[] {
  return text.split(/ (?![^[]*\])/);
}

/** `text` broken into lines of at most `width` characters, each prefixed with `indent`. */
function wrap(text: string | readonly string[], indent: string, width = 104, more = indent): string[] {
  const lines: string[] = [];
  let line = '';
  const words = typeof text === 'string' ? text.split(/\s+/).filter((x) => x !== '') : text;
  for (const w of words) {
    if (line !== '' && (lines.length === 0 ? indent : more).length + line.length + 1 + w.length > width) {
      lines.push((lines.length === 0 ? indent : more) + line);
      line = w;
    } else line = line === '' ? w : `${line} ${w}`;
  }
  if (line !== '') lines.push((lines.length === 0 ? indent : more) + line);
  return lines;
}

/** The options of a command as the help lists them, `-h, --help` last. */
function optionLines(options: Record<string, CliOption>): string[] {
  const all = Object.entries({ ...options, help: HELP });
  const col = Math.min(24, Math.max(...all.map(([n, o]) => optionWords(n, o).length)) + 2);
  const out: string[] = [];
  for (const [n, o] of all) {
    const w = optionWords(n, o);
    const text = wrap(o.help, ' '.repeat(2 + col));
    if (w.length + 2 <= col) out.push(`  ${w.padEnd(col)}${text[0]!.trimStart()}`, ...text.slice(1));
    else out.push(`  ${w}`, ...text);
  }
  return out;
}

/** `seine <cmd> --help`: the usage line, what it does, every option, the footer. */
export function commandHelp(cmd: Command): string {
  const head = wrap([`usage: seine ${cmd.name}`, ...synopsis(cmd)], '', 104, ' '.repeat(`usage: seine ${cmd.name} `.length));
  if (cmd.variant !== undefined)
    head.push(...wrap([`       seine ${cmd.name}`, ...groups(cmd.variant)], '', 104, ' '.repeat(`usage: seine ${cmd.name} `.length)));
  const parts = [head.join('\n'), cmd.about ?? wrap(cmd.summary, '').join('\n'), ['options:', ...optionLines(cmd.options)].join('\n')];
  if (cmd.footer !== undefined) parts.push(cmd.footer.trimEnd());
  return `${parts.join('\n\n')}\n`;
}

/** The general help: every command with its usage line (every option) and its summary. */
export function generalHelp(cmds: readonly Command[]): string {
  const entry = (c: Command): string =>
    [
      ...wrap([c.name, ...synopsis(c)], '  ', 104, '        '),
      ...(c.variant !== undefined ? wrap([c.name, ...groups(c.variant)], '  ', 104, '        ') : []),
      ...wrap(c.summary, '      '),
    ].join('\n');
  return `usage: seine <command> [options]
       seine <command> --help, or seine help <command>: that command's help

commands (the simulator: no root, no network):
${cmds
  .filter((c) => c.live !== true)
  .map(entry)
  .join('\n')}

live (Linux, root; see the README's "Live" section):
${cmds
  .filter((c) => c.live === true)
  .map(entry)
  .join('\n')}

options:
  -h, --help       this help
  -V, --version    print the version

exit status: 0 ok; 1 an expectation failed, a packet was dropped or the input was damaged; 2 a usage or
input error (the message names the command: seine <command>: ...)
`;
}
