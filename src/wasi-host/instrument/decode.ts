// Decodes a core Wasm module into what a rewrite needs: its sections, the
// entries a rewrite changes or counts (types, imports, memories, globals),
// and the sites of every function index, loop header, function entry and
// size prefix (sites.ts). Everything else stays as the original bytes.
import { WasmDecodeError, WasmUnsupportedError } from '../../errors.js';
import { Reader } from './bytes.js';
import { EdgeList, onCycle } from './call-graph.js';
import { scanExpression, type ScanContext } from './instructions.js';
import { ENTRY, FUNC, LOCALS, SIZE, SiteList } from './sites.js';
import { is64, readGlobalType, readLimits, skipTableType, skipValType, type GlobalType, type Limits } from './types.js';
import { keepsLocalCounter } from './yield-code.js';

export const SEC = {
  custom: 0,
  type: 1,
  import: 2,
  function: 3,
  table: 4,
  memory: 5,
  global: 6,
  export: 7,
  start: 8,
  element: 9,
  code: 10,
  data: 11,
  dataCount: 12,
  tag: 13,
} as const;

// The order sections must appear in (the tag section sits between memory and global).
const ORDER = [SEC.type, SEC.import, SEC.function, SEC.table, SEC.memory, SEC.tag, SEC.global, SEC.export, SEC.start, SEC.element, SEC.dataCount, SEC.code, SEC.data];
export const sectionRank = (id: number): number => ORDER.indexOf(id as (typeof ORDER)[number]);

export const EXTERN = { func: 0, table: 1, memory: 2, global: 3, tag: 4 } as const;

export interface Section {
  id: number;
  /** Offset of the id byte; the payload is [payloadStart, end). */
  start: number;
  payloadStart: number;
  end: number;
  /** A custom section's name. */
  name?: string;
}

/** A vector's element count and where it is encoded. */
export interface Count {
  value: number;
  pos: number;
  width: number;
}

export interface Import {
  module: string;
  name: string;
  kind: number;
  /** The type index of a function import. */
  typeIndex?: number;
  /** The limits of a memory import. */
  limits?: Limits;
}

/** Facts about each function body (indexed as in the code section), for placing yield points. */
export interface Bodies {
  count: number;
  /** Local declaration groups. */
  groups: Float64Array;
  /** Params plus declared locals: the index a new local gets. */
  firstFreeLocal: Float64Array;
  loops: Uint32Array;
  callsIndirect: Uint8Array;
  /** It lies on a cycle of the call graph (call-graph.ts): its entry needs a yield point. */
  mayRecurse: Uint8Array;
  hasTryTable: Uint8Array;
  /** Bulk memory instructions weighted as yield points. */
  bulk: Uint32Array;
  /** memory.grow instructions on memory 0. */
  grows: Uint32Array;
}

export interface DecodedModule {
  bytes: Uint8Array;
  sections: Section[];
  sites: SiteList;
  /** What scans record into: the sites, calls between defined functions, escaping function references. */
  scan: ScanContext;
  /** The type section: its count, the first [] -> [] type (or -1), each type's parameter count. */
  types: { count: Count; emptyFuncType: number; params: number[] } | undefined;
  imports: { count: Count; entries: Import[] } | undefined;
  importedFuncs: number;
  importedGlobals: number;
  /** Memories defined by the module (after imported ones in the index space). */
  memories: Limits[];
  /** The global section: its count and each defined global's type (after imported ones in the index space). */
  globals: { count: Count; types: GlobalType[] } | undefined;
  exports: { count: Count; names: Set<string> } | undefined;
  /** The start function's index, if the module has a start section. */
  start: number | undefined;
  /** The type index of each defined function (the function section). */
  funcTypes: number[];
  /** Whether code was scanned (sites of loops, entries and calls in bodies exist). */
  codeScanned: boolean;
  bodies: Bodies;
  /** The `name` custom section: absent, decoded (its function indices are sites) or malformed. */
  names: 'absent' | 'decoded' | 'malformed';
}

const MAGIC = 0x6d736100; // "\0asm", little-endian

function readCount(r: Reader): Count {
  const pos = r.pos;
  const value = r.count();
  return { value, pos, width: r.pos - pos };
}

export interface DecodeOptions {
  /** Scan every function body (needed to insert yield points or hook memory.grow; capping memory alone does not). */
  code: boolean;
}

