// The instrumenter's entry points: cap a module's memory and make its code
// preemptible, in one decode and one encode. Pure: bytes in, bytes out.
import { ConfigError, MemoryCapError, WasmUnsupportedError } from '../../errors.js';
import { nameBytes, s32Bytes, u32Bytes } from './bytes.js';
import { decodeModule, EXTERN, SEC, type DecodedModule } from './decode.js';
import { encodeModule } from './encode.js';
import { addEntries, addEntry } from './section-edits.js';
import { REPLACE, type Edit } from './sites.js';
import { encodeLimits, is64, type Limits } from './types.js';
import { LOCAL, YieldCode } from './yield-code.js';

import { GROW_IMPORT, START_EXPORT, YIELD_IMPORT } from './names.js';

export { GROW_IMPORT, START_EXPORT, YIELD_IMPORT };

/** Yield points between two calls of `tugboat.yield`: at 1,000 the calls cost ~15% of a compute-bound guest, 100,000 gains nothing measurable (bench/compute-yield). */
export const DEFAULT_YIELD_INTERVAL = 10_000;

/** Largest page count a 32-bit memory can have (4 GiB). */
const MAX_PAGES_32 = 65_536;

export interface InstrumentOptions {
  /** Lower every memory's maximum to this many 64 KiB pages. */
  maxMemoryPages?: number;
  /** Insert yield points: a counter check at loop headers and at the entry of every function on a call cycle. */
  yieldPoints?: { interval: number };
  /** Replace every memory.grow of 32-bit memory 0 with a call of GROW_IMPORT. */
  growHook?: boolean;
}

export interface GrowHookReport {
  /** memory.grow instructions now calling the hook. */
  sites: number;
  /** Function index of the added import. */
  importIndex: number;
}

export interface MemoryCapReport {
  /** Index in the memory index space (imports first). */
  index: number;
  imported: boolean;
  minPages: number;
  maxPagesBefore: number | undefined;
  maxPagesAfter: number;
}

export interface YieldPointReport {
  interval: number;
  /** Loop headers with a check. */
  loops: number;
  /** Function entries with a check (functions on a cycle of the call graph). */
  functionEntries: number;
  /** memory.fill, memory.copy and memory.init, checked before they run, weighted by their length. */
  bulkInstructions: number;
  functionBodies: number;
  /** Functions with loops whose counter lives in a local (the rest count on the global). */
  localCounters: number;
  /** Function index of the added import; defined functions at or above it moved up by one. */
  importIndex: number;
  /** Index of the added mutable i32 counter global. */
  counterGlobal: number;
  /** The name section's function indices were renumbered, or it was absent, or dropped because malformed. */
  nameSection: 'renumbered' | 'absent' | 'dropped (malformed)';
  /** Custom sections that describe code offsets (DWARF, branch hints, source maps), dropped because the code moved. */
  droppedSections: string[];
  /** START_EXPORT if the module had a start function, which the host must now call itself. */
  startExport: string | undefined;
}

export interface InstrumentReport {
  inputBytes: number;
  outputBytes: number;
  memories: MemoryCapReport[];
  yieldPoints: YieldPointReport | undefined;
  growHook: GrowHookReport | undefined;
}

export interface InstrumentResult {
  bytes: Uint8Array;
  report: InstrumentReport;
}

function checkOptions(o: InstrumentOptions): void {
  const p = o.maxMemoryPages;
  if (p !== undefined && !(Number.isSafeInteger(p) && p >= 0)) {
    throw new ConfigError(`memory cap must be a whole number of pages, got ${p}`);
  }
  const i = o.yieldPoints?.interval;
  if (o.yieldPoints && !(Number.isInteger(i) && i! >= 1 && i! <= 0x7fffffff)) {
    throw new ConfigError(`yield interval must be an integer from 1 to 2^31-1, got ${i}`);
  }
}

