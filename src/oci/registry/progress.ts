// Progress of pulls and pushes, per blob: redrawn lines of bytes on a
// terminal (stderr), JSON lines with --log-format json (for supervisors),
// and nothing at all when stderr is not a terminal.

export interface Progress {
  /** A blob we are about to move; `label` says what it is ("layer", "config"). */
  start(digest: string, label: string, total: number): void;
  advance(digest: string, bytes: number): void;
  /** "done", "exists", "mounted", "cached", "failed". */
  finish(digest: string, status: string): void;
  /** Stops redrawing (always call, also on failure). */
  close(): void;
}

export type ProgressFormat = 'text' | 'json';

interface Row {
  digest: string;
  label: string;
  total: number;
  current: number;
  status: string;
  lastJson: number;
}

const REDRAW_MS = 100;
const JSON_INTERVAL_MS = 500;

function mib(n: number): string {
  return n >= 1024 * 1024 ? `${(n / (1024 * 1024)).toFixed(1)} MiB` : `${(n / 1024).toFixed(1)} KiB`;
}

const short = (digest: string) => digest.replace(/^sha256:/, '').slice(0, 12);

class Silent implements Progress {
  start(): void {}
  advance(): void {}
  finish(): void {}
  close(): void {}
}

class Rows implements Progress {
  protected rows = new Map<string, Row>();
  start(digest: string, label: string, total: number): void {
    if (!this.rows.has(digest)) this.rows.set(digest, { digest, label, total, current: 0, status: 'waiting', lastJson: 0 });
    this.changed(this.rows.get(digest) as Row);
  }
  advance(digest: string, bytes: number): void {
    const r = this.rows.get(digest);
    if (!r) return;
    r.current += bytes;
    r.status = 'moving';
    this.changed(r);
  }
  finish(digest: string, status: string): void {
    const r = this.rows.get(digest);
    if (!r) return;
    r.status = status;
    if (status === 'done') r.current = r.total;
    this.changed(r, true);
  }
  close(): void {}
  protected changed(_r: Row, _final = false): void {}
}

class Terminal extends Rows {
  private drawn = 0;
  private timer: NodeJS.Timeout | undefined;
  constructor(
    private readonly out: NodeJS.WriteStream,
    private readonly verb: string,
  ) {
    super();
  }
  protected override changed(_r: Row, final = false): void {
    if (final) this.draw();
    else this.timer ??= setTimeout(() => this.draw(), REDRAW_MS);
  }
  private line(r: Row): string {
    const state = r.status === 'moving' ? this.verb : r.status;
    const bytes = r.status === 'moving' ? `${mib(r.current)} / ${mib(r.total)}` : mib(r.total);
    return `${short(r.digest)}  ${r.label.padEnd(8)} ${state.padEnd(11)} ${bytes}`;
  }
  private draw(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    let s = this.drawn ? `\x1b[${this.drawn}A` : '';
    for (const r of this.rows.values()) s += `\x1b[2K${this.line(r)}\n`;
    this.drawn = this.rows.size;
    this.out.write(s);
  }
  override close(): void {
    if (this.rows.size) this.draw();
  }
}

class JsonLines extends Rows {
  constructor(
    private readonly out: NodeJS.WritableStream,
    private readonly action: string,
  ) {
    super();
  }
  protected override changed(r: Row, final = false): void {
    const now = Date.now();
    if (!final && r.status !== 'waiting' && now - r.lastJson < JSON_INTERVAL_MS) return;
    r.lastJson = now;
    const status = r.status === 'moving' ? this.action : r.status;
    this.out.write(JSON.stringify({ time: new Date(now).toISOString(), action: this.action, digest: r.digest, kind: r.label, status, current: r.current, total: r.total }) + '\n');
  }
}

/**
 * `action` is "pull" or "push". Text progress is drawn only when `out` is a
 * terminal; JSON lines are written whatever it is.
 */
export function createProgress(format: ProgressFormat, action: 'pull' | 'push', out: NodeJS.WriteStream = process.stderr): Progress {
  if (format === 'json') return new JsonLines(out, action);
  if (out.isTTY) return new Terminal(out, action === 'pull' ? 'downloading' : 'uploading');
  return new Silent();
}

export const silentProgress: Progress = new Silent();
