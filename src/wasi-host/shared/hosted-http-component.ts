// An HTTP component guest of a shared host (pod and process isolation),
// served as at `container` level by ../http/: handler threads with their own
// HTTP server (../http/wire/) on the guest's port and their own pool of instances. The
// component comes from the host (its glue read through the cache entry's
// descriptor, its core modules instrumented and compiled by the host's
// cache), and its instances run under the guest's control array: pause
// waits at their yield points, memory grows within the guest's limit summed
// over all its threads, stats sum its threads (cores.ts).
//
// kill: SIGTERM/SIGINT stop accepting and let the requests in flight finish,
// then 128+N; any other signal that ends a guest stops the threads now
// (SIGKILL: 137).
import type { HttpService } from '../http/serve.js';
import { DEFAULT_HTTP_PORT, serveSettingsOf } from '../http/settings.js';
import { ComponentGuest, openComponent, say, type ComponentContext, type HostedComponentSpec, type OpenedComponent } from './hosted-component.js';
import { signalEndsGuest } from './signals.js';

const SIGINT = 2;
const SIGTERM = 15;

export class HostedHttpComponent extends ComponentGuest {
  private starting: Promise<void> | undefined;
  private service: HttpService | undefined;
  /** The signal that asked for a drain (it ends the guest once its requests are answered). */
  private draining: number | undefined;

  private constructor(
    opened: OpenedComponent,
    private readonly workerUrl: URL | string,
  ) {
    super(opened, opened.spec.args[0] ?? 'component');
  }

  static async prepare(given: HostedComponentSpec, ctx: ComponentContext): Promise<HostedHttpComponent> {
    const workerUrl = ctx.httpWorker;
    if (workerUrl === undefined) throw new Error('this host cannot serve HTTP components (no handler thread bundle)');
    return new HostedHttpComponent(await openComponent(given, ctx), workerUrl);
  }

  start(): void {
    if (this.starting || this.over) return;
    this.starting = this.serve();
  }

  private async serve(): Promise<void> {
    const { HttpStartError, serveHttpComponent } = await import('../http/serve.js');
    const { spec, code, view } = this.opened;
    const settings = serveSettingsOf(spec.port ?? DEFAULT_HTTP_PORT, spec);
    try {
      this.service = await serveHttpComponent(
        { kind: 'hosted', code, guest: view, ctl: this.ctl.buffer as SharedArrayBuffer },
        {
          ...settings,
          workerUrl: this.workerUrl,
          onRequestFailed: (message) => say(spec.stdio[2], `${this.name}: request failed (answered 500): ${message}`),
        },
      );
    } catch (err) {
      // Not awaited: the ending waits for this start to be over.
      void this.end(err instanceof HttpStartError ? err.outcome : { kind: 'error', message: `cannot serve HTTP on port ${settings.port}: ${(err as Error).message}` });
      return;
    }
    void this.service.failed.then((outcome) => this.end(outcome));
    // A SIGTERM that came while it started: drain now.
    if (this.draining !== undefined && !this.over) this.drainThenEnd(this.service, this.draining);
  }

  private drainThenEnd(service: HttpService, signal: number): void {
    void service.drain().then(() => this.end({ kind: 'signal', signal }));
  }

  kill(signal: number): void {
    if (!signalEndsGuest(signal) || this.over) return;
    if (signal === SIGTERM || signal === SIGINT) {
      if (this.draining !== undefined) return;
      this.draining = signal;
      if (this.service) this.drainThenEnd(this.service, signal);
      else if (!this.starting) void this.end({ kind: 'signal', signal });
      return;
    }
    void this.end({ kind: 'signal', signal });
  }

  /** The threads read the guest's descriptors: they are stopped (a start in progress first settles) before those close. */
  protected async halt(): Promise<void> {
    await this.starting;
    await this.service?.stop();
  }
}