function capMemories(m: DecodedModule, maxPages: number, edits: Edit[]): MemoryCapReport[] {
  const memories: { limits: Limits; imported: boolean }[] = [
    ...(m.imports?.entries ?? []).filter((e) => e.kind === EXTERN.memory).map((e) => ({ limits: e.limits!, imported: true })),
    ...m.memories.map((limits) => ({ limits, imported: false })),
  ];
  return memories.map(({ limits, imported }, index) => {
    if (limits.min > maxPages) throw new MemoryCapError(limits.min, maxPages);
    const ceiling = is64(limits) ? maxPages : Math.min(maxPages, MAX_PAGES_32);
    const max = limits.max === undefined ? ceiling : Math.min(limits.max, ceiling);
    if (max !== limits.max) {
      edits.push({ kind: REPLACE, pos: limits.start, len: limits.end - limits.start, data: encodeLimits(limits.flags, limits.min, max) });
    }
    return { index, imported, minPages: limits.min, maxPagesBefore: limits.max, maxPagesAfter: max };
  });
}

// Custom sections whose contents point into the code section by offset.
const CODE_OFFSET_SECTIONS = /^(\.debug_|metadata\.code\.|sourceMappingURL$|reloc\.|linking$)/;

/** The function imports a rewrite adds after every existing import, and where they landed. */
interface AddedImports {
  yieldIndex: number;
  growIndex: number;
  /** How many were added: defined functions move up by this much. */
  shift: number;
}

/**
 * Adds the yield and grow hook imports (those asked for), in that order,
 * after every existing import, so they take function indices from
 * `importedFuncs` on and every defined function moves up; their types are an
 * existing [] -> [] or new ones at the end of the type section.
 */
function addImports(m: DecodedModule, want: { yield: boolean; grow: boolean }, edits: Edit[]): AddedImports {
  const newTypes: number[][] = [];
  const imports: number[][] = [];
  let nextType = m.types?.count.value ?? 0;
  let next = m.importedFuncs;
  const added: AddedImports = { yieldIndex: -1, growIndex: -1, shift: 0 };
  if (want.yield) {
    let typeIndex = m.types?.emptyFuncType ?? -1;
    if (typeIndex < 0) {
      typeIndex = nextType++;
      newTypes.push([0x60, 0x00, 0x00]);
    }
    imports.push([...nameBytes(YIELD_IMPORT.module), ...nameBytes(YIELD_IMPORT.name), EXTERN.func, ...u32Bytes(typeIndex)]);
    added.yieldIndex = next++;
  }
  if (want.grow) {
    newTypes.push([0x60, 0x01, 0x7f, 0x01, 0x7f]); // [i32] -> [i32]
    imports.push([...nameBytes(GROW_IMPORT.module), ...nameBytes(GROW_IMPORT.name), EXTERN.func, ...u32Bytes(nextType++)]);
    added.growIndex = next++;
  }
  edits.push(...addEntries(m, SEC.type, m.types?.count, newTypes), ...addEntries(m, SEC.import, m.imports?.count, imports));
  added.shift = next - m.importedFuncs;
  return added;
}

/**
 * Custom sections that describe the code by offset go, since the code moved;
 * a malformed name section goes too. Returns the names of those dropped.
 */
function dropCodeOffsetSections(m: DecodedModule, edits: Edit[]): string[] {
  const droppedSections: string[] = [];
  for (const s of m.sections) {
    const malformedNames = s.name === 'name' && m.names === 'malformed';
    if (s.id === SEC.custom && (malformedNames || CODE_OFFSET_SECTIONS.test(s.name ?? ''))) {
      edits.push({ kind: REPLACE, pos: s.start, len: s.end - s.start, data: new Uint8Array(0) });
      if (!malformedNames) droppedSections.push(s.name!);
    }
  }
  return droppedSections;
}

