/**
 * Build step (`npm run build` runs `node dist/src/cni/bundle.js` after tsc): writes dist/src/cni/main.cjs,
 * the plugin's entry (main.js) and every module it imports in one CommonJS file, which is what the
 * launcher `seine install-cni` writes starts. The runtime waits for the plugin on every pod start, and
 * Node's ESM loader costs the plugin measurably more than its own code does: resolving and linking each
 * module, and the package.json a `.js` file's module type is looked up in. One `.cjs` file is read,
 * compiled and run at once (measured in the README's CNI section).
 *
 * Each module is tsc's ESM output turned into CommonJS by the TypeScript compiler itself
 * (`transpileModule`), wrapped in a function and required by its path under dist/src; `node:` built-ins go
 * to Node's own require. Anything else — a package, a dynamic import(), a top-level await — is refused:
 * the plugin's start-up path must hold nothing heavy, and the one file must behave as the modules do.
 * test/cni/plugin.test.ts checks the file's modules against the import graph.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

// The TypeScript compiler is a build-time tool: loaded only when the bundle is written, so the CLI's
// install-cni may import this file for the bundle's path without it.
type Ts = typeof import('typescript');

const DIST_SRC = fileURLToPath(new URL('..', import.meta.url));
/** The plugin's ESM entry, and the one-file form of it the launcher runs. */
const PLUGIN_ESM_ENTRY = join(DIST_SRC, 'cni', 'main.js');
export const PLUGIN_BUNDLE = join(DIST_SRC, 'cni', 'main.cjs');

/** Where each module starts in the bundle: `// module <path under dist/>` (the test reads these). */
export const MODULE_MARK = '// module ';

interface Module {
  id: string;
  code: string;
}

/** `entry` and the modules it imports (the entry last: depth first, post-order), each turned into CommonJS with its relative requires made ids. */
function collect(ts: Ts, entry: string): Module[] {
  const out: Module[] = [];
  const seen = new Set<string>();
  const visit = (file: string): void => {
    if (seen.has(file)) return;
    seen.add(file);
    const id = relative(join(DIST_SRC, '..'), file);
    const text = readFileSync(file, 'utf8').replace(/^#!.*\n/, '');
    const info = ts.preProcessFile(text, true, true);
    for (const f of info.importedFiles) {
      const spec = f.fileName;
      if (spec.startsWith('.')) visit(join(dirname(file), spec));
      else if (!spec.startsWith('node:')) throw new Error(`${id} imports ${spec}: the plugin's start-up path takes Node's built-ins only`);
    }
    if (/\bimport\s*\(/.test(text)) throw new Error(`${id} imports dynamically: the bundle cannot follow it`);
    const cjs = ts.transpileModule(text, {
      fileName: file,
      reportDiagnostics: true,
      compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, sourceMap: false, removeComments: true },
    });
    const errors = (cjs.diagnostics ?? []).filter((d) => d.category === ts.DiagnosticCategory.Error);
    if (errors.length > 0) throw new Error(`${id}: ${ts.flattenDiagnosticMessageText(errors[0]!.messageText, '\n')}`);
    // A top-level await stays an await in CommonJS, where it is a syntax error: refused here, not at a pod's start.
    try {
      new Function('exports', 'require', cjs.outputText);
    } catch (e) {
      throw new Error(`${id} does not run as CommonJS (a top-level await?): ${(e as Error).message}`);
    }
    const code = cjs.outputText
      .replace(/^\/\/# sourceMappingURL=.*$/m, '')
      .replace(/\brequire\("(\.\.?\/[^"]+)"\)/g, (_, spec: string) => `require(${JSON.stringify(relative(join(DIST_SRC, '..'), join(dirname(file), spec)))})`);
    out.push({ id, code });
  };
  visit(entry);
  return out;
}

/** The bundle's text: the modules as functions, a require that runs each once, then the entry. */
export async function bundleText(entry = PLUGIN_ESM_ENTRY): Promise<string> {
  const ts = (await import('typescript')).default;
  const mods = collect(ts, entry);
  const parts = [`// Written by dist/src/cni/bundle.js from ${mods.map((m) => m.id).join(', ')}: do not edit.`, "'use strict';", 'const defs = {};'];
  for (const m of mods) parts.push(`${MODULE_MARK}${m.id}`, `defs[${JSON.stringify(m.id)}] = (exports, require) => {`, m.code.trimEnd(), '};');
  parts.push(
    'const done = {};',
    'function load(id) {',
    '  const def = defs[id];',
    '  if (def === undefined) return require(id);',
    '  let e = done[id];',
    '  if (e === undefined) def((e = done[id] = {}), load);',
    '  return e;',
    '}',
    `load(${JSON.stringify(mods.at(-1)!.id)});`,
  );
  return `${parts.join('\n')}\n`;
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  writeFileSync(PLUGIN_BUNDLE, await bundleText(), { mode: 0o644 });
  process.stdout.write(`wrote ${relative(process.cwd(), PLUGIN_BUNDLE)}\n`);
}
