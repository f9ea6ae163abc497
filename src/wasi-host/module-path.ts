// Resolves the guest's argv[0] to a module file, as execve's caller would:
// a name with a slash is a path (relative to the cwd), a bare name is looked
// up in the guest's PATH. Runs inside the container, so "/" is its root.
import { statSync } from 'node:fs';
import { posix } from 'node:path';
import { envListToObject } from './guest-config.js';

function isFile(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

export function resolveModulePath(name: string, env: readonly string[], cwd = process.cwd()): string | undefined {
  if (name === '') return undefined;
  if (name.includes('/')) {
    const abs = posix.resolve(cwd, name);
    return isFile(abs) ? abs : undefined;
  }
  const path = envListToObject(env).PATH ?? '/usr/local/bin:/usr/bin:/bin';
  for (const dir of path.split(':')) {
    const candidate = posix.resolve(cwd, dir || '.', name);
    if (isFile(candidate)) return candidate;
  }
  return undefined;
}
