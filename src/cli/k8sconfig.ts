/**
 * `seine k8s-config --template FILE --out FILE`: writes this node's agent configuration from the
 * DaemonSet's template and the node's Node object (live/k8s-node.ts), waiting while the Node has no
 * podCIDR or InternalIP yet. The result passes the agent's loader before it replaces `--out` (a rename:
 * nothing reads half of it).
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse as parseYaml, stringify } from 'yaml';
import { ConfigError, loadAgentConfig } from '../live/config.js';
import { FileWriteError, writeFileAtomic } from '../live/fs.js';
import { sleep } from '../live/sleep.js';
import { type Args, CliError, type Command, helpHint } from './command.js';

export const K8S_CONFIG: Command = {
  name: 'k8s-config',
  operands: '',
  live: true,
  summary: "Write this node's agent configuration from a DaemonSet's template and its Node (podCIDR, InternalIP).",
  about: `Writes this node's agent configuration: the template (an agent configuration without the node's own
part) filled from this node's Node object — node.name, node.underlayIp (its InternalIP), the gateway's
addresses (the first of each podCIDR) and, unless the template gives them, the MACs. Waits while the
Node has no podCIDR or InternalIP yet. Relative paths in the template are read relative to --out.`,
  options: {
    template: { type: 'string', arg: 'FILE', required: true, help: "the template (the DaemonSet's ConfigMap)" },
    out: { type: 'string', arg: 'FILE', required: true, help: 'the agent configuration to write' },
    'node-name': { type: 'string', arg: 'NAME', help: 'the Node (default: the NODE_NAME environment variable)' },
    kubeconfig: { type: 'string', arg: 'FILE', help: "a kubeconfig (default: the template's kubernetes.kubeconfig, else in-cluster)" },
    wait: { type: 'string', arg: 'SECONDS', help: "how long to wait for the Node's podCIDR and InternalIP (default 300)" },
  },
  run: (a) => k8sConfigCommand(a),
};

async function k8sConfigCommand(a: Args): Promise<number> {
  if (a.operands.length > 0) throw new CliError(`k8s-config: no operands (got '${a.operands[0]}'; ${helpHint('k8s-config')})`);
  const v = { template: a.req('template'), out: a.req('out'), 'node-name': a.str('node-name'), kubeconfig: a.str('kubeconfig'), wait: a.str('wait') };
  const nodeName = v['node-name'] ?? process.env['NODE_NAME'];
  if (nodeName === undefined || nodeName === '')
    throw new CliError('k8s-config: no Node name: give --node-name or set NODE_NAME (the downward API spec.nodeName)');
  const waitS = Number(v.wait ?? '300');
  if (!Number.isInteger(waitS) || waitS < 0 || waitS > 86400) throw new CliError(`k8s-config: --wait: expected whole seconds 0-86400, got "${v.wait}"`);
  const templateFile = resolve(v.template);
  const out = resolve(v.out);
  let template: unknown;
  try {
    template = parseYaml(readFileSync(templateFile, 'utf8'));
  } catch (e) {
    throw new CliError(`k8s-config: ${templateFile}: ${(e as Error).message.split('\n')[0]}`);
  }
  const k = (template as { kubernetes?: { kubeconfig?: unknown } } | null)?.kubernetes?.kubeconfig;
  const kubeconfig = v.kubeconfig !== undefined ? resolve(v.kubeconfig) : typeof k === 'string' ? resolve(dirname(templateFile), k) : null;
  // The client is loaded only here: the rest of the CLI never pays for it.
  const { CoreV1Api } = await import('@kubernetes/client-node');
  const { kubeConfigFor } = await import('../live/k8s.js');
  const { nodeConfigFromTemplate } = await import('../live/k8s-node.js');
  let api: InstanceType<typeof CoreV1Api>;
  try {
    api = kubeConfigFor({ kubeconfig, nodeName, resyncSeconds: 1, retrySeconds: 1 }).makeApiClient(CoreV1Api);
  } catch (e) {
    throw new CliError(`k8s-config: ${(e as Error).message}`);
  }
  const until = Date.now() + waitS * 1000;
  for (let attempt = 1; ; attempt++) {
    let why: string;
    try {
      const node = await api.readNode({ name: nodeName });
      const doc = nodeConfigFromTemplate(template, node, templateFile);
      // No fsync: the DaemonSet's init container writes it again at every start of the agent's pod.
      try {
        writeFileAtomic(out, `# written by seine k8s-config from ${templateFile} and Node ${nodeName}\n${stringify(doc)}`, {
          check: (tmp) => loadAgentConfig(tmp),
        });
      } catch (e) {
        if (e instanceof ConfigError) throw new CliError(`k8s-config: the configuration made from ${templateFile} is refused: ${e.message}`);
        // Not a wait for the Node: a file that cannot be written now will not be on the next attempt.
        if (e instanceof FileWriteError) throw new CliError(`k8s-config: ${e.message}`);
        throw e;
      }
      process.stderr.write(`k8s-config: wrote ${out} for Node ${nodeName} (${attempt} attempt${attempt > 1 ? 's' : ''})\n`);
      return 0;
    } catch (e) {
      if (e instanceof CliError) throw e;
      why = e instanceof Error ? e.message : String(e);
    }
    if (Date.now() >= until) throw new CliError(`k8s-config: gave up after ${waitS} s: ${why}`, 1);
    process.stderr.write(`k8s-config: waiting: ${why}\n`);
    await sleep(2000);
  }
}
