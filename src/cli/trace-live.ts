/**
 * `seine trace --live`: one real packet through a running lab, with the stages the simulator's trace
 * shows. Every node's agent is armed (the control socket's `trace` op streams its records), the source
 * pod's own kernel sends the probe (`ping -c 1`, or one UDP datagram), and the records of all nodes are
 * merged by time into the simulator's `TraceResult` shape, printed by the same formatter.
 */
import type { Socket } from 'node:net';
import { controlStream } from '../live/control.js';
import { openLab, runInNetns } from '../live/lab/index.js';
import { sleep } from '../live/sleep.js';
import { formatTrace, type TraceResult, type TraceStep } from '../sim/tracer.js';
import { controlPath, namespaceOf, pickLab } from './lab.js';
import { type Args, CliError, type RunIo } from './command.js';
import { checkEndpoint } from './run.js';

const PROTO = { icmp: 1, udp: 17 } as const;

/** `seine trace --live`, with the arguments parsed by trace's table (run.ts's TRACE). */
export async function traceLive(a: Args, io: RunIo): Promise<number> {
  for (const o of ['family', 'at', 'seed'] as const) if (a.has(o)) throw new CliError(`trace --live: --${o} is for simulated traces`);
  if (a.operands.length > 0) throw new CliError(`trace --live: no scenario file: the lab is running already (got '${a.operands[0]}')`);
  const v: Record<string, string | undefined> = { proto: a.str('proto'), size: a.str('size'), lab: a.str('lab') };
  const from = a.req('from'),
    to = a.req('to');
  checkEndpoint('trace --live', '--from', from);
  checkEndpoint('trace --live', '--to', to);
  const proto = (v['proto'] ?? 'icmp') as string;
  if (proto !== 'icmp' && proto !== 'udp') throw new CliError(`trace --live: --proto expects icmp or udp, got '${proto}'`);
  const size = v['size'] === undefined ? (proto === 'icmp' ? 84 : 100) : Number(v['size']);
  if (!Number.isInteger(size) || size < 28 + (proto === 'udp' ? 1 : 0) || size > 65507)
    throw new CliError(`trace --live: --size expects an IP packet size in 29-65507, got '${String(v['size'])}'`);
  const l = await pickLab(v['lab'] as string | undefined, 'trace --live');
  const plan = openLab(l.lab).plan;
  const addr = (where: string, what: string): { ns: string; ip: string } => {
    const ns = namespaceOf(l, where);
    const [node, pod] = where.split('/');
    const n = plan.nodes.find((x) => x.name === node)!;
    const ip = pod === undefined ? n.gateway4 : (n.pods.find((p) => p.name === pod)?.ip4 ?? null);
    if (ip === null)
      throw new CliError(
        `trace --live: ${what} ${where} has no IPv4 address${pod === undefined ? ' (a node stands for its own stack, which routed mode has)' : ''}`,
      );
    return { ns, ip };
  };
  const src = addr(from, '--from'),
    dst = addr(to, '--to');
  if (from === to) throw new CliError('trace --live: --from and --to are the same endpoint');

  const steps: TraceStep[] = [];
  let probeSaid = '';
  const sockets: Socket[] = [];
  const t0 = Date.now() * 1e6;
  try {
    for (const n of plan.nodes) {
      const { socket, rest } = await controlStream(controlPath(l, n.name), {
        op: 'trace',
        src: src.ip,
        dst: dst.ip,
        proto: PROTO[proto],
        timeoutMs: 5000,
      }).catch((e: Error) => {
        throw new CliError(`trace --live: ${n.name}: ${e.message}`);
      });
      sockets.push(socket);
      let buf = rest.toString('utf8');
      const take = (): void => {
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          try {
            steps.push(JSON.parse(line) as TraceStep);
          } catch {
            /* a line cut by the agent's exit */
          }
        }
      };
      take();
      socket.setEncoding('utf8');
      socket.on('data', (d: string) => {
        buf += d;
        take();
      });
      socket.resume();
    }
    const probe =
      proto === 'icmp'
        ? ['ping', '-c', '1', '-W', '2', '-M', 'do', '-s', String(size - 28), dst.ip]
        : [process.execPath, '-e', `const s=require('node:dgram').createSocket('udp4');s.send(Buffer.alloc(${size - 28}),33434,'${dst.ip}',()=>s.close())`];
    await runInNetns(src.ns, probe, { timeoutMs: 5000 }).catch((e: { stderr?: string; stdout?: string }) => {
      probeSaid =
        `${e.stdout ?? ''}${e.stderr ?? ''}`
          .trim()
          .split('\n')
          .filter((x) => /error|too long|unreachable|refused/i.test(x))[0] ?? '';
    });
    // The reply or the ICMP error may follow; leave the records a moment to arrive.
    const until = Date.now() + 2500;
    while (Date.now() < until && !steps.some((s) => s.stage === 'deliver' && s.detail['destination'] === true)) await sleep(50);
    await sleep(200);
  } finally {
    for (const s of sockets) s.destroy();
  }
  steps.sort((a, b) => a.t - b.t);
  for (const s of steps) s.t -= t0;
  const delivered = steps.some((s) => s.stage === 'deliver' && s.detail['destination'] === true);
  const drop = steps.find((s) => s.stage === 'drop');
  const r: TraceResult = {
    scenario: `${l.scenario} (live lab ${l.lab})`,
    from,
    to,
    proto,
    family: 4,
    src: src.ip,
    dst: dst.ip,
    size,
    steps,
    outcome: delivered ? 'delivered' : drop !== undefined ? 'dropped' : steps.length === 0 ? 'not-sent' : 'lost',
    reason: delivered
      ? null
      : drop !== undefined
        ? drop.action
        : steps.length === 0
          ? `no agent saw the packet leave its source${probeSaid !== '' ? ` (the source said: ${probeSaid})` : ''}`
          : 'the packet left and did not arrive',
  };
  io.out(a.has('json') ? JSON.stringify(r) : formatTrace(r));
  return delivered ? 0 : 1;
}
