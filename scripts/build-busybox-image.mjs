// Builds a small Linux image from Debian's busybox-static: /bin/busybox with
// one symlink per applet, /etc/passwd and /etc/group, /tmp. Written to
// <out>/busybox (tag latest) and, as the Linux half of a multi-platform image,
// <out>/mixed (tag app). Uses the same image builder as `tugboat image build`.
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, symlinkSync, writeFileSync, copyFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { buildImage } from '../dist/oci/image-build.js';
import { hostPlatform } from '../dist/oci/platform.js';

const out = process.argv[2];
const staging = join(out, 'busybox-rootfs');
rmSync(staging, { recursive: true, force: true });
mkdirSync(join(staging, 'bin'), { recursive: true });
mkdirSync(join(staging, 'etc'));
mkdirSync(join(staging, 'tmp'));
chmodSync(join(staging, 'tmp'), 0o1777);
copyFileSync('/bin/busybox', join(staging, 'bin', 'busybox'));
chmodSync(join(staging, 'bin', 'busybox'), 0o755);
const applets = execFileSync('/bin/busybox', ['--list'], { encoding: 'utf8' }).split('\n').filter(Boolean);
for (const a of applets) if (a !== 'busybox') symlinkSync('busybox', join(staging, 'bin', a));
writeFileSync(join(staging, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n');
writeFileSync(join(staging, 'etc', 'group'), 'root:x:0:\nnogroup:x:65534:\n');

const files = ['bin', 'etc', 'tmp'].map((d) => ({ hostPath: join(staging, d), containerPath: `/${d}` }));
const config = { Env: ['PATH=/bin'], Cmd: ['sh'], WorkingDir: '/' };
for (const [dir, tag] of [['busybox', 'latest'], ['mixed', 'app']]) {
  await buildImage({ files, platform: hostPlatform(), config, format: 'oci', output: join(out, dir), tag });
}
await buildImage({ files, platform: hostPlatform(), config, format: 'docker-archive', output: join(out, 'busybox.docker.tar'), tag: 'tugboat.local/busybox:latest' });
rmSync(staging, { recursive: true, force: true });
