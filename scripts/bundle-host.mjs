// Bundles the two programs that sit on a container's start path into single
// ESM files: module resolution across ~80 files costs more than the work
// itself on a cold start.
//   dist/host/host.mjs  the WASI host, started as every Wasm container's init
//   dist/tugboat.mjs    the tugboat CLI (bin/tugboat runs it)
import { build } from 'esbuild';

const common = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node24',
  legalComments: 'none',
  logLevel: 'warning',
};

await build({ ...common, entryPoints: ['src/wasi-host/main.ts'], outfile: 'dist/host/host.mjs', minify: true });
await build({
  ...common,
  entryPoints: ['src/cli/main.ts'],
  outfile: 'dist/tugboat.mjs',
  sourcemap: true,
  // Some CommonJS dependencies call require(); give the ESM bundle one.
  banner: { js: "import { createRequire as __tbCreateRequire } from 'node:module'; const require = __tbCreateRequire(import.meta.url);" },
});
