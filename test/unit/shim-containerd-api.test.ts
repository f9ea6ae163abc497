// The shim's image facts from containerd's API: the manifest/config walk over
// a fake content store, and the gRPC client against a fake containerd (our
// own protos, served by grpc-js) or no containerd at all (falls back).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DigestMismatchError, ImageError } from '../../src/errors.js';
import { setLogLevel } from '../../src/log.js';
import { sha256Digest } from '../../src/oci/digest.js';
import { hostPlatform } from '../../src/oci/platform.js';
import { MediaType, type Descriptor, type Platform } from '../../src/oci/types.js';
import { AmbiguousImageError, chainId, containerImageFacts, imageFacts, type BlobReader } from '../../src/shim/containerd-api.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** A content store in memory: put() returns the blob's descriptor. */
class FakeStore {
  readonly blobs = new Map<string, Uint8Array>();
  reads: string[] = [];
  put(mediaType: string, content: object | string | Uint8Array, extra: Partial<Descriptor> = {}): Descriptor {
    const data = content instanceof Uint8Array ? content : new TextEncoder().encode(typeof content === 'string' ? content : JSON.stringify(content));
    const digest = sha256Digest(data);
    this.blobs.set(digest, data);
    return { mediaType, digest, size: data.length, ...extra };
  }
  reader: BlobReader = async (digest) => {
    this.reads.push(digest);
    const b = this.blobs.get(digest);
    if (!b) throw new Error(`blob ${digest} not found`);
    return b;
  };
}

function image(store: FakeStore, platform: Platform, layers: Descriptor[] = [], configType: string = MediaType.OciConfig, descPlatform?: Platform): Descriptor {
  // diff IDs stand in for the uncompressed layers: unique per platform here
  const diffIds = layers.map((l, i) => sha256Digest(`${l.digest} ${i} ${platform.os}/${platform.architecture}`));
  const config = store.put(configType, { ...platform, rootfs: { type: 'layers', diff_ids: diffIds } });
  const manifest = { schemaVersion: 2, mediaType: MediaType.OciManifest, config, layers };
  return store.put(MediaType.OciManifest, manifest, descPlatform ? { platform: descPlatform } : {});
}

const tarLayer = (store: FakeStore) => store.put(MediaType.OciLayerGzip, new Uint8Array([0x1f, 0x8b, 1, 2, 3]));

