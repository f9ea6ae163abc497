// Parsing of the runc command line (urfave/cli v1 rules: `--flag value`,
// `--flag=value`, single or double dash, bools take no value), as far as
// Tugboat needs to understand it. Everything else is forwarded verbatim, so
// runc stays the authority on its own flags.
import { UsageError } from '../../errors.js';

/** Global flags runc accepts before the command, and those of Tugboat's own. */
export const GLOBAL_VALUE_FLAGS = new Set(['root', 'log', 'log-format', 'criu', 'rootless', 'runc', 'kit', 'log-level']);
const GLOBAL_BOOL_FLAGS = new Set(['debug', 'systemd-cgroup', 'help', 'h', 'version', 'v']);
/** Tugboat's own globals: never forwarded to runc. */
export const TUGBOAT_GLOBALS = new Set(['runc', 'kit', 'log-level']);

export const OCI_COMMANDS = new Set([
  'create', 'start', 'state', 'kill', 'delete', 'exec', 'ps', 'pause', 'resume', 'update',
  'events', 'features', 'list', 'checkpoint', 'restore', 'spec',
]);

interface FlagTable {
  value: Set<string>;
  bool: Set<string>;
}

const COMMAND_FLAGS: Record<string, FlagTable> = {
  create: {
    value: new Set(['bundle', 'b', 'console-socket', 'pid-file', 'preserve-fds']),
    bool: new Set(['no-pivot', 'no-new-keyring', 'detach', 'd']),
  },
  exec: {
    value: new Set(['console-socket', 'cwd', 'env', 'e', 'user', 'u', 'additional-gids', 'g', 'process', 'p', 'pid-file', 'process-label', 'apparmor', 'cap', 'c', 'preserve-fds', 'cgroup']),
    bool: new Set(['tty', 't', 'detach', 'd', 'no-new-privs', 'ignore-paused']),
  },
  delete: { value: new Set(), bool: new Set(['force', 'f']) },
  ps: { value: new Set(['format', 'f']), bool: new Set() },
};

export interface ParsedFlag {
  name: string;
  value?: string;
  /** Indexes in the argv this flag occupies (1 or 2). */
  start: number;
  end: number;
}

export interface ParsedGlobals {
  flags: ParsedFlag[];
  /** Index of the command word, or argv.length if none. */
  commandIndex: number;
}

function splitFlag(arg: string): { name: string; inline?: string } | undefined {
  const m = /^--?([A-Za-z0-9][A-Za-z0-9-]*)(?:=(.*))?$/s.exec(arg);
  if (!m) return undefined;
  return m[2] === undefined ? { name: m[1]! } : { name: m[1]!, inline: m[2] };
}

function parseFlags(argv: readonly string[], from: number, table: FlagTable, stopAtPositional: boolean, where: string): { flags: ParsedFlag[]; positionals: string[]; end: number } {
  const flags: ParsedFlag[] = [];
  const positionals: string[] = [];
  let i = from;
  while (i < argv.length) {
    const arg = argv[i]!;
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      return { flags, positionals, end: argv.length };
    }
    const f = arg.startsWith('-') && arg !== '-' ? splitFlag(arg) : undefined;
    if (!f) {
      if (stopAtPositional) return { flags, positionals, end: i };
      positionals.push(arg);
      i++;
      continue;
    }
    if (table.bool.has(f.name)) {
      flags.push({ name: f.name, ...(f.inline !== undefined ? { value: f.inline } : {}), start: i, end: i + 1 });
      i++;
    } else if (table.value.has(f.name)) {
      if (f.inline !== undefined) {
        flags.push({ name: f.name, value: f.inline, start: i, end: i + 1 });
        i++;
      } else {
        const value = argv[i + 1];
        if (value === undefined) throw new UsageError(`flag needs an argument: -${f.name}${where}`);
        flags.push({ name: f.name, value, start: i, end: i + 2 });
        i += 2;
      }
    } else {
      throw new UsageError(`flag provided but not defined: -${f.name}${where}`);
    }
  }
  return { flags, positionals, end: i };
}

