// The guest's resource drops of our own resources, in place of jco's.
//
// jco's glue imports each `[resource-drop]T` as a trampoline wrapped in
// `_guardMayLeave` (rest arguments and an `apply` per call) whose table
// removal allocates a record: measured ~1.6 µs and ~200 bytes of a request
// (a request drops ~10 handles). An owned handle of a resource we made
// (reps.ts: our range) is removed from jco's table here, as jco's glue
// would, and the resource disposed. Anything else (a borrow, with jco's
// borrow bookkeeping; a rep of jco's or preview2-shim's; a table whose role
// is unknown) goes to jco's own trampoline.
import { FLAG, tableRemove, type HandleTable, type TableRoles } from './abi.js';
import { isOurs } from './reps.js';

/** The interfaces whose resources we lower (types.ts, io.ts). */
const OURS = /^wasi:(http\/types|io\/(streams|poll|error))@0\.2\.\d+$/;
const DROP = /^\[resource-drop\](.+)$/;

type Drop = (handle: number) => void;

/** Where a drop finds its table: known once the instance's lowered functions have told the tables apart. */
interface TableRef {
  table: HandleTable | undefined;
}

/** A drop of `ref`'s table's owned handles of our resources; `slow` (jco's) for every other handle, and while the table is unknown. */
export function fastDrop(ref: TableRef, dispose: (rep: number) => void, slow: Drop): Drop {
  return (handle: number) => {
    const table = ref.table;
    if (table !== undefined) {
      const val = table[(handle << 1) + 1];
      // An owned handle (flagged rep), not lent out (scope 0), of a slot in use (its first word unflagged: 0).
      if (handle > 0 && table[handle << 1] === 0 && val !== undefined && (val & FLAG) !== 0 && isOurs(val & ~FLAG)) {
        dispose(tableRemove(table, handle));
        return;
      }
    }
    slow(handle);
  };
}

/**
 * The drops of one instance. jco's glue gives a core module its imports
 * before it has lowered every function of ours (some are lowered once the
 * instance's memory exists), so a drop's table is looked up when the
 * instance is made (`resolve`), not when its import is.
 */
export class InstanceDrops {
  readonly #pending: { res: string; ref: TableRef }[] = [];
  readonly #dispose: (rep: number) => void;
  constructor(dispose: (rep: number) => void) {
    this.#dispose = dispose;
  }

  /** The imports of a core module with our drops in place of jco's. A copy: jco's object is left as it was. */
  adjust(imports: WebAssembly.Imports | undefined): WebAssembly.Imports | undefined {
    if (!imports) return imports;
    let out: WebAssembly.Imports | undefined;
    for (const [module, fields] of Object.entries(imports)) {
      if (!OURS.test(module) || typeof fields !== 'object' || fields === null) continue;
      let replaced: Record<string, unknown> | undefined;
      for (const [name, value] of Object.entries(fields)) {
        const m = DROP.exec(name);
        if (!m || typeof value !== 'function') continue;
        const ref: TableRef = { table: undefined };
        this.#pending.push({ res: m[1]!, ref });
        replaced ??= { ...fields };
        replaced[name] = fastDrop(ref, this.#dispose, value as Drop);
      }
      if (replaced) (out ??= { ...imports })[module] = replaced as WebAssembly.Imports[string];
    }
    return out ?? imports;
  }

  /** The instance is made: each drop learns its table, where the roles tell it (else it stays jco's). */
  resolve(roles: TableRoles): void {
    for (const { res, ref } of this.#pending.splice(0)) ref.table = roles.tableFor(res);
  }
}
