// Bundles the two programs that sit on a container's start path into single
// ESM files: module resolution across ~80 files costs more than the work
// itself on a cold start.
//   dist/host/host.mjs  the WASI host, started as every Wasm container's init
//   dist/host/pod-host.mjs  the pod host, one per shim group at `pod` isolation
//   dist/tugboat.mjs    the tugboat CLI (bin/tugboat runs it)
import { copyFileSync, readFileSync, rmSync } from 'node:fs';
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
// The pod host: one per shim group at `pod` isolation, serving every Wasm container of the group.
await build({ ...common, entryPoints: ['src/wasi-host/pod-host.ts'], outfile: 'dist/host/pod-host.mjs', minify: true });
// Wasm components: their worker, with preview2-shim bundled in, and the shim's
// own IO worker, which it loads from beside itself (new URL(…, import.meta.url)).
// preview2-shim starts its IO worker (a thread running Node's bootstrap, tens
// of ms and ~10 MiB) as soon as worker-io.js is imported. Made lazy here: the
// worker starts on the first call that needs it (files, sockets, HTTP), so a
// component that only computes and prints never starts it.
const shimLazyIoWorker = {
  name: 'preview2-shim-lazy-io-worker',
  setup(b) {
    b.onLoad({ filter: /preview2-shim[\\/]dist[\\/]io[\\/]worker-io\.js$/ }, (args) => {
      const from = 'export let ioCall = createSyncFn(';
      const end = '    handler(payload);\n});\n';
      const src = readFileSync(args.path, 'utf8');
      if (!src.includes(from) || !src.includes(end)) throw new Error(`${args.path}: the code patched by ${shimLazyIoWorker.name} changed`);
      const patched = src
        .replace(from, 'let __tbIoCall;\nconst __tbMakeIoCall = () => createSyncFn(')
        .replace(end, `${end}export let ioCall = (...args) => (__tbIoCall ??= __tbMakeIoCall())(...args);\n`);
      return { contents: patched, loader: 'js' };
    });
  },
};
const banner = { js: "import { createRequire as __tbCreateRequire } from 'node:module'; const require = __tbCreateRequire(import.meta.url);" };
// Components' files are Tugboat's own wasi:filesystem (src/wasi-host/p2/):
// preview2-shim's filesystem joins guest paths onto host paths and calls
// Node's path-based fs APIs, so it must never be in a bundle (it arrives
// through the shim's index or its WASIShim; see src/wasi-host/p2/shim.ts).
function refuseShimFilesystem(outfile, result) {
  const forbidden = Object.keys(result.metafile.inputs).filter((f) => /preview2-shim[\\/]dist[\\/](nodejs[\\/](filesystem|index)|common[\\/]instantiation)\.js$/.test(f));
  if (forbidden.length) throw new Error(`${outfile} must not contain preview2-shim's filesystem, but bundles ${forbidden.join(', ')}`);
}
for (const [entry, outfile] of [
  // A `container`-level command component's worker.
  ['src/wasi-host/component-worker.ts', 'dist/host/component.mjs'],
  // An HTTP component's handler threads (src/wasi-host/http/), with the shim
  // for the interfaces the host does not serve itself (cli, sockets…).
  ['src/wasi-host/http/worker.ts', 'dist/host/http-worker.mjs'],
  // A component guest's thread in a shared host (pod and process isolation).
  ['src/wasi-host/hosted-component-worker.ts', 'dist/host/hosted-component.mjs'],
]) {
  refuseShimFilesystem(outfile, await build({ ...common, entryPoints: [entry], outfile, minify: true, plugins: [shimLazyIoWorker], metafile: true, banner }));
}
copyFileSync('node_modules/@bytecodealliance/preview2-shim/dist/io/worker-thread.bundle.js', 'dist/host/worker-thread.bundle.js');
// Chunk names carry content hashes: drop the last build's.
rmSync('dist/chunks', { recursive: true, force: true });
await build({
  ...common,
  // Split at dynamic imports: code only some commands need (the registry
  // client with node:https and TLS) becomes chunks loaded when they run.
  entryPoints: { tugboat: 'src/cli/main.ts' },
  outdir: 'dist',
  splitting: true,
  chunkNames: 'chunks/[name]-[hash]',
  outExtension: { '.js': '.mjs' },
  sourcemap: true,
  // jco (a cache miss of a Wasm component only) and koffi (a native addon:
  // the store's flock) are loaded from node_modules.
  external: ['@bytecodealliance/jco', 'koffi'],
  // Some CommonJS dependencies call require(); give the ESM bundle one.
  banner,
});
await build({
  ...common,
  entryPoints: ['src/shim/main.ts'],
  outfile: 'dist/shim.mjs',
  sourcemap: true,
  // koffi is a native addon, jco (Wasm component transpiling, cache misses
  // only) is big, grpc-js (containerd's API, loaded on the first Create) reads
  // its .proto files at run time: all are loaded from node_modules at run time.
  external: ['koffi', '@bytecodealliance/jco', '@grpc/grpc-js', '@grpc/proto-loader'],
  banner,
});