/** Globals up to the first word that is not a flag: that word is the command. */
export function parseGlobals(argv: readonly string[]): ParsedGlobals {
  const r = parseFlags(argv, 0, { value: GLOBAL_VALUE_FLAGS, bool: GLOBAL_BOOL_FLAGS }, true, '');
  return { flags: r.flags, commandIndex: r.end };
}

export interface ParsedCommand {
  command: string;
  globals: ParsedFlag[];
  flags: ParsedFlag[];
  positionals: string[];
  argv: readonly string[];
  commandIndex: number;
}

/** For the commands Tugboat handles itself (create, exec, delete, ps): flags and positionals. */
export function parseOciCommand(argv: readonly string[]): ParsedCommand {
  const g = parseGlobals(argv);
  const command = argv[g.commandIndex] ?? '';
  if (!OCI_COMMANDS.has(command)) throw new UsageError(`unknown runtime command ${JSON.stringify(command)}`);
  const table = COMMAND_FLAGS[command];
  // Commands Tugboat does not interpret are forwarded whole; runc parses them.
  if (!table) return { command, globals: g.flags, flags: [], positionals: argv.slice(g.commandIndex + 1), argv, commandIndex: g.commandIndex };
  // runc's exec takes the command to run after the id: flags stop there.
  const r = parseFlags(argv, g.commandIndex + 1, table, command === 'exec', ` (in ${command})`);
  const positionals = command === 'exec' ? argv.slice(r.end) : r.positionals;
  return { command, globals: g.flags, flags: r.flags, positionals: [...positionals], argv, commandIndex: g.commandIndex };
}

export function flagValue(flags: readonly ParsedFlag[], ...names: string[]): string | undefined {
  for (let i = flags.length - 1; i >= 0; i--) {
    const f = flags[i]!;
    if (names.includes(f.name)) return f.value ?? 'true';
  }
  return undefined;
}

export function hasFlag(flags: readonly ParsedFlag[], ...names: string[]): boolean {
  const v = flagValue(flags, ...names);
  return v !== undefined && v !== 'false';
}

/** argv for runc: Tugboat's own globals removed, one flag's value optionally replaced. */
export function runcArgv(p: ParsedCommand, replace?: { names: string[]; value: string }): string[] {
  const out: string[] = [];
  const skip = new Set<number>();
  for (const f of p.globals) if (TUGBOAT_GLOBALS.has(f.name)) for (let i = f.start; i < f.end; i++) skip.add(i);
  let replaced = false;
  for (let i = 0; i < p.argv.length; i++) {
    if (skip.has(i)) continue;
    const f = replace ? p.flags.find((x) => x.start === i && replace.names.includes(x.name)) : undefined;
    if (f && replace) {
      out.push(`--${f.name}`, replace.value);
      i = f.end - 1;
      replaced = true;
      continue;
    }
    out.push(p.argv[i]!);
  }
  if (replace && !replaced) throw new UsageError(`missing --${replace.names[0]}`);
  return out;
}

// One rule for names and ids everywhere (src/oci/names.ts).
export { checkContainerId } from '../../oci/names.js';

/** The words of argv that are not flags or the values of known global flags (unknown flags are taken as booleans). */
function positionalWords(argv: readonly string[]): string[] {
  const words: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('-') || arg === '-') words.push(arg);
    else if (!arg.includes('=') && GLOBAL_VALUE_FLAGS.has(arg.replace(/^--?/, ''))) i++;
  }
  return words;
}

/** True when argv is a runc command line that Tugboat should handle as an OCI runtime. */
export function isOciInvocation(argv: readonly string[]): boolean {
  let command: string | undefined;
  try {
    command = argv[parseGlobals(argv).commandIndex];
  } catch {
    // An unknown global flag: when a runc command follows, it is runc's
    // command line, and it gets runc's error (flag provided but not defined).
    const words = positionalWords(argv);
    return words[0] !== undefined && OCI_COMMANDS.has(words[0]) && (words[0] !== 'ps' || words.length > 1);
  }
  if (command === undefined || !OCI_COMMANDS.has(command)) return false;
  if (command !== 'ps') return true;
  // `tugboat ps` lists Tugboat's own containers; `ps [flags] ID` is runc's.
  try {
    return parseOciCommand(argv).positionals.length > 0;
  } catch {
    return true;
  }
}
