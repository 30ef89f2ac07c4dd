/**
 * `seine agent --config FILE`: runs a node agent in the foreground until SIGTERM or SIGINT; SIGHUP
 * rereads the peers. Logs are JSON lines on stderr.
 */
import { parseArgs } from 'node:util';
import { Agent } from '../live/agent.js';
import { ConfigError, loadAgentConfig } from '../live/config.js';
import { Logger, type LogLevel } from '../live/log.js';
import { nativeUnavailable } from '../live/native.js';
import { CliError } from './run.js';

export const AGENT_USAGE = `usage: seine agent --config FILE [--log-level debug|info|warn|error]

Runs a node agent: one bridge built from the node in FILE (see src/live/config.ts for the schema;
\`seine lab up\` writes one per node), its pods' TAPs, the tunnel sockets, a control socket, and a
Prometheus endpoint when the file asks for one. SIGHUP rereads the peers; SIGTERM stops. Needs Linux,
root and the native addon.

options:
  --config FILE        the agent configuration (YAML)
  --log-level LEVEL    debug, info (default), warn or error
  -h, --help           this help
`;

export async function agentCommand(args: string[]): Promise<number> {
  let v: { config?: string | undefined; 'log-level'?: string | undefined; help?: boolean | undefined };
  try {
    v = parseArgs({
      args,
      options: { config: { type: 'string' }, 'log-level': { type: 'string' }, help: { type: 'boolean', short: 'h' } },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (e) {
    throw new CliError(`agent: ${(e as Error).message} (see seine agent --help)`);
  }
  if (v.help === true) {
    process.stdout.write(AGENT_USAGE);
    return 0;
  }
  if (v.config === undefined) throw new CliError('agent: --config FILE is required (see seine agent --help)');
  const level = (v['log-level'] ?? 'info') as LogLevel;
  if (!['debug', 'info', 'warn', 'error'].includes(level)) throw new CliError(`agent: --log-level: expected debug, info, warn or error, got "${level}"`);
  const why = nativeUnavailable();
  if (why !== null) throw new CliError(`agent: ${why}`);
  let cfg: ReturnType<typeof loadAgentConfig>;
  try {
    cfg = loadAgentConfig(v.config);
  } catch (e) {
    if (e instanceof ConfigError) throw new CliError(`agent: ${e.message}`);
    throw e;
  }
  const log = new Logger({ node: cfg.node.name }, level);
  let agent: Agent;
  try {
    agent = await Agent.start(cfg, log);
  } catch (e) {
    log.error('agent could not start', { error: e instanceof Error ? e.message : String(e) });
    return 1;
  }
  return await new Promise<number>((resolve) => {
    const stop = (sig: string): void => {
      log.info('signal', { signal: sig });
      void agent.stop().then(() => resolve(0));
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
    process.on('SIGHUP', () => {
      agent.reload().catch((e: unknown) => log.error('reload failed; the peers in force are kept', { error: e instanceof Error ? e.message : String(e) }));
    });
  });
}