describe('imageFacts (manifest/config walk)', () => {
  it('a plain manifest: the platform comes from its config', async () => {
    const s = new FakeStore();
    const target = image(s, { os: 'wasi', architecture: 'wasm' }, [tarLayer(s)]);
    const f = await imageFacts('w:1', target, s.reader);
    expect(f.platform).toEqual({ os: 'wasi', architecture: 'wasm' });
    expect(f.wasmLayer).toBe(false);
    expect(f.configMediaType).toBe(MediaType.OciConfig);
    expect(f.manifest.digest).toBe(target.digest);
  });

  it('a Docker manifest of a linux image, with its variant', async () => {
    const s = new FakeStore();
    const config = s.put(MediaType.DockerConfig, { os: 'linux', architecture: 'arm', variant: 'v7' });
    const target = s.put(MediaType.DockerManifest, { schemaVersion: 2, mediaType: MediaType.DockerManifest, config, layers: [s.put(MediaType.DockerLayerGzip, 'x')] });
    const f = await imageFacts('b', target, s.reader);
    expect(f.platform).toEqual({ os: 'linux', architecture: 'arm', variant: 'v7' });
  });

  it('an index of Wasm + attestation: the Wasm manifest, attestation skipped', async () => {
    const s = new FakeStore();
    const wasm = image(s, { os: 'wasi', architecture: 'wasm' }, [tarLayer(s)], MediaType.OciConfig, { os: 'wasi', architecture: 'wasm' });
    const att = s.put(MediaType.OciManifest, { bogus: true }, {
      platform: { os: 'unknown', architecture: 'unknown' },
      annotations: { 'vnd.docker.reference.type': 'attestation-manifest' },
    });
    const index = s.put(MediaType.OciIndex, { schemaVersion: 2, manifests: [att, wasm] });
    const f = await imageFacts('w', index, s.reader);
    expect(f.platform).toEqual({ os: 'wasi', architecture: 'wasm' });
    expect(f.manifest.digest).toBe(wasm.digest);
    expect(s.reads).not.toContain(att.digest);
  });

  it('an index of native platforms only: the host one', async () => {
    const s = new FakeStore();
    const host = hostPlatform();
    const other: Platform = host.architecture === 'amd64' ? { os: 'linux', architecture: 'arm64' } : { os: 'linux', architecture: 'amd64' };
    const a = image(s, other, [tarLayer(s)], MediaType.OciConfig, other);
    const b = image(s, host, [tarLayer(s)], MediaType.OciConfig, host);
    const index = s.put(MediaType.DockerManifestList, { schemaVersion: 2, manifests: [a, b] });
    const f = await imageFacts('l', index, s.reader);
    expect(f.platform.architecture).toBe(host.architecture);
    expect(f.manifest.digest).toBe(b.digest);
  });

  it('a nested index (a layout tag pointing at an index) is followed', async () => {
    const s = new FakeStore();
    const wasm = image(s, { os: 'wasip1', architecture: 'wasm' }, [tarLayer(s)], MediaType.OciConfig, { os: 'wasip1', architecture: 'wasm' });
    const inner = s.put(MediaType.OciIndex, { schemaVersion: 2, manifests: [wasm] });
    const outer = s.put(MediaType.OciIndex, { schemaVersion: 2, manifests: [inner] });
    expect((await imageFacts('n', outer, s.reader)).platform.os).toBe('wasip1');
  });

  it('an index mixing Wasm and native manifests is ambiguous (the snapshot may be either)', async () => {
    const s = new FakeStore();
    const host = hostPlatform();
    const l = image(s, host, [tarLayer(s)], MediaType.OciConfig, host);
    const w = image(s, { os: 'wasi', architecture: 'wasm' }, [tarLayer(s)], MediaType.OciConfig, { os: 'wasi', architecture: 'wasm' });
    const index = s.put(MediaType.OciIndex, { schemaVersion: 2, manifests: [l, w] });
    await expect(imageFacts('m', index, s.reader)).rejects.toBeInstanceOf(AmbiguousImageError);
  });

  it("an index is resolved by the container's snapshot parent (the chain ID of a manifest's layers)", async () => {
    const s = new FakeStore();
    const host = hostPlatform();
    const l = image(s, host, [tarLayer(s), s.put(MediaType.OciLayerGzip, 'second')], MediaType.OciConfig, host);
    const w = image(s, { os: 'wasi', architecture: 'wasm' }, [tarLayer(s)], MediaType.OciConfig, { os: 'wasi', architecture: 'wasm' });
    const index = s.put(MediaType.OciIndex, { schemaVersion: 2, manifests: [w, l] });
    const configOf = (m: Descriptor) => {
      const manifest = JSON.parse(new TextDecoder().decode(s.blobs.get(m.digest))) as { config: Descriptor };
      return JSON.parse(new TextDecoder().decode(s.blobs.get(manifest.config.digest))) as { rootfs: { diff_ids: string[] } };
    };
    const linuxChain = chainId(configOf(l).rootfs.diff_ids);
    const wasmChain = chainId(configOf(w).rootfs.diff_ids);
    expect((await imageFacts('m', index, s.reader, { snapshotParent: async () => linuxChain })).platform).toEqual(host);
    expect((await imageFacts('m', index, s.reader, { snapshotParent: async () => wasmChain })).platform.os).toBe('wasi');
    // A parent that matches none (or none known): ambiguous again.
    await expect(imageFacts('m', index, s.reader, { snapshotParent: async () => 'sha256:' + 'f'.repeat(64) })).rejects.toBeInstanceOf(AmbiguousImageError);
    await expect(imageFacts('m', index, s.reader, { snapshotParent: async () => undefined })).rejects.toBeInstanceOf(AmbiguousImageError);
  });

  it('chainId follows containerd (identity.ChainID)', () => {
    const a = 'sha256:' + 'a'.repeat(64);
    const b = 'sha256:' + 'b'.repeat(64);
    expect(chainId([])).toBeUndefined();
    expect(chainId([a])).toBe(a);
    expect(chainId([a, b])).toBe(sha256Digest(`${a} ${b}`));
  });

  it('a CNCF Wasm artifact: config application/vnd.wasm.config.v0+json, layer application/wasm', async () => {
    const s = new FakeStore();
    const wasm = s.put('application/wasm', new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]), { annotations: { 'org.opencontainers.image.title': 'hello.wasm' } });
    const config = s.put(MediaType.WasmConfig, { created: '2024-01-01T00:00:00Z', architecture: 'wasm', os: 'wasip1', layerDigests: [wasm.digest] });
    const target = s.put(MediaType.OciManifest, { schemaVersion: 2, mediaType: MediaType.OciManifest, config, layers: [wasm] });
    const f = await imageFacts('a', target, s.reader);
    expect(f.platform).toEqual({ os: 'wasip1', architecture: 'wasm' });
    expect(f.wasmLayer).toBe(true);
    expect(f.configMediaType).toBe(MediaType.WasmConfig);
    // Only metadata is read: the module itself stays in the content store.
    expect(s.reads).not.toContain(wasm.digest);
  });

  it('runwasi-style layers (standard config, component layer) count as Wasm layers', async () => {
    const s = new FakeStore();
    const layer = s.put('application/vnd.bytecodealliance.wasm.component.layer.v0+wasm', 'component');
    const f = await imageFacts('r', image(s, { os: 'wasip2', architecture: 'wasm' }, [layer]), s.reader);
    expect(f.wasmLayer).toBe(true);
  });

  it('a config without os/architecture takes the platform of its index entry', async () => {
    const s = new FakeStore();
    const config = s.put(MediaType.OciConfig, {});
    const m = s.put(MediaType.OciManifest, { schemaVersion: 2, config, layers: [] }, { platform: { os: 'wasi', architecture: 'wasm' } });
    const index = s.put(MediaType.OciIndex, { schemaVersion: 2, manifests: [m] });
    expect((await imageFacts('c', index, s.reader)).platform).toEqual({ os: 'wasi', architecture: 'wasm' });
  });

  it('a blob that does not match its descriptor is rejected', async () => {
    const s = new FakeStore();
    const target = image(s, { os: 'linux', architecture: 'amd64' });
    const manifest = s.blobs.get(target.digest)!;
    const tampered = JSON.parse(new TextDecoder().decode(manifest)) as { config: Descriptor };
    // Same size, other bytes: the config now claims to be Wasm.
    const forged = new TextEncoder().encode(JSON.stringify({ os: 'wasi', architecture: 'wasm' }).padEnd(tampered.config.size, ' '));
    s.blobs.set(tampered.config.digest, forged.subarray(0, tampered.config.size));
    await expect(imageFacts('t', target, s.reader)).rejects.toBeInstanceOf(DigestMismatchError);
    s.blobs.set(target.digest, manifest.subarray(1));
    await expect(imageFacts('t', target, s.reader)).rejects.toThrow(/size mismatch/);
  });

  it('rejects what is not an image, oversized metadata and bad digests', async () => {
    const s = new FakeStore();
    await expect(imageFacts('x', s.put(MediaType.OciLayerGzip, 'x'), s.reader)).rejects.toThrow(/not an image manifest or index/);
    await expect(imageFacts('x', { mediaType: MediaType.OciManifest, digest: 'sha256:' + '0'.repeat(64), size: 64 * 1024 * 1024 }, s.reader)).rejects.toThrow(
      /more than/,
    );
    await expect(imageFacts('x', { mediaType: MediaType.OciManifest, digest: 'md5:abc', size: 3 }, s.reader)).rejects.toBeInstanceOf(ImageError);
    const noConfig = s.put(MediaType.OciManifest, { schemaVersion: 2, layers: [] });
    await expect(imageFacts('x', noConfig, s.reader)).rejects.toThrow(/no config descriptor/);
  });
});

