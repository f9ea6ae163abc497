// Mounts CreateTaskRequest.rootfs onto <bundle>/rootfs with mount(8), in
// order, options as containerd gives them (overlay lowerdir=…,upperdir=…,…),
// and unmounts it again on Delete / `shim delete`.
import { mkdirSync, readFileSync } from 'node:fs';
import { RuntimeError } from '../errors.js';
import { log } from '../log.js';

// node:child_process is loaded by the first mount or umount: `shim delete`
// usually finds nothing mounted and spawns nothing.
function run(cmd: string, args: string[]): Promise<{ stdout: string; stderr: string }> {
  return process.getBuiltinModule('node:util').promisify(process.getBuiltinModule('node:child_process').execFile)(cmd, args);
}

export interface RootfsMount {
  type: string;
  source: string;
  options: string[];
}

/** mount(8) argv for one containerd Mount. Bind mounts are spelled as options, as mount(8) expects. */
export function mountArgv(m: RootfsMount, target: string): string[] {
  const argv: string[] = [];
  const isBind = m.type === 'bind' || m.options.includes('bind') || m.options.includes('rbind');
  if (!isBind && m.type) argv.push('-t', m.type);
  const opts = isBind && !m.options.includes('bind') && !m.options.includes('rbind') ? ['rbind', ...m.options] : m.options;
  if (opts.length) argv.push('-o', opts.join(','));
  argv.push(m.source || 'none', target);
  return argv;
}

export async function mountRootfs(mounts: readonly RootfsMount[], target: string): Promise<void> {
  mkdirSync(target, { recursive: true, mode: 0o711 });
  let done = 0;
  try {
    for (const m of mounts) {
      await run('mount', mountArgv(m, target));
      done++;
    }
  } catch (err) {
    for (; done > 0; done--) await unmountAll(target);
    const e = err as { stderr?: string; message: string };
    throw new RuntimeError(`failed to mount rootfs component: ${(e.stderr || e.message).trim()}`);
  }
}

/** Mount points, as /proc/self/mountinfo spells them (octal escapes decoded). */
function mountPoints(): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((p): p is string => p !== undefined)
    .map((p) => p.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))));
}

function isMountPoint(path: string): boolean {
  return mountPoints().includes(path);
}

/**
 * Unmount everything stacked on `target` and everything mounted below it
 * (the mounts a shared host's guest gets under its root, guest-mounts.ts),
 * deepest first; tolerant (nothing mounted is fine).
 */
export async function unmountAll(target: string): Promise<void> {
  const below = [...new Set(mountPoints().filter((p) => p.startsWith(`${target}/`)))].sort((a, b) => b.length - a.length);
  for (const p of below) {
    await run('umount', [p]).catch(() => run('umount', ['-l', p]).catch(() => undefined));
  }
  for (let i = 0; i < 32 && isMountPoint(target); i++) {
    try {
      await run('umount', [target]);
    } catch (err) {
      log().warn({ err, target }, 'umount failed; detaching lazily');
      try {
        await run('umount', ['-l', target]);
      } catch {
        return;
      }
    }
  }
}
