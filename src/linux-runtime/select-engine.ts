// The one place that knows which WasmEngine runs which isolation level. A new
// level is a new engine file and one line here.
import { UsageError } from '../errors.js';
import { containerEngine } from './container-engine.js';
import { ISOLATION_ANNOTATION, type IsolationLevel, type WasmEngine } from './engine.js';
import { podEngine } from './pod-engine.js';
import { processEngine } from './process-engine.js';

const ENGINES: Partial<Record<IsolationLevel, WasmEngine>> = {
  container: containerEngine,
  pod: podEngine,
  process: processEngine,
};

/** How a front end chooses a container's level when the container names none, and which levels it can run at all. */
export interface IsolationChoice {
  /** The level when io.tugboat.isolation is absent (default `container`). */
  fallback?: IsolationLevel;
  /** Levels this front end can run, and why not the others. */
  allowed?: { levels: readonly IsolationLevel[]; why: string };
}

/** The container's level: its annotation, else the front end's fallback; an unknown level is bad input. */
export function isolationOf(annotations: Record<string, string> | undefined, choice: IsolationChoice = {}): IsolationLevel {
  const named = annotations?.[ISOLATION_ANNOTATION];
  const level = (named === undefined || named === '' ? choice.fallback ?? 'container' : named) as IsolationLevel;
  selectEngine(level); // unknown levels fail here, with the list of known ones
  return level;
}

/** The engine of a Wasm container's level; a level the front end cannot run is bad input. (Linux containers always get runc.) */
export function wasmEngineFor(level: IsolationLevel, choice: IsolationChoice = {}): WasmEngine {
  if (choice.allowed && !choice.allowed.levels.includes(level)) {
    throw new UsageError(`isolation level ${JSON.stringify(level)} (${ISOLATION_ANNOTATION}) ${choice.allowed.why}; use ${choice.allowed.levels.join(' or ')}`);
  }
  return selectEngine(level);
}

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
