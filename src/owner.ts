// Temp files and directories that name the process they belong to:
// `<prefix><pid>-<start>-<random>`, where <start> is the process's start time
// in clock ticks since boot, so a reused pid is told apart. Whoever finds one
// can tell whether its owner still runs; those of owners that are gone
// (killed, crashed) are swept by the next command that writes (src/oci/sweep.ts).
import { readFileSync } from 'node:fs';

/** Start time of a process (clock ticks since boot, field 22 of /proc/PID/stat); undefined when it is gone. */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

let own: string | undefined;

/** `<pid>-<start>` of this process. */
export function ownerTag(): string {
  own ??= `${process.pid}-${processStartTime(process.pid) ?? 0}`;
  return own;
}

/** A fresh name owned by this process: `<prefix><pid>-<start>-<8 hex>`. */
export function ownedName(prefix = ''): string {
  // crypto is loaded here, not with the module: the store imports this file to read.
  return `${prefix}${ownerTag()}-${process.getBuiltinModule('node:crypto').randomBytes(4).toString('hex')}`;
}

/** The owner part of an owned name (the `<pid>-<start>` before the random suffix at its end), or undefined. */
export function ownerOf(name: string): { pid: number; start: string } | undefined {
  const m = /(?:^|[.-])(\d+)-(\d+)-[0-9a-f]{8}$/.exec(name);
  return m ? { pid: Number(m[1]), start: m[2]! } : undefined;
}

export function isAlive(owner: { pid: number; start: string }): boolean {
  return processStartTime(owner.pid) === owner.start;
}

/** True for an owned name whose owner is gone; false for a live owner and for names that are not owned names. */
export function ownerGone(name: string): boolean {
  const owner = ownerOf(name);
  return owner !== undefined && !isAlive(owner);
}