describe('containerImageFacts (gRPC client)', () => {
  let dir: string;
  beforeAll(() => {
    setLogLevel('silent');
    dir = mkdtempSync(join(tmpdir(), 'tugboat-cdapi-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('falls back (undefined) when the socket does not exist', async () => {
    expect(await containerImageFacts({ address: join(dir, 'no-such.sock'), namespace: 'default' }, 'c1')).toBeUndefined();
    expect(await containerImageFacts({ address: '', namespace: 'default' }, 'c1')).toBeUndefined();
  });

  it('falls back when the path is not a socket, or the peer hangs up or never answers', async () => {
    const file = join(dir, 'plain-file');
    writeFileSync(file, 'not a socket');
    expect(await containerImageFacts({ address: file, namespace: 'default', timeoutMs: 500 }, 'c1')).toBeUndefined();

    const hangup = net.createServer((s) => s.destroy());
    const silent = net.createServer(() => undefined);
    const hangupPath = join(dir, 'hangup.sock');
    const silentPath = join(dir, 'silent.sock');
    await new Promise<void>((r) => hangup.listen(hangupPath, r));
    await new Promise<void>((r) => silent.listen(silentPath, r));
    try {
      expect(await containerImageFacts({ address: hangupPath, namespace: 'default', timeoutMs: 500 }, 'c1')).toBeUndefined();
      expect(await containerImageFacts({ address: silentPath, namespace: 'default', timeoutMs: 300 }, 'c1')).toBeUndefined();
    } finally {
      hangup.close();
      silent.close();
    }
  });

  describe('against a fake containerd', () => {
    const store = new FakeStore();
    let server: grpc.Server;
    let address: string;
    const seen: { method: string; namespace: string; request: unknown }[] = [];
    const containers: Record<string, string> = {};
    const images: Record<string, Descriptor> = {};
    /** snapshot key (= container id here) → parent */
    const snapshotParents: Record<string, string> = {};

    beforeAll(async () => {
      containers['w1'] = 'tugboat.local/wasm:hello';
      images['tugboat.local/wasm:hello'] = image(store, { os: 'wasi', architecture: 'wasm' }, [tarLayer(store)]);
      const host = hostPlatform();
      const mixedLinux = image(store, host, [tarLayer(store)], MediaType.OciConfig, host);
      const mixedWasm = image(store, { os: 'wasi', architecture: 'wasm' }, [tarLayer(store)], MediaType.OciConfig, { os: 'wasi', architecture: 'wasm' });
      images['tugboat.local/mixed:app'] = store.put(MediaType.OciIndex, { schemaVersion: 2, manifests: [mixedWasm, mixedLinux] });
      containers['mixed-l'] = 'tugboat.local/mixed:app';
      containers['mixed-nosnap'] = 'tugboat.local/mixed:app';
      const cfg = (m: Descriptor) => {
        const manifest = JSON.parse(new TextDecoder().decode(store.blobs.get(m.digest))) as { config: Descriptor };
        return JSON.parse(new TextDecoder().decode(store.blobs.get(manifest.config.digest))) as { rootfs: { diff_ids: string[] } };
      };
      snapshotParents['mixed-l'] = chainId(cfg(mixedLinux).rootfs.diff_ids)!;
      containers['bare'] = '';
      containers['gone'] = 'tugboat.local/deleted:latest';
      const def = protoLoader.loadSync(['containers.proto', 'images.proto', 'content.proto', 'snapshots.proto'], {
        includeDirs: [join(REPO, 'proto', 'containerd-api')],
        longs: Number,
        defaults: true,
      });
      const pkg = grpc.loadPackageDefinition(def) as unknown as {
        containerd: { services: Record<string, { v1: Record<string, { service: grpc.ServiceDefinition }> }> };
      };
      const svc = pkg.containerd.services;
      const ns = (call: { metadata: grpc.Metadata }) => String(call.metadata.get('containerd-namespace')[0] ?? '');
      const notFound = (what: string) => Object.assign(new Error(`${what}: not found`), { code: grpc.status.NOT_FOUND });
      server = new grpc.Server();
      server.addService(svc['containers']!.v1['Containers']!.service, {
        Get: (call: grpc.ServerUnaryCall<{ id: string }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
          seen.push({ method: 'Containers/Get', namespace: ns(call), request: call.request });
          const img = ns(call) === 'k8s.io' ? containers[call.request.id] : undefined;
          if (img === undefined) return cb(notFound(`container ${call.request.id}`));
          cb(null, { container: { id: call.request.id, image: img, snapshotter: 'overlayfs', snapshotKey: call.request.id } });
        },
      });
      server.addService(svc['images']!.v1['Images']!.service, {
        Get: (call: grpc.ServerUnaryCall<{ name: string }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
          seen.push({ method: 'Images/Get', namespace: ns(call), request: call.request });
          const t = images[call.request.name];
          if (!t) return cb(notFound(`image ${call.request.name}`));
          cb(null, { image: { name: call.request.name, target: { mediaType: t.mediaType, digest: t.digest, size: t.size } } });
        },
      });
      server.addService(svc['snapshots']!.v1['Snapshots']!.service, {
        Stat: (call: grpc.ServerUnaryCall<{ snapshotter: string; key: string }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
          seen.push({ method: 'Snapshots/Stat', namespace: ns(call), request: call.request });
          const parent = call.request.snapshotter === 'overlayfs' ? snapshotParents[call.request.key] : undefined;
          if (parent === undefined) return cb(notFound(`snapshot ${call.request.key}`));
          cb(null, { info: { name: call.request.key, parent, kind: 'ACTIVE' } });
        },
      });
      server.addService(svc['content']!.v1['Content']!.service, {
        Read: (call: grpc.ServerWritableStream<{ digest: string; offset: number; size: number }, unknown>) => {
          seen.push({ method: 'Content/Read', namespace: ns(call), request: call.request });
          const b = store.blobs.get(call.request.digest);
          if (!b) {
            call.emit('error', notFound(`content digest ${call.request.digest}`));
            return;
          }
          // In two chunks, as a big blob would come.
          const half = Math.floor(b.length / 2);
          call.write({ offset: 0, data: Buffer.from(b.subarray(0, half)) });
          call.write({ offset: half, data: Buffer.from(b.subarray(half)) });
          call.end();
        },
      });
      address = join(dir, 'containerd.sock');
      await new Promise<void>((res, rej) => server.bindAsync(`unix://${address}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? rej(err) : res())));
    });
    afterAll(() => server?.forceShutdown());

    it('walks container → image → manifest → config, in the namespace given', async () => {
      seen.length = 0;
      const f = await containerImageFacts({ address, namespace: 'k8s.io' }, 'w1');
      expect(f?.name).toBe('tugboat.local/wasm:hello');
      expect(f?.platform).toEqual({ os: 'wasi', architecture: 'wasm' });
      expect(f?.wasmLayer).toBe(false);
      expect(seen.map((x) => x.method)).toEqual(['Containers/Get', 'Images/Get', 'Content/Read', 'Content/Read']);
      expect(seen.every((x) => x.namespace === 'k8s.io')).toBe(true);
      expect(seen[0]?.request).toMatchObject({ id: 'w1' });
    });

    it("an index: the manifest the container's snapshot was made from; none when containerd cannot tell", async () => {
      seen.length = 0;
      const f = await containerImageFacts({ address, namespace: 'k8s.io' }, 'mixed-l');
      expect(f?.platform).toEqual(hostPlatform());
      expect(seen.find((x) => x.method === 'Snapshots/Stat')?.request).toEqual({ snapshotter: 'overlayfs', key: 'mixed-l' });
      expect(await containerImageFacts({ address, namespace: 'k8s.io' }, 'mixed-nosnap')).toBeUndefined();
      // A plain manifest needs no snapshot lookup.
      seen.length = 0;
      await containerImageFacts({ address, namespace: 'k8s.io' }, 'w1');
      expect(seen.map((x) => x.method)).not.toContain('Snapshots/Stat');
    });

    it('no facts for a container without an image, a missing image, or another namespace', async () => {
      expect(await containerImageFacts({ address, namespace: 'k8s.io' }, 'bare')).toBeUndefined();
      expect(await containerImageFacts({ address, namespace: 'k8s.io' }, 'gone')).toBeUndefined();
      expect(await containerImageFacts({ address, namespace: 'default' }, 'w1')).toBeUndefined();
    });
  });
});