export function decodeModule(bytes: Uint8Array, options: DecodeOptions): DecodedModule {
  if (bytes.length < 8) throw new WasmDecodeError(0, 'too short for a Wasm module');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0, true) !== MAGIC) throw new WasmDecodeError(0, 'not a Wasm binary (bad magic)');
  const version = view.getUint32(4, true);
  if (version !== 1) {
    if (view.getUint16(6, true) === 1) throw new WasmUnsupportedError(4, 'component (a core module is needed)');
    throw new WasmDecodeError(4, `unknown binary version 0x${version.toString(16)}`);
  }
  // A Buffer's subarray() allocates a Buffer; a plain view is much cheaper to slice.
  if (Object.getPrototypeOf(bytes) !== Uint8Array.prototype) bytes = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // Code holds nearly all sites (about one per 40 bytes of it).
  const sites = new SiteList(options.code ? Math.max(64, bytes.length >> 5) : 64);
  const m: DecodedModule = {
    bytes,
    sections: [],
    sites,
    scan: { sites, importedFuncs: 0, calls: new EdgeList(), escapes: new Uint8Array(0), memory64: [], stateOps: 0 },
    types: undefined,
    imports: undefined,
    importedFuncs: 0,
    importedGlobals: 0,
    memories: [],
    globals: undefined,
    exports: undefined,
    start: undefined,
    funcTypes: [],
    codeScanned: options.code,
    bodies: newBodies(0),
    names: 'absent',
  };
  const r = new Reader(bytes, 8, bytes.length);
  let lastRank = -1;
  while (!r.done) {
    const start = r.pos;
    const id = r.u8();
    const sizePos = r.pos;
    const size = r.u32();
    const payloadStart = r.pos;
    if (size > r.end - payloadStart) r.fail(`section ${id} size ${size} runs past the end of the module`, sizePos);
    const end = payloadStart + size;
    const section: Section = { id, start, payloadStart, end };
    if (id !== SEC.custom) {
      const rank = sectionRank(id);
      if (rank < 0) throw new WasmUnsupportedError(start, `section id ${id}`);
      if (rank <= lastRank) r.fail(`section ${id} out of order or repeated`, start);
      lastRank = rank;
    }
    const mark = m.sites.length;
    m.sites.add(SIZE, sizePos, payloadStart - sizePos, size);
    const p = new Reader(bytes, payloadStart, end);
    if (id === SEC.custom) {
      section.name = p.name();
      if (section.name === 'name' && options.code) {
        try {
          decodeNames(m, p);
          m.names = 'decoded';
        } catch (err) {
          // A name section only feeds debuggers and stack traces, and engines
          // ignore a broken one; so do we, and the rewrite drops it.
          if (!(err instanceof WasmDecodeError || err instanceof WasmUnsupportedError)) throw err;
          m.sites.truncate(mark + 1);
          m.names = 'malformed';
        }
      }
      p.pos = end;
    } else {
      decodeSection(m, id, p);
      if (p.pos !== end) p.fail(`section ${id} has ${end - p.pos} bytes after its contents`);
    }
    m.sections.push(section);
    r.pos = end;
  }
  return m;
}

