// bench/pull: a ~100 MB (compressed), 4-layer linux image from a private registry on
// loopback (plain HTTP), pulled and unpacked by
//   ctr image pull --plain-http   (containerd 1.6, overlayfs snapshotter; baseline)
//   tugboat pull                  (store + unpacked rootfs)
// Each run starts from nothing (ctr: image removed with --sync GC; tugboat:
// a fresh --root). Interleaved, medians, ratio to ctr.
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { startContainerd } from '../test/integration/daemons/containerd.js';
import { run } from '../test/integration/daemons/process.js';
import { startRegistry } from '../test/integration/daemons/registry.js';
import { packTar } from '../src/oci/build-layer.js';
import { sha256Digest } from '../src/oci/digest.js';
import { MediaType } from '../src/oci/types.js';

const REPO = join(import.meta.dirname, '..', '..');
const TUGBOAT = join(REPO, 'bin', 'tugboat');
const runs = Number(process.env.BENCH_RUNS ?? 5);
const LAYERS = 4;
const RANDOM_BYTES = 24 * 1024 * 1024;
const TEXT_BYTES = 8 * 1024 * 1024;
const LAYER_BYTES = RANDOM_BYTES + TEXT_BYTES;
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/**
 * An OCI layout with one image of LAYERS gzip layers. Each layer holds a few
 * files: random bytes (incompressible) and repeated text, so gzip does real
 * work; the download is about LAYERS × RANDOM_BYTES.
 */
async function makeImage(dir: string): Promise<{ bytes: number }> {
  const blobs = join(dir, 'blobs', 'sha256');
  mkdirSync(blobs, { recursive: true });
  const put = (data: Buffer, mediaType: string) => {
    const digest = sha256Digest(data);
    writeFileSync(join(blobs, digest.slice(7)), data);
    return { mediaType, digest, size: data.length };
  };
  const layers = [];
  const diffIds = [];
  let bytes = 0;
  for (let i = 0; i < LAYERS; i++) {
    const text = Buffer.from(`layer ${i} line of fairly ordinary text that compresses well\n`.repeat(Math.ceil(TEXT_BYTES / 60))).subarray(0, TEXT_BYTES);
    const members = [
      { name: `layer${i}`, type: 'directory' as const, mode: 0o755 },
      ...Array.from({ length: 8 }, (_, j) => ({ name: `layer${i}/random-${j}.bin`, type: 'file' as const, mode: 0o644, data: randomBytes(RANDOM_BYTES / 8) })),
      { name: `layer${i}/text.txt`, type: 'file' as const, mode: 0o644, data: text },
    ];
    const tar = await packTar(members);
    diffIds.push(sha256Digest(tar));
    const gz = gzipSync(tar, { level: 1 });
    bytes += gz.length;
    layers.push(put(gz, MediaType.OciLayerGzip));
  }
  const config = put(
    Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Cmd: ['/bin/sh'] }, rootfs: { type: 'layers', diff_ids: diffIds } })),
    MediaType.OciConfig,
  );
  const manifest = put(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, config, layers })), MediaType.OciManifest);
  writeFileSync(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  writeFileSync(join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ ...manifest, annotations: { 'org.opencontainers.image.ref.name': 'bench' } }] }));
  return { bytes };
}

const work = mkdtempSync('/tmp/tugboat-bench-pull-');
const reg = await startRegistry();
const c = await startContainerd();
try {
  const { bytes } = await makeImage(join(work, 'layout'));
  const ref = `${reg.host}/bench/big:1`;
  const push = await run(TUGBOAT, ['--root', join(work, 'push-root'), 'push', `oci:${join(work, 'layout')}:bench`, ref]);
  if (push.code !== 0) throw new Error(`push: ${push.stderr}`);

  let n = 0;
  const cases: Record<string, () => Promise<void>> = {
    'ctr image pull --plain-http (baseline)': async () => {
      const r = await c.ctr(['images', 'pull', '--plain-http', ref]);
      if (r.code !== 0) throw new Error(`ctr pull: ${r.stderr}`);
    },
    'tugboat pull': async () => {
      const root = join(work, `root-${n++}`);
      const r = await run(TUGBOAT, ['--root', root, 'pull', ref]);
      if (r.code !== 0) throw new Error(`tugboat pull: ${r.stderr}`);
    },
  };
  const reset = async () => {
    await c.ctr(['images', 'rm', '--sync', ref]);
    for (let i = 0; i < n; i++) rmSync(join(work, `root-${i}`), { recursive: true, force: true });
  };
  const samples: Record<string, number[]> = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
  for (const f of Object.values(cases)) {
    await f();
    await reset();
  }
  for (let i = 0; i < runs; i++) {
    for (const [name, f] of Object.entries(cases)) {
      const t0 = process.hrtime.bigint();
      await f();
      samples[name]!.push(Number(process.hrtime.bigint() - t0) / 1e6);
      await reset();
    }
  }
  const base = median(Object.values(samples)[0]!);
  console.log(`\npull of a ${LAYERS}-layer image (${(bytes / 1024 / 1024).toFixed(0)} MiB compressed, ${(LAYERS * LAYER_BYTES) / 1024 / 1024} MiB unpacked) from a loopback registry, median of ${runs} interleaved runs`);
  for (const [name, xs] of Object.entries(samples)) {
    const m = median(xs);
    console.log(`  ${name.padEnd(48)} ${m.toFixed(0).padStart(8)} ms   ${(m / base).toFixed(2)}x`);
  }
} finally {
  await c.stop();
  await reg.stop();
  rmSync(work, { recursive: true, force: true });
}