function addYieldPoints(m: DecodedModule, interval: number, added: AddedImports, droppedSections: string[], edits: Edit[]): { report: YieldPointReport; code: YieldCode } {
  const importIndex = added.yieldIndex;
  // The counter: a mutable i32 global after every existing one.
  const counterGlobal = m.importedGlobals + (m.globals?.count.value ?? 0);
  edits.push(...addEntry(m, SEC.global, m.globals?.count, [0x7f, 0x01, 0x41, ...s32Bytes(interval), 0x0b]));

  // The start function, exported under START_EXPORT instead of run by instantiation.
  let startExport: string | undefined;
  if (m.start !== undefined) {
    const section = m.sections.find((s) => s.id === SEC.start)!;
    if (m.exports?.names.has(START_EXPORT)) {
      const exports = m.sections.find((s) => s.id === SEC.export)!;
      throw new WasmUnsupportedError(exports.start, `export name ${JSON.stringify(START_EXPORT)} (reserved for the start function)`);
    }
    edits.push({ kind: REPLACE, pos: section.start, len: section.end - section.start, data: new Uint8Array(0) });
    const index = m.start >= m.importedFuncs ? m.start + added.shift : m.start;
    edits.push(...addEntry(m, SEC.export, m.exports?.count, [...nameBytes(START_EXPORT), EXTERN.func, ...u32Bytes(index)]));
    startExport = START_EXPORT;
  }

  const code = new YieldCode(m.bodies, counterGlobal, importIndex, interval);
  let loops = 0;
  let functionEntries = 0;
  let localCounters = 0;
  let bulkInstructions = 0;
  for (let i = 0; i < m.bodies.count; i++) {
    loops += m.bodies.loops[i]!;
    bulkInstructions += m.bodies.bulk[i]!;
    if (m.bodies.mayRecurse[i]) functionEntries++;
    if (code.modes[i] === LOCAL) localCounters++;
  }
  const nameSection = m.names === 'decoded' ? 'renumbered' : m.names === 'malformed' ? 'dropped (malformed)' : 'absent';
  return {
    report: { interval, loops, functionEntries, bulkInstructions, functionBodies: m.bodies.count, localCounters, importIndex, counterGlobal, nameSection, droppedSections, startExport },
    code,
  };
}

export function instrument(bytes: Uint8Array, options: InstrumentOptions): InstrumentResult {
  checkOptions(options);
  const grow = options.growHook === true;
  const m = decodeModule(bytes, { code: options.yieldPoints !== undefined || grow });
  const edits: Edit[] = [];
  const memories = options.maxMemoryPages === undefined ? [] : capMemories(m, options.maxMemoryPages, edits);
  const added = addImports(m, { yield: options.yieldPoints !== undefined, grow }, edits);
  const dropped = added.shift > 0 ? dropCodeOffsetSections(m, edits) : [];
  const yp = options.yieldPoints ? addYieldPoints(m, options.yieldPoints.interval, added, dropped, edits) : undefined;
  let growSites = 0;
  for (let i = 0; i < m.bodies.count; i++) growSites += m.bodies.grows[i]!;
  const out = encodeModule(m, edits, {
    funcShiftFrom: added.shift > 0 ? m.importedFuncs : Infinity,
    funcShift: added.shift,
    code: yp?.code,
    ...(grow ? { growCall: new Uint8Array([0x10, ...u32Bytes(added.growIndex)]) } : {}),
  });
  return {
    bytes: out,
    report: {
      inputBytes: bytes.length,
      outputBytes: out.length,
      memories,
      yieldPoints: yp?.report,
      growHook: grow ? { sites: growSites, importIndex: added.growIndex } : undefined,
    },
  };
}

/** Lowers the maximum of every memory (memory 0 for every toolchain in use) to `maxPages`. */
export function capMemory(bytes: Uint8Array, maxPages: number): Uint8Array {
  return instrument(bytes, { maxMemoryPages: maxPages }).bytes;
}

/** Adds the `tugboat.yield` import and a yield check at every loop header and at the entry of every function on a call cycle. */
export function insertYieldPoints(bytes: Uint8Array, options: { interval: number }): Uint8Array {
  return instrument(bytes, { yieldPoints: options }).bytes;
}