function decodeSection(m: DecodedModule, id: number, r: Reader): void {
  const sites = m.sites;
  switch (id) {
    case SEC.type:
      return decodeTypes(m, r);
    case SEC.import:
      return decodeImports(m, r);
    case SEC.function: {
      const n = r.count();
      for (let i = 0; i < n; i++) m.funcTypes.push(r.u32());
      m.scan.escapes = new Uint8Array(n);
      return;
    }
    case SEC.table: {
      const n = r.count();
      for (let i = 0; i < n; i++) {
        if (r.peek() === 0x40) {
          // a table with an initialiser expression (function references)
          r.pos++;
          if (r.u8() !== 0x00) r.fail('bad table initialiser prefix', r.pos - 1);
          skipTableType(r);
          scanExpression(r, m.scan, -1);
        } else {
          skipTableType(r);
        }
      }
      return;
    }
    case SEC.memory: {
      const n = r.count();
      for (let i = 0; i < n; i++) {
        const limits = readLimits(r);
        m.memories.push(limits);
        m.scan.memory64.push(is64(limits));
      }
      return;
    }
    case SEC.global: {
      const count = readCount(r);
      const types: GlobalType[] = [];
      for (let i = 0; i < count.value; i++) {
        types.push(readGlobalType(r));
        scanExpression(r, m.scan, -1);
      }
      m.globals = { count, types };
      return;
    }
    case SEC.export: {
      const count = readCount(r);
      const names = new Set<string>();
      for (let i = 0; i < count.value; i++) {
        names.add(r.name());
        const kind = r.u8();
        const pos = r.pos;
        const index = r.u32();
        if (kind === EXTERN.func) {
          addFunc(m, pos, r.pos, index);
          escape(m, index); // the host may put an export into a table
        }
      }
      m.exports = { count, names };
      return;
    }
    case SEC.start: {
      const pos = r.pos;
      const f = r.u32();
      addFunc(m, pos, r.pos, f);
      m.start = f;
      return;
    }
    case SEC.element:
      return decodeElements(m, r);
    case SEC.code:
      if (!m.codeScanned) {
        r.pos = r.end;
        return;
      }
      return decodeCode(m, r);
    default:
      // data, data count, tag: nothing in them changes.
      r.pos = r.end;
  }
}

/** A function index that moves when an import is added: any but an import's. */
function addFunc(m: DecodedModule, start: number, end: number, f: number): void {
  if (f >= m.importedFuncs) m.sites.add(FUNC, start, end - start, f);
}

/** A defined function that indirect calls can reach. */
function escape(m: DecodedModule, f: number): void {
  const i = f - m.importedFuncs;
  if (i >= 0 && i < m.scan.escapes.length) m.scan.escapes[i] = 1;
}

function decodeTypes(m: DecodedModule, r: Reader): void {
  const count = readCount(r);
  let emptyFuncType = -1;
  const paramCounts: number[] = [];
  for (let i = 0; i < count.value; i++) {
    const at = r.pos;
    const form = r.u8();
    if (form !== 0x60) {
      const gc = form === 0x4e || form === 0x50 || form === 0x4f || form === 0x5e || form === 0x5f;
      if (gc) throw new WasmUnsupportedError(at, `GC type definition 0x${form.toString(16)}`);
      r.fail(`unknown type form 0x${form.toString(16)}`, at);
    }
    const params = r.count();
    for (let j = 0; j < params; j++) skipValType(r);
    const results = r.count();
    for (let j = 0; j < results; j++) skipValType(r);
    if (params === 0 && results === 0 && emptyFuncType < 0) emptyFuncType = i;
    paramCounts.push(params);
  }
  m.types = { count, emptyFuncType, params: paramCounts };
}

function decodeImports(m: DecodedModule, r: Reader): void {
  const count = readCount(r);
  const entries: Import[] = [];
  for (let i = 0; i < count.value; i++) {
    const module = r.name();
    const name = r.name();
    const at = r.pos;
    const kind = r.u8();
    const entry: Import = { module, name, kind };
    switch (kind) {
      case EXTERN.func:
        entry.typeIndex = r.u32();
        m.importedFuncs++;
        break;
      case EXTERN.table:
        skipTableType(r);
        break;
      case EXTERN.memory:
        entry.limits = readLimits(r);
        m.scan.memory64.push(is64(entry.limits));
        break;
      case EXTERN.global:
        readGlobalType(r);
        m.importedGlobals++;
        break;
      case EXTERN.tag:
        if (r.u8() !== 0x00) r.fail('bad tag attribute', r.pos - 1);
        r.u32();
        break;
      default:
        throw new WasmUnsupportedError(at, `import kind 0x${kind.toString(16)}`);
    }
    entries.push(entry);
  }
  m.imports = { count, entries };
  m.scan.importedFuncs = m.importedFuncs;
}

function decodeElements(m: DecodedModule, r: Reader): void {
  const sites = m.sites;
  const n = r.count();
  for (let i = 0; i < n; i++) {
    const at = r.pos;
    const flags = r.u32();
    if (flags > 7) r.fail(`unknown element segment flags ${flags}`, at);
    const active = (flags & 1) === 0;
    const explicitTable = (flags & 2) !== 0;
    const usesExpressions = (flags & 4) !== 0;
    if (active && explicitTable) r.u32(); // table index
    if (active) scanExpression(r, m.scan, -1); // offset
    if (!active || explicitTable) {
      if (usesExpressions) skipValType(r); // reference type
      else if (r.u8() !== 0x00) r.fail('unknown element kind', r.pos - 1);
    }
    const items = r.count();
    for (let j = 0; j < items; j++) {
      if (usesExpressions) {
        scanExpression(r, m.scan, -1);
      } else {
        const pos = r.pos;
        const f = r.u32();
        addFunc(m, pos, r.pos, f);
        escape(m, f);
      }
    }
  }
}

