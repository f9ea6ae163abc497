// One process of a task (a container's init, or an exec) as the shim tracks
// it, with an explicit state machine:
//
//   created ──start──▶ running ──pause──▶ paused
//      │                 │  ◀──resume───   │
//      │ (dies)          └──── exit ───────┴──▶ stopped ──delete──▶ deleted
//      └──────────── delete (never started) ─────────────────────────▲
//
// An illegal transition is FailedPrecondition; anything asked of a deleted
// process is NotFound. Every call on one process runs under its lock (as
// containerd's process mutex), exit handling included, so a Delete can never
// slip between a Start and its TaskExecStarted, and TaskExit always follows
// TaskStart.
import { FailedPreconditionError, NotFoundError } from '../errors.js';
import type { ProcessHandle } from '../linux-runtime/engine.js';
import type { Exit } from '../linux-runtime/reaper.js';
import type { Process as OciProcess } from '../oci/runtime-spec.js';
import { Status } from './proto/index.js';
import type { ProcessIO } from './stdio.js';

export type ProcessState = 'created' | 'running' | 'paused' | 'stopped' | 'deleted';

/** What a call may do, from which states (an exit is recordExit: from anything but deleted). */
const TRANSITIONS = {
  start: { from: ['created'], to: 'running' },
  pause: { from: ['running'], to: 'paused' },
  resume: { from: ['paused'], to: 'running' },
  kill: { from: ['created', 'running', 'paused'], to: undefined },
  delete: { from: ['created', 'stopped'], to: 'deleted' },
} as const satisfies Record<string, { from: readonly ProcessState[]; to: ProcessState | undefined }>;

export type Verb = keyof typeof TRANSITIONS;

const STATUS: Record<ProcessState, Status> = {
  created: Status.CREATED,
  running: Status.RUNNING,
  paused: Status.PAUSED,
  stopped: Status.STOPPED,
  deleted: Status.STOPPED,
};

/** Calls run one at a time, in arrival order. */
export class Mutex {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(fn: () => Promise<T> | T): Promise<T> {
    const result = this.tail.then(fn);
    this.tail = result.catch(() => undefined);
    return result;
  }
}

/** containerd's stdio paths of a process (FIFOs or file:// URIs). */
export interface ProcessStdioPaths {
  stdin: string;
  stdout: string;
  stderr: string;
  terminal: boolean;
}

export class Process {
  private current: ProcessState = 'created';
  pid = 0;
  exitStatus = 0;
  exitedAt: number | undefined;
  io: ProcessIO | undefined;
  handle: ProcessHandle | undefined;
  /** Resolves once the exit is recorded (Wait). */
  readonly exited: Promise<void>;
  private markExited!: () => void;
  private readonly lock = new Mutex();

  constructor(
    readonly containerId: string,
    /** '' for the init. */
    readonly execId: string,
    readonly stdio: ProcessStdioPaths,
    /** An exec's process spec (from the Exec request). */
    readonly spec?: OciProcess,
  ) {
    this.exited = new Promise((resolve) => (this.markExited = resolve));
  }

  /** The task id containerd knows it by: the container id for the init, else the exec id. */
  get id(): string {
    return this.execId || this.containerId;
  }

  get state(): ProcessState {
    return this.current;
  }

  get status(): Status {
    return STATUS[this.current];
  }

  /** Runs `fn` once no other call on this process is running. */
  serialized<T>(fn: () => Promise<T> | T): Promise<T> {
    return this.lock.run(fn);
  }

  /**
   * Throws unless `verb` may happen in the current state: NotFound for a
   * deleted process (and for killing a stopped one, as containerd answers),
   * FailedPrecondition otherwise.
   */
  check(verb: Verb): void {
    if (this.current === 'deleted') throw new NotFoundError(`process does not exist ${this.id}`);
    if (verb === 'kill' && this.current === 'stopped') throw new NotFoundError('process already finished');
    if (!(TRANSITIONS[verb].from as readonly ProcessState[]).includes(this.current)) {
      throw new FailedPreconditionError(`cannot ${verb} a ${this.current} process`);
    }
  }

  /** check(verb), then move to the verb's state. */
  transition(verb: Verb): void {
    this.check(verb);
    const to = TRANSITIONS[verb].to;
    if (to !== undefined) this.current = to;
  }

  /** Records the process's end once; false when it was recorded already. */
  recordExit(e: Exit): boolean {
    if (this.exitedAt !== undefined) return false;
    if (this.current !== 'deleted') this.current = 'stopped';
    this.exitStatus = e.status;
    this.exitedAt = e.at;
    this.markExited();
    return true;
  }
}
