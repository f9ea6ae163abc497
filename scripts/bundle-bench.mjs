// Bundles one benchmark (bench/NAME.ts, which may import the test harness and
// src/) into build/bench/NAME.mjs, runnable on the pinned Node.
import { build } from 'esbuild';

const name = process.argv[2];
await build({
  entryPoints: [`bench/${name}.ts`],
  outfile: `build/bench/${name}.mjs`,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node24',
  logLevel: 'warning',
  // jco and friends load their own files relative to themselves.
  external: ['@bytecodealliance/*'],
  // CommonJS dependencies call require(); give the bundle one.
  banner: { js: "import { createRequire as __tbCreateRequire } from 'node:module'; const require = __tbCreateRequire(import.meta.url);" },
});
