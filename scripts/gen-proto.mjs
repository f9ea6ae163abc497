#!/usr/bin/env node
// Regenerates src/shim/proto/gen/*_pb.ts from proto/*.proto with buf and
// protoc-gen-es (both npm devDependencies; buf's binary ships inside its
// platform npm package, so this works offline). The output is committed, so
// `make build` needs neither tool.
//
//   node scripts/gen-proto.mjs           regenerate in place
//   node scripts/gen-proto.mjs --check   exit 1 if the committed files are stale
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const genDir = join(root, 'src/shim/proto/gen');
const check = process.argv.includes('--check');
const tmp = mkdtempSync(join(tmpdir(), 'tugboat-gen-proto-'));
const out = check ? join(tmp, 'out') : genDir;

try {
  // Run the plugin with the node running this script: the package's
  // `#!/usr/bin/env node` may find another node, or none, on PATH.
  const plugin = join(root, 'node_modules/@bufbuild/protoc-gen-es/bin/protoc-gen-es');
  const wrapper = join(tmp, 'protoc-gen-es');
  writeFileSync(wrapper, `#!/bin/sh\nexec '${process.execPath}' '${plugin}' "$@"\n`);
  chmodSync(wrapper, 0o755);

  const template = {
    version: 'v2',
    clean: true, // drop output of .proto files that no longer exist
    plugins: [{ local: wrapper, out, opt: ['target=ts', 'import_extension=js'] }],
  };
  const buf = join(root, 'node_modules/@bufbuild/buf/bin/buf');
  // proto/containerd-api/ (containerd's gRPC API) is loaded at run time by
  // @grpc/proto-loader, not generated.
  const r = spawnSync(process.execPath, [buf, 'generate', 'proto', '--exclude-path', 'proto/containerd-api', '--template', JSON.stringify(template)], {
    cwd: root,
    stdio: 'inherit',
  });
  if (r.status !== 0) {
    console.error(`gen-proto: buf generate failed (${r.error?.message ?? `exit ${r.status}`})`);
    process.exitCode = 1;
  } else if (check) {
    const names = (d) => readdirSync(d).filter((f) => f.endsWith('_pb.ts')).sort();
    const want = names(out);
    const have = names(genDir);
    const differ = (f) => !have.includes(f) || readFileSync(join(out, f), 'utf8') !== readFileSync(join(genDir, f), 'utf8');
    const stale = [...want.filter(differ), ...have.filter((f) => !want.includes(f))];
    if (stale.length) {
      console.error(`gen-proto: stale generated code (${stale.join(', ')}); run node scripts/gen-proto.mjs`);
      process.exitCode = 1;
    }
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
