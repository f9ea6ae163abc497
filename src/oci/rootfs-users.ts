// Which containers use which unpacked image roots (`<root>/rootfs/<hex>`),
// so that the store never deletes a root under a container. Two witnesses,
// either one is enough: the container's record (`containers/<id>/container.json`,
// field `digest`: the manifest it was made from), and the kernel's mount
// table (an overlay whose lower dir is that root), which also covers a
// container whose `tugboat run` died before writing its record.
import { readdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';

const HEX = /^sha256:([0-9a-f]{64})$/;

/** Undoes the octal escapes of /proc/self/mountinfo (space, tab, newline, backslash). */
function unescapeMountField(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

async function recordedUsers(containers: string, users: Map<string, Set<string>>): Promise<void> {
  for (const id of await readdir(containers).catch(() => [] as string[])) {
    let digest: unknown;
    try {
      digest = (JSON.parse(await readFile(join(containers, id, 'container.json'), 'utf8')) as { digest?: unknown }).digest;
    } catch {
      continue; // no record (yet): the mount table may still know
    }
    const hex = typeof digest === 'string' ? HEX.exec(digest)?.[1] : undefined;
    if (hex) add(users, hex, id);
  }
}

async function mountedUsers(root: string, users: Map<string, Set<string>>): Promise<void> {
  const containers = `${resolve(root, 'containers')}/`;
  const rootfs = `${resolve(root, 'rootfs')}/`;
  const table = await readFile('/proc/self/mountinfo', 'utf8').catch(() => '');
  for (const line of table.split('\n')) {
    const [mine, theirs] = line.split(' - ');
    if (!mine || !theirs?.startsWith('overlay ')) continue;
    const target = unescapeMountField(mine.split(' ')[4] ?? '');
    if (!target.startsWith(containers)) continue;
    const id = target.slice(containers.length).split('/')[0] ?? '';
    const options = unescapeMountField(theirs.split(' ')[2] ?? '');
    for (const opt of options.split(',')) {
      if (!opt.startsWith('lowerdir=')) continue;
      for (const lower of opt.slice('lowerdir='.length).split(':')) {
        const hex = lower.startsWith(rootfs) ? lower.slice(rootfs.length) : '';
        if (/^[0-9a-f]{64}$/.test(hex)) add(users, hex, id);
      }
    }
  }
}

function add(users: Map<string, Set<string>>, hex: string, id: string): void {
  let set = users.get(hex);
  if (!set) users.set(hex, (set = new Set()));
  set.add(id);
}

/** Manifest hex → names of the containers under `root` that use its unpacked root. */
export async function rootfsUsers(root: string): Promise<Map<string, Set<string>>> {
  const users = new Map<string, Set<string>>();
  await recordedUsers(join(root, 'containers'), users);
  await mountedUsers(root, users);
  return users;
}
