/**
 * The code stays easy to change (issue 16): no file in src/ over `MAX_FILE_LINES` lines, and no function,
 * method, constructor, accessor or arrow function whose body is over `MAX_FUNCTION_LINES` lines unless the
 * comment that leads it says why with a `long because: <reason>` marker. Measured with the TypeScript
 * compiler's own parser, so what counts as a function is what the language says, not a regular expression.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

/** This file runs as dist/test/structure.test.js: the project root is two levels up. */
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const MAX_FILE_LINES = 1000;
const MAX_FUNCTION_LINES = 150;
/** The allow-list: a leading comment holding this marker and a reason after it. */
const MARKER = /long because:\s*\S/i;

interface Finding {
  file: string;
  line: number;
  what: string;
  lines: number;
}

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...sourceFiles(p));
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) out.push(p);
  }
  return out.sort();
}

/** Lines a file has (a final newline does not start one more). */
function lineCount(text: string): number {
  if (text === '') return 0;
  const n = text.split('\n').length;
  return text.endsWith('\n') ? n - 1 : n;
}

/** The function-like node's name as a reader would look for it. */
function nameOf(node: ts.Node, sf: ts.SourceFile): string {
  const named = node as ts.Node & { name?: ts.Node };
  if (named.name !== undefined) return named.name.getText(sf);
  if (ts.isConstructorDeclaration(node)) return 'constructor';
  const p = node.parent;
  if (p !== undefined && (ts.isVariableDeclaration(p) || ts.isPropertyDeclaration(p) || ts.isPropertyAssignment(p)) && p.name !== undefined)
    return p.name.getText(sf);
  return ts.isArrowFunction(node) ? '(arrow function)' : '(function expression)';
}

/**
 * Whether a comment leading the function (or the declaration, property or statement that holds it, up to
 * the nearest statement or class member) carries the marker.
 */
function explained(node: ts.Node, text: string): boolean {
  for (let n: ts.Node | undefined = node; n !== undefined; n = n.parent) {
    for (const c of ts.getLeadingCommentRanges(text, n.getFullStart()) ?? []) if (MARKER.test(text.slice(c.pos, c.end))) return true;
    if (ts.isStatement(n) || ts.isClassElement(n) || ts.isSourceFile(n)) break;
  }
  return false;
}

/** Functions of `text` whose bodies are over the limit and not explained. */
export function longFunctions(file: string, text: string, max = MAX_FUNCTION_LINES): Finding[] {
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const out: Finding[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isFunctionLike(node)) {
      const body = (node as ts.FunctionLikeDeclaration).body;
      if (body !== undefined) {
        const first = sf.getLineAndCharacterOfPosition(body.getStart(sf)).line;
        const last = sf.getLineAndCharacterOfPosition(body.getEnd()).line;
        const lines = last - first + 1;
        if (lines > max && !explained(node, text)) out.push({ file, line: first + 1, what: nameOf(node, sf), lines });
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return out;
}

test('structure: the checker finds a long function, an unexplained long arrow and method, and honours the marker', () => {
  const body = (n: number): string => Array.from({ length: n }, (_, i) => `  x += ${i};`).join('\n');
  const src = [
    `export function short(): number {\n  let x = 0;\n${body(10)}\n  return x;\n}`,
    `export function long(): number {\n  let x = 0;\n${body(160)}\n  return x;\n}`,
    `// long because: a table of cases is clearer in one piece\nexport function table(): number {\n  let x = 0;\n${body(160)}\n  return x;\n}`,
    `export const arrow = (): number => {\n  let x = 0;\n${body(160)}\n  return x;\n};`,
    `class C {\n  /** Why not split: long because: one state machine. */\n  ok(): number {\n    let x = 0;\n${body(160)}\n    return x;\n  }\n  bad(): number {\n    let x = 0;\n${body(160)}\n    return x;\n  }\n}`,
    // A marker with no reason after it does not count.
    `// long because:\nexport function empty(): number {\n  let x = 0;\n${body(160)}\n  return x;\n}`,
  ].join('\n\n');
  const found = longFunctions('x.ts', src).map((f) => `${f.what}:${f.lines}`);
  assert.deepEqual(found, ['long:164', 'arrow:164', 'bad:164', 'empty:164']);
  // Exactly at the limit passes; one over fails.
  const at = `function f(): void {\n${body(148)}\n}`;
  assert.deepEqual(longFunctions('y.ts', at), []);
  assert.equal(longFunctions('y.ts', `function f(): void {\n${body(149)}\n}`).length, 1);
});

test(`structure: no file in src/ over ${MAX_FILE_LINES} lines, no function over ${MAX_FUNCTION_LINES} lines unless its leading comment says "long because: …"`, () => {
  const files = sourceFiles(join(ROOT, 'src'));
  assert.ok(files.length > 50, `found the sources (${files.length} files)`);
  const problems: string[] = [];
  for (const f of files) {
    const text = readFileSync(f, 'utf8');
    const rel = relative(ROOT, f);
    const n = lineCount(text);
    if (n > MAX_FILE_LINES) problems.push(`${rel}: ${n} lines (at most ${MAX_FILE_LINES})`);
    for (const x of longFunctions(rel, text))
      problems.push(`${x.file}:${x.line}: ${x.what} is ${x.lines} lines (at most ${MAX_FUNCTION_LINES}, or say why: "long because: …")`);
  }
  assert.deepEqual(problems, [], `over the limits:\n  ${problems.join('\n  ')}`);
});
