// Resolves an image's "user[:group]" against the image's own /etc/passwd and
// /etc/group. Those files come from an untrusted image, so they are read
// without following any symlink (a link could point at the host's files):
// a linked or missing file is treated as absent, and only numeric ids work.

import { closeSync, constants, fstatSync, lstatSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../errors.js';
import type { User } from './runtime-spec.js';

const MAX_DB_FILE = 4 * 1024 * 1024;
const MAX_ID = 0xfffffffe; // (uid_t)-1 means "no change" to the kernel

interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
}

interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

/** Reads <rootfs>/etc/<name> if it is a regular file reached without links; undefined otherwise. */
export function readEtcFile(rootfs: string, name: string): string | undefined {
  const etc = join(rootfs, 'etc');
  try {
    if (!lstatSync(etc).isDirectory()) return undefined; // lstat: a symlinked /etc is not followed
  } catch {
    return undefined;
  }
  let fd: number;
  try {
    // O_NOFOLLOW refuses a final symlink; O_NONBLOCK keeps a FIFO from hanging us.
    fd = openSync(join(etc, name), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return undefined;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || st.size > MAX_DB_FILE) return undefined;
    const buf = Buffer.alloc(st.size);
    let off = 0;
    while (off < buf.length) {
      const n = readSync(fd, buf, off, buf.length - off, off);
      if (n === 0) break;
      off += n;
    }
    return buf.subarray(0, off).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

function parseId(s: string): number | undefined {
  if (!/^\d+$/.test(s)) return undefined;
  const n = Number(s);
  return n <= MAX_ID ? n : undefined;
}

function lines(text: string): string[][] {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '' && !l.startsWith('#'))
    .map((l) => l.split(':'));
}

export function parsePasswd(text: string): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  for (const f of lines(text)) {
    const uid = parseId(f[2] ?? '');
    const gid = parseId(f[3] ?? '');
    if (f[0] && uid !== undefined && gid !== undefined) out.push({ name: f[0], uid, gid });
  }
  return out;
}

export function parseGroup(text: string): GroupEntry[] {
  const out: GroupEntry[] = [];
  for (const f of lines(text)) {
    const gid = parseId(f[2] ?? '');
    if (f[0] && gid !== undefined) out.push({ name: f[0], gid, members: (f[3] ?? '').split(',').map((m) => m.trim()).filter(Boolean) });
  }
  return out;
}

function numericId(s: string, what: string): number | undefined {
  if (!/^\d+$/.test(s)) return undefined;
  const n = parseId(s);
  if (n === undefined) throw new ConfigError(`${what} ${s} is out of range`);
  return n;
}

/**
 * "uid", "uid:gid", "name", "name:group" (and mixes) → runtime-spec User.
 * A numeric uid takes its gid from /etc/passwd when listed, else 0, as in
 * containerd. Supplementary groups come from /etc/group membership.
 */
export function resolveUser(rootfs: string, spec: string): User {
  if (spec === '') return { uid: 0, gid: 0 };
  const parts = spec.split(':');
  if (parts.length > 2 || parts[0] === '' || parts[1] === '') throw new ConfigError(`invalid user ${JSON.stringify(spec)}: expected user[:group]`);
  const [userPart = '', groupPart] = parts;

  let passwd: PasswdEntry[] | undefined;
  const passwdDb = (): PasswdEntry[] | undefined => {
    if (passwd === undefined) {
      const text = readEtcFile(rootfs, 'passwd');
      if (text !== undefined) passwd = parsePasswd(text);
    }
    return passwd;
  };
  let groups: GroupEntry[] | undefined;
  const groupDb = (): GroupEntry[] | undefined => {
    if (groups === undefined) {
      const text = readEtcFile(rootfs, 'group');
      if (text !== undefined) groups = parseGroup(text);
    }
    return groups;
  };

  let uid: number;
  let gid: number;
  let username: string | undefined;
  const numericUid = numericId(userPart, 'uid');
  if (numericUid !== undefined) {
    uid = numericUid;
    const entry = passwdDb()?.find((e) => e.uid === uid);
    gid = entry?.gid ?? 0;
    username = entry?.name;
  } else {
    const db = passwdDb();
    if (!db) throw new ConfigError(`cannot resolve user ${JSON.stringify(userPart)}: the image has no usable /etc/passwd (missing or a symlink); use a numeric uid`);
    const entry = db.find((e) => e.name === userPart);
    if (!entry) throw new ConfigError(`user ${JSON.stringify(userPart)} not found in the image's /etc/passwd`);
    ({ uid, gid } = entry);
    username = entry.name;
  }

  if (groupPart !== undefined) {
    const numericGid = numericId(groupPart, 'gid');
    if (numericGid !== undefined) {
      gid = numericGid;
    } else {
      const db = groupDb();
      if (!db) throw new ConfigError(`cannot resolve group ${JSON.stringify(groupPart)}: the image has no usable /etc/group (missing or a symlink); use a numeric gid`);
      const entry = db.find((e) => e.name === groupPart);
      if (!entry) throw new ConfigError(`group ${JSON.stringify(groupPart)} not found in the image's /etc/group`);
      gid = entry.gid;
    }
  }

  const user: User = { uid, gid };
  if (username !== undefined) {
    const extra = (groupDb() ?? []).filter((g) => g.members.includes(username as string) && g.gid !== gid).map((g) => g.gid);
    // Like containerd, the primary gid is listed too once there are supplementary groups.
    if (extra.length) user.additionalGids = [...new Set([gid, ...extra])];
  }
  return user;
}
