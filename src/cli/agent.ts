/**
 * `seine agent --config FILE`: runs a node agent in the foreground until SIGTERM or SIGINT; SIGHUP
 * rereads the peers. Logs are JSON lines on stderr.
 */
import { Agent } from '../live/agent.js';
import { ConfigError, loadAgentConfig } from '../live/config.js';
import { Logger, type LogLevel } from '../live/log.js';
import { nativeUnavailable } from '../live/native.js';
import { type Args, CliError, type Command, helpHint } from './command.js';

export const AGENT: Command = {
  name: 'agent',
  operands: '',
  live: true,
  summary: "Run a node agent: the node's bridge on TAPs and UDP tunnel sockets, a control socket, metrics.",
  about: `Runs a node agent: one bridge built from the node in FILE (see src/live/config.ts for the schema;
\`seine lab up\` writes one per node), its pods' TAPs, the tunnel sockets, a control socket, and a
Prometheus endpoint when the file asks for one. SIGHUP rereads the peers; SIGTERM stops. Needs Linux,
root and the native addon.`,
  options: {
    config: { type: 'string', arg: 'FILE', required: true, help: 'the agent configuration (YAML)' },
    'log-level': { type: 'string', arg: 'LEVEL', help: 'debug, info (default), warn or error' },
  },
  run: (a) => agentCommand(a),
};

async function agentCommand(a: Args): Promise<number> {
  if (a.operands.length > 0) throw new CliError(`agent: no operands (got '${a.operands[0]}'; ${helpHint('agent')})`);
  const v = { config: a.req('config'), 'log-level': a.str('log-level') };
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
