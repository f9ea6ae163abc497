// The reps behind the handles of resources the host lowers itself (abi.ts):
//
//   [1, 2^28)        not ours: jco's own counters, preview2-shim's IO ids
//   [2^28, 2^29)     our resources, held here until the guest drops or
//                    passes its handle, or until its instance is let go
//   [2^29, 2^30)     preview2-shim's streams (files, stdout, sockets) that
//                    reached the guest through jco's own glue: named here
//                    weakly, jco's glue holds them
//
// A rep is reused once freed, so the numbers stay small and jco's
// per-table sets of reps stay bounded however long an instance lives.
import { CABI_REP, type ResourceHost } from './abi.js';

const OURS = 1 << 28;
const FOREIGN = 1 << 29;
const LIMIT = 1 << 30;

/** Is `rep` one of the resources held here (made by `add`)? */
export function isOurs(rep: number): boolean {
  return rep >= OURS && rep < FOREIGN;
}

/**
 * An instance, as the owner of the reps made for it: they are released
 * together when the instance is let go. A token, not a set of its reps: a
 * set's inserts and deletes on every resource reallocated its table, garbage
 * that outlived young-generation collections (measured).
 */
export type RepScope = object;

export class Reps implements ResourceHost {
  readonly #objects: (object | undefined)[] = [];
  readonly #types: (string | undefined)[] = [];
  readonly #scopes: (RepScope | undefined)[] = [];
  readonly #free: number[] = [];
  readonly #foreign = new ForeignReps();
  /** The instance whose functions are being lowered (set around instantiation). */
  scope: RepScope | undefined;
  /** A rep below 2^28 of this type: preview2-shim's own (its pollables carry IO ids). */
  readonly #native = new Map<string, (rep: number) => object>();

  /** How to stand for a resource of type `res` that preview2-shim made with a rep of its own. */
  native(res: string, make: (rep: number) => object): void {
    this.#native.set(res, make);
  }

  add(obj: object, res: string, scope: RepScope | undefined = this.scope): number {
    let i = this.#free.pop();
    if (i === undefined) {
      i = this.#objects.length;
      if (OURS + i >= FOREIGN) throw new WebAssembly.RuntimeError('too many live resources');
    }
    this.#objects[i] = obj;
    this.#types[i] = res;
    this.#scopes[i] = scope;
    return OURS + i;
  }

  typeOf(rep: number): string | undefined {
    if (rep >= FOREIGN) return this.#foreign.typeOf(rep);
    if (rep >= OURS) return this.#types[rep - OURS];
    return undefined;
  }

  get(rep: number, res: string): object {
    if (rep >= FOREIGN) return this.#foreign.get(rep, res);
    if (rep < OURS) {
      const make = this.#native.get(res);
      if (make) return make(rep);
      throw new WebAssembly.RuntimeError(`unknown ${res} resource (rep ${rep})`);
    }
    const i = rep - OURS;
    const obj = this.#objects[i];
    if (obj === undefined || this.#types[i] !== res) throw new WebAssembly.RuntimeError(`unknown ${res} resource (rep ${rep})`);
    return obj;
  }

  take(rep: number, res: string): object {
    const obj = this.get(rep, res);
    this.release(rep);
    return obj;
  }

  release(rep: number): void {
    if (rep < OURS || rep >= FOREIGN) return;
    const i = rep - OURS;
    if (this.#objects[i] === undefined) return;
    this.#objects[i] = this.#types[i] = this.#scopes[i] = undefined;
    this.#free.push(i);
  }

  /** The instance `rep` was made for (undefined for none, or a rep not held here). */
  scopeOf(rep: number): RepScope | undefined {
    return isOurs(rep) ? this.#scopes[rep - OURS] : undefined;
  }

  /** An instance is let go: what its guest never dropped goes too. */
  releaseScope(scope: RepScope): void {
    // Rare (an instance's end) and over the reps alive at once: a scan is enough.
    for (let i = 0; i < this.#scopes.length; i++) if (this.#scopes[i] === scope) this.release(OURS + i);
  }

  /** Live resources (for tests and stats). */
  get live(): number {
    return this.#objects.length - this.#free.length;
  }

  /**
   * Gives the instances of preview2-shim's class `cls` a rep in the foreign
   * range when jco's glue asks for one (`[Symbol.for('cabiRep')]`).
   */
  nameForeign(cls: { prototype: object }, res: string): void {
    const foreign = this.#foreign;
    if (Object.prototype.hasOwnProperty.call(cls.prototype, CABI_REP)) return;
    Object.defineProperty(cls.prototype, CABI_REP, {
      configurable: true,
      get(this: object) {
        return foreign.repOf(this, res);
      },
    });
  }
}

/** preview2-shim's objects that jco's glue handed out with a rep of ours: weakly, the glue holds them. */
class ForeignReps {
  readonly #refs = new Map<number, { ref: WeakRef<object>; res: string }>();
  readonly #reps = new WeakMap<object, number>();
  readonly #free: number[] = [];
  #next = FOREIGN;
  readonly #gone = new FinalizationRegistry<number>((rep) => {
    this.#refs.delete(rep);
    this.#free.push(rep);
  });

  repOf(obj: object, res: string): number {
    let rep = this.#reps.get(obj);
    if (rep !== undefined) return rep;
    rep = this.#free.pop() ?? this.#next++;
    if (rep >= LIMIT) throw new WebAssembly.RuntimeError('too many live resources');
    this.#reps.set(obj, rep);
    this.#refs.set(rep, { ref: new WeakRef(obj), res });
    this.#gone.register(obj, rep);
    return rep;
  }

  typeOf(rep: number): string | undefined {
    return this.#refs.get(rep)?.res;
  }

  get(rep: number, res: string): object {
    const e = this.#refs.get(rep);
    const obj = e?.ref.deref();
    if (!obj || e!.res !== res) throw new WebAssembly.RuntimeError(`unknown ${res} resource (rep ${rep})`);
    return obj;
  }
}

/**
 * Objects held while they are in use, in reusable slots of one array.
 *
 * Why not a Set: a long-lived Set (or Map) that gains and loses an entry for
 * every request rebuilds its hash table now and then, and the tables it
 * leaves behind, already in the old generation, still point at the
 * entries; until the next full collection they keep those young objects
 * alive through every young-generation collection (measured: with three
 * such sets a handler thread promoted ~3 KB per request, native Node ~0.1
 * KB, and each scavenge took 10-25 ms). An array's cleared slot points at
 * nothing.
 */
export class SlotList<T> {
  readonly #items: (T | undefined)[] = [];
  readonly #free: number[] = [];

  add(item: T): number {
    const slot = this.#free.pop() ?? this.#items.length;
    this.#items[slot] = item;
    return slot;
  }

  remove(slot: number): void {
    if (this.#items[slot] === undefined) return;
    this.#items[slot] = undefined;
    this.#free.push(slot);
  }

  forEach(fn: (item: T) => void): void {
    for (const item of this.#items) if (item !== undefined) fn(item);
  }
}
