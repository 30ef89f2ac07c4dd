/** What the scenario tests share: the error a text must be refused with. */
import assert from 'node:assert/strict';
import { parseScenario, ScenarioError } from '../../src/scenario/scenario.js';

/** The `ScenarioError` that loading `text` as `file` throws (any other error is thrown on; none fails). */
export function scenarioError(text: string, file: string): ScenarioError {
  try {
    parseScenario(text, file);
  } catch (e: unknown) {
    if (e instanceof ScenarioError) return e;
    throw e;
  }
  // Generated texts run to megabytes: their start says which one it was.
  assert.fail(`expected a ScenarioError for:\n${text.length > 2000 ? `${text.slice(0, 2000)}…` : text}`);
}
