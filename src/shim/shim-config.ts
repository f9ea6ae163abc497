// The shim's own settings, from the file a runtime's options name
// (runtimeoptions.v1.Options.config_path: what containerd's CRI plugin sends
// for `[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.tugboat.options]
// ConfigPath = "/etc/tugboat/shim.toml"`, and what `ctr run
// --runtime-config-path FILE` sends). The file is TOML; the shim reads the
// part of TOML it needs: top-level `key = "string"` lines and comments.
//
//   # /etc/tugboat/shim.toml
//   isolation = "pod"        # container | pod | process: the level of a Wasm
//                            # container that names none (io.tugboat.isolation)
import { readFileSync } from 'node:fs';
import { ConfigError } from '../errors.js';
import type { IsolationLevel } from '../linux-runtime/engine.js';

export interface ShimConfig {
  isolation?: IsolationLevel;
}

const LEVELS: readonly IsolationLevel[] = ['container', 'pod', 'process'];

function bad(file: string, line: number, why: string): ConfigError {
  return new ConfigError(`runtime config ${file}:${line}: ${why}`, { kind: 'InvalidArgument' });
}

export function parseShimConfig(text: string, file: string): ShimConfig {
  const out: ShimConfig = {};
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.replace(/(^|\s)#.*$/, '').trim();
    if (line === '') return;
    const m = /^([A-Za-z_][\w-]*)\s*=\s*"([^"\\]*)"$/.exec(line);
    if (!m) throw bad(file, i + 1, 'expected key = "value"');
    const [, key, value] = m as unknown as [string, string, string];
    if (key === 'isolation') {
      if (!LEVELS.includes(value as IsolationLevel)) throw bad(file, i + 1, `isolation: unknown level ${JSON.stringify(value)} (${LEVELS.join(', ')})`);
      out.isolation = value as IsolationLevel;
    } else {
      throw bad(file, i + 1, `unknown key ${JSON.stringify(key)} (known: isolation)`);
    }
  });
  return out;
}

export function readShimConfig(file: string): ShimConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`runtime config ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { kind: 'InvalidArgument' });
  }
  return parseShimConfig(text, file);
}
