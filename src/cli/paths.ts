// Where `tugboat run`, `ps` and `rm` find things under the data root, and the
// runc they drive (`<root>/runc` as runc's --root).
import { join } from 'node:path';
import { runcBinary } from '../defaults.js';
import type { LayerLimits } from '../oci/layers.js';
import { Runc } from '../linux-runtime/runc.js';

export interface Paths {
  /** Data root: image store and containers (absolute; defaults.ts dataRoot). */
  root: string;
  runcBinary?: string;
  kitDir?: string;
  /** Bounds on unpacking image layers (--layer-limits). */
  layerLimits?: Partial<LayerLimits>;
}

export function runcRoot(paths: Paths): string {
  return join(paths.root, 'runc');
}

export function runcFor(paths: Paths): Runc {
  return new Runc({ root: runcRoot(paths), binary: runcBinary(paths.runcBinary) });
}
