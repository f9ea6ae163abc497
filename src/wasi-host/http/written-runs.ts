// The runs of pages a memory's watch lists as written (written-pages.ts,
// image-pages.ts), as a reset uses them: filled by a scan, copied back over,
// and measured against what one request wrote.

/**
 * Pages written since they were last protected (or given back to the
 * image) may outgrow twice one request's by this much before they are
 * again: a guest that writes other pages each time is not left copying back
 * all it ever wrote.
 */
export const REGROW_SLACK = 16 * 4096;

/** One memory's runs of written pages: byte offsets, in pairs, and their total. */
export class WrittenRuns {
  readonly list: number[] = [];
  bytes = 0;
  // One function for every scan, not a closure per reset.
  readonly #add = (from: number, to: number): void => {
    this.list.push(from, to);
    this.bytes += to - from;
  };

  /** Empties them; what to hand the scan that fills them again. */
  restart(): (from: number, to: number) => void {
    this.list.length = 0;
    this.bytes = 0;
    return this.#add;
  }

  /** Copies `saved` back over `view` in each run. */
  copy(view: Uint8Array, saved: Uint8Array): void {
    const runs = this.list;
    for (let i = 0; i < runs.length; i += 2) view.set(saved.subarray(runs[i]!, runs[i + 1]!), runs[i]!);
  }

  /** Have they outgrown twice `oneRequest` bytes, and REGROW_SLACK? */
  outgrew(oneRequest: number): boolean {
    return this.bytes > 2 * oneRequest + REGROW_SLACK;
  }
}
