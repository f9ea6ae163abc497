// Builds examples/components/out/http-hello.wasm from http/app.js with
// componentize-js (offline: the StarlingMonkey engine ships in the package).
//
// componentize-js 0.22's engine speaks WASI 0.2.10, but jco ships full WIT
// only for 0.2.12 (plus a partial 0.2.10 set: io, clocks, sockets). So the
// WIT is assembled here: jco's 0.2.10 packages where it has them (with the
// `imports` worlds they lack, taken from 0.2.12), the other 0.2.12 packages
// renamed to 0.2.10.
import { mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, 'out');
const target = join(out, 'http-hello.wasm');
const source = join(here, 'http', 'app.js');
try {
  if (statSync(target).mtimeMs > statSync(source).mtimeMs && statSync(target).mtimeMs > statSync(fileURLToPath(import.meta.url)).mtimeMs) process.exit(0);
} catch {
  // not built yet
}

const require = createRequire(import.meta.url);
const { preview1AdapterCommandPath } = await import('@bytecodealliance/jco');
const builtin = fileURLToPath(new URL('./wit/builtin/', preview1AdapterCommandPath()));
const wit = join(out, '.http-wit');
rmSync(wit, { recursive: true, force: true });
for (const pkg of ['cli', 'clocks', 'filesystem', 'http', 'io', 'random', 'sockets']) {
  const old = join(builtin, '0.2.10', `wasi-${pkg}`, 'package.wit');
  const recent = readFileSync(join(builtin, '0.2.12', `wasi-${pkg}`, 'package.wit'), 'utf8');
  let text;
  if (existsSync(old)) {
    text = readFileSync(old, 'utf8');
    if (!/^world imports/m.test(text)) {
      const world = recent.match(/^world imports \{[\s\S]*?^\}/m)?.[0] ?? '';
      text += '\n' + world.replace(/^\s*@unstable\(feature = [\w-]+\)\n\s*import timezone;\n/m, '') + '\n';
    }
  } else {
    text = recent.replaceAll('@0.2.12', '@0.2.10');
  }
  mkdirSync(join(wit, 'deps', pkg), { recursive: true });
  writeFileSync(join(wit, 'deps', pkg, 'package.wit'), text);
}
writeFileSync(join(wit, 'world.wit'), 'package tugboat:example;\n\nworld hello-http {\n  include wasi:http/proxy@0.2.10;\n}\n');

// componentize-js reads the WIT through preview2-shim, whose default preopens are empty.
const shimFs = await import(require.resolve('@bytecodealliance/preview2-shim/filesystem'));
shimFs._setPreopens({ '/': '/' });
const { componentize } = await import('@bytecodealliance/componentize-js');
const { component } = await componentize({ sourcePath: source, witPath: wit, worldName: 'hello-http' });
mkdirSync(out, { recursive: true });
writeFileSync(`${target}.tmp`, component);
renameSync(`${target}.tmp`, target);
rmSync(wit, { recursive: true, force: true });
