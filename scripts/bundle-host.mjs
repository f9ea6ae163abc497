// Bundles the two programs that sit on a container's start path into single
// ESM files: module resolution across ~80 files costs more than the work
// itself on a cold start.
//   dist/host/host.mjs  the WASI host, started as every Wasm container's init
//   dist/host/pod-host.mjs  the pod host, one per shim group at `pod` isolation
//   dist/tugboat.mjs    the tugboat CLI (bin/tugboat runs it)
import { copyFileSync, readFileSync, rmSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { relative } from 'node:path';
import { build } from 'esbuild';

// Node's builtins reach the bundles through process.getBuiltinModule(), not
// `import`: an ESM import of a builtin builds a namespace of all its exports,
// and reading them loads what Node keeps lazy. `import … from 'node:fs'`
// alone loads fs/promises, streams and readline; 'node:util' loads
// worker_threads: ~10 ms of every start for modules nobody asked for. Each
// importing module gets its own small module that reads just the exports it
// uses, when it is itself initialized (each export is a pure expression, so
// esbuild drops the unused ones: fs.promises is read only by the modules that
// import it, and only when they load); a require() from a
// CommonJS dependency gets the builtin itself, or for node:child_process
// (~5 ms with the net and dgram it loads; commander requires it at its top
// and spawns only for executable subcommands, which Tugboat has none of) an
// object that loads it on the first property read.
const lazyForRequire = new Set(['node:child_process']);
// Exports never read, even by a module that takes the whole namespace
// (`import * as http`, as preview2-shim's HTTP code does for two functions,
// makes esbuild keep every export): node:http's WebSocket, CloseEvent and
// MessageEvent are getters that load Node's whole undici (measured: 62 ms,
// paid by every HTTP handler thread and every component guest's thread
// before it served anything). A module that imports one of them by name
// fails the build (no such export); nothing bundled reads them.
const neverRead = new Map([['node:http', new Set(['WebSocket', 'CloseEvent', 'MessageEvent'])]]);
const builtinNames = new Set(builtinModules.filter((m) => !m.startsWith('_')).flatMap((m) => [m, `node:${m}`]));
const builtinsWithoutFacade = {
  name: 'builtins-without-esm-facade',
  setup(b) {
    b.onResolve({ filter: /^[a-z_:/]+$/ }, (args) => {
      if (!builtinNames.has(args.path)) return undefined;
      const path = `node:${args.path.replace(/^node:/, '')}`;
      if (args.kind === 'require-call') return { path, namespace: 'node-builtin-cjs' };
      return { path, namespace: 'node-builtin', pluginData: { path }, suffix: `?${relative(process.cwd(), args.importer)}` };
    });
    b.onLoad({ filter: /.*/, namespace: 'node-builtin-cjs' }, (args) => {
      const get = `process.getBuiltinModule(${JSON.stringify(args.path)})`;
      const contents = lazyForRequire.has(args.path) ? `module.exports = new Proxy({}, { get: (_, key) => ${get}[key] });` : `module.exports = ${get};`;
      return { contents, loader: 'js' };
    });
    b.onLoad({ filter: /.*/, namespace: 'node-builtin' }, async (args) => {
      const skip = neverRead.get(args.pluginData.path);
      const names = Object.keys(await import(args.pluginData.path)).filter((n) => n !== 'default' && /^[A-Za-z_$][\w$]*$/.test(n) && !skip?.has(n));
      const lines = [`const __builtin = process.getBuiltinModule(${JSON.stringify(args.pluginData.path)});`, 'const __read = (name) => __builtin[name];', 'export default __builtin;'];
      for (const n of names) lines.push(`export const ${n} = /* @__PURE__ */ __read(${JSON.stringify(n)});`);
      return { contents: lines.join('\n'), loader: 'js' };
    });
  },
};

const common = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node24',
  legalComments: 'none',
  logLevel: 'warning',
  plugins: [builtinsWithoutFacade],
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
  refuseShimFilesystem(outfile, await build({ ...common, entryPoints: [entry], outfile, minify: true, plugins: [...common.plugins, shimLazyIoWorker], metafile: true, banner }));
}
copyFileSync('node_modules/@bytecodealliance/preview2-shim/dist/io/worker-thread.bundle.js', 'dist/host/worker-thread.bundle.js');
// One file, not chunks: every module file costs the ESM loader a resolve (a
// realpath of each path component), a read, a compile-cache lookup and a link;
// split at each dynamic import, `tugboat image ls` loaded 22 files and spent
// more on that than on the modules. In one file esbuild wraps every module
// only reached through a dynamic import in a lazy initializer, so its code
// (and the builtins it imports, see builtinsWithoutFacade) runs only when a
// command imports it: the registry client, node:https and TLS for `pull`.
rmSync('dist/chunks', { recursive: true, force: true });
await build({
  ...common,
  entryPoints: ['src/cli/main.ts'],
  outfile: 'dist/tugboat.mjs',
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