function newBodies(count: number): Bodies {
  return {
    count,
    groups: new Float64Array(count),
    firstFreeLocal: new Float64Array(count),
    loops: new Uint32Array(count),
    callsIndirect: new Uint8Array(count),
    mayRecurse: new Uint8Array(count),
    hasTryTable: new Uint8Array(count),
    bulk: new Uint32Array(count),
    grows: new Uint32Array(count),
  };
}

function decodeCode(m: DecodedModule, r: Reader): void {
  const sites = m.sites;
  const countAt = r.pos;
  const n = r.count();
  if (n !== m.funcTypes.length) r.fail(`${n} function bodies for ${m.funcTypes.length} functions`, countAt);
  const params = m.types?.params ?? [];
  const bodies = (m.bodies = newBodies(n));
  const b = new Reader(r.bytes, 0, 0);
  for (let i = 0; i < n; i++) {
    const sizePos = r.pos;
    const size = r.u32();
    const bodyStart = r.pos;
    if (size > r.end - bodyStart) r.fail(`function body ${i} size ${size} runs past the code section`, sizePos);
    const bodyEnd = bodyStart + size;
    const firstSite = sites.add(SIZE, sizePos, bodyStart - sizePos, size);
    b.pos = bodyStart;
    b.end = bodyEnd;
    const groups = b.count();
    sites.add(LOCALS, bodyStart, b.pos - bodyStart, i);
    const paramCount = params[m.funcTypes[i]!];
    if (paramCount === undefined) r.fail(`function ${i} has unknown type ${m.funcTypes[i]}`, bodyStart);
    let locals = paramCount;
    for (let j = 0; j < groups; j++) {
      locals += b.u32();
      skipValType(b);
    }
    sites.add(ENTRY, b.pos, 0, i);
    const facts = scanExpression(b, m.scan, i);
    if (b.pos !== bodyEnd) b.fail(`function body ${i} has ${bodyEnd - b.pos} bytes after its end`);
    bodies.groups[i] = groups;
    bodies.firstFreeLocal[i] = locals;
    bodies.loops[i] = facts.loops;
    bodies.callsIndirect[i] = facts.callsIndirect ? 1 : 0;
    bodies.hasTryTable[i] = facts.hasTryTable ? 1 : 0;
    bodies.bulk[i] = facts.bulk;
    bodies.grows[i] = facts.grows;
    if (!keepsLocalCounter(bodies, i)) sites.dropSyncs(firstSite);
    r.pos = bodyEnd;
  }
  bodies.mayRecurse = onCycle(n, m.scan.calls, bodies.callsIndirect, m.scan.escapes);
}

// The name section (and its extended subsections): function names (1), local
// names (2) and label names (3) are keyed by function index; the others
// (module, types, tables, memories, globals, …) are not and stay as they are.
function decodeNames(m: DecodedModule, r: Reader): void {
  const sites = m.sites;
  while (!r.done) {
    const id = r.u8();
    const sizePos = r.pos;
    const size = r.u32();
    const start = r.pos;
    if (size > r.end - start) r.fail(`name subsection ${id} runs past its section`, sizePos);
    sites.add(SIZE, sizePos, start - sizePos, size);
    const s = new Reader(r.bytes, start, start + size);
    if (id === 1 || id === 2 || id === 3) {
      const n = s.count();
      for (let i = 0; i < n; i++) {
        const pos = s.pos;
        const f = s.u32();
        addFunc(m, pos, s.pos, f);
        if (id === 1) {
          s.byteString();
        } else {
          const locals = s.count();
          for (let j = 0; j < locals; j++) {
            s.u32();
            s.byteString();
          }
        }
      }
      if (!s.done) s.fail(`name subsection ${id} has bytes after its contents`);
    }
    r.pos = start + size;
  }
}
