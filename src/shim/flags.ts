// Command line of a containerd 1.6 runtime-v2 shim, parsed with Go `flag`
// semantics (runtime/v2/shim/shim.go parseFlags): `-x v`, `-x=v`, `--x v`,
// `--x=v`, booleans as `-debug` or `-debug=true`; parsing stops at the first
// non-flag argument (the action: start, delete, or none for the daemon) or `--`.
import { UsageError } from '../errors.js';

export interface ShimFlags {
  namespace: string;
  id: string;
  address: string;
  publishBinary: string;
  bundle: string;
  socket: string;
  debug: boolean;
  version: boolean;
  /** First positional argument: "start", "delete", or "" (daemon). */
  action: string;
}

const STRING_FLAGS: Record<string, keyof ShimFlags> = {
  namespace: 'namespace',
  id: 'id',
  address: 'address',
  'publish-binary': 'publishBinary',
  bundle: 'bundle',
  socket: 'socket',
};
const BOOL_FLAGS: Record<string, 'debug' | 'version'> = { debug: 'debug', v: 'version' };

/** A bad shim command line (exit status 2). */
export class FlagError extends UsageError {}

function parseBool(name: string, v: string): boolean {
  // strconv.ParseBool
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(v)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(v)) return false;
  throw new FlagError(`invalid boolean value ${JSON.stringify(v)} for -${name}: parse error`);
}

export function parseShimFlags(argv: readonly string[]): ShimFlags {
  const out: ShimFlags = {
    namespace: '',
    id: '',
    address: '',
    publishBinary: 'containerd',
    bundle: '',
    socket: '',
    debug: false,
    version: false,
    action: '',
  };
  let i = 0;
  for (; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg.length < 2 || arg[0] !== '-') break;
    let body = arg.slice(1);
    if (body.startsWith('-')) {
      body = body.slice(1);
      if (body === '') {
        i++; // "--" terminates the flags
        break;
      }
    }
    if (body.startsWith('-') || body.startsWith('=')) throw new FlagError(`bad flag syntax: ${arg}`);
    const eq = body.indexOf('=');
    const name = eq >= 0 ? body.slice(0, eq) : body;
    const inline = eq >= 0 ? body.slice(eq + 1) : undefined;
    const b = BOOL_FLAGS[name];
    if (b) {
      out[b] = inline === undefined ? true : parseBool(name, inline);
      continue;
    }
    const s = STRING_FLAGS[name];
    if (!s) throw new FlagError(`flag provided but not defined: -${name}`);
    let value = inline;
    if (value === undefined) {
      if (i + 1 >= argv.length) throw new FlagError(`flag needs an argument: -${name}`);
      value = argv[++i]!;
    }
    (out as unknown as Record<string, string>)[s] = value;
  }
  out.action = argv[i] ?? '';
  return out;
}
