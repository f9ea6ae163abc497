// What `tugboat --version` and `tugboat version` print: Tugboat's version,
// the runc found, and each Wasm engine's own facts (its kit).
import { execFileSync } from 'node:child_process';
import { runcBinary } from '../defaults.js';
import { registeredEngines } from '../linux-runtime/select-engine.js';
import { engineSettings } from '../linux-runtime/workload.js';
import { TUGBOAT_VERSION } from '../version.js';

export function versionText(): string {
  let runc = 'runc: not found';
  try {
    runc = execFileSync(runcBinary(), ['--version'], { encoding: 'utf8' }).split('\n')[0] ?? runc;
  } catch {
    // reported as not found
  }
  const engines = registeredEngines().map((e) => e.describe(engineSettings()));
  return [`tugboat version ${TUGBOAT_VERSION}`, 'spec: 1.0.2-dev', `node: ${process.version}`, runc, ...engines].join('\n');
}
