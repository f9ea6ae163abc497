// Bundles the WASI host into one ESM file: it is what every Wasm container
// starts, so it must load with a single file read and no module resolution.
import { build } from 'esbuild';

await build({
  entryPoints: ['src/wasi-host/main.ts'],
  outfile: 'dist/host/host.mjs',
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node24',
  minify: true,
  sourcemap: false,
  legalComments: 'none',
  logLevel: 'warning',
});
