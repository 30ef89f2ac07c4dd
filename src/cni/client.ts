/**
 * The plugin's one request to the agent (live/request.ts: a line of JSON over the control socket, one
 * line back). It tells "no agent" (try again later) from an agent's refusal, which it passes on whole.
 */
import { requestLine } from '../live/request.js';

/** The agent could not be reached, or did not answer in time. */
export class AgentUnreachable extends Error {
  override readonly name = 'AgentUnreachable';
}

/** Sends `req`; resolves with the reply object (whatever its `ok`), rejects with `AgentUnreachable`. */
export function askAgent(path: string, req: Record<string, unknown>, timeoutMs: number): Promise<Record<string, unknown>> {
  return requestLine(path, req, timeoutMs, (what) => new AgentUnreachable(what));
}
