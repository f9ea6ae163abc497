// The one place that knows which WasmEngine runs which isolation level. A new
// level is a new engine file and one line here.
import { UsageError } from '../errors.js';
import { containerEngine } from './container-engine.js';
import { ISOLATION_ANNOTATION, type IsolationLevel, type WasmEngine } from './engine.js';

const ENGINES: Partial<Record<IsolationLevel, WasmEngine>> = {
  container: containerEngine,
};

/** The engine for an isolation level; an unknown (or not yet available) level is bad input. */
export function selectEngine(level: string = 'container'): WasmEngine {
  const engine = Object.hasOwn(ENGINES, level) ? ENGINES[level as IsolationLevel] : undefined;
  if (!engine) {
    throw new UsageError(`unknown isolation level ${JSON.stringify(level)} (${ISOLATION_ANNOTATION}; available: ${Object.keys(ENGINES).join(', ')})`);
  }
  return engine;
}

/** Every registered engine, to reopen a workload an earlier process prepared. */
export function registeredEngines(): WasmEngine[] {
  return Object.values(ENGINES);
}
