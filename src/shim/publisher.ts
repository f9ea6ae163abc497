// Publishes task events to containerd: Events.Forward over a ttrpc client to
// $TTRPC_ADDRESS, one FIFO queue (ordering: Create → Start → Exit → Delete),
// each Forward with a 5 s timeout, up to 5 retries with a growing delay,
// reconnecting when the connection is gone. publish() never blocks or throws:
// task operations must not wait on containerd's event service.
import type { DescMessage, MessageInitShape } from '@bufbuild/protobuf';
import { log } from '../log.js';
import { Events, eventTopic, packAny, timestampNow } from './proto/index.js';
import { callMethod, TtrpcClient } from './ttrpc/index.js';

export interface EventSink {
  publish<D extends DescMessage>(schema: D, event: MessageInitShape<D>): void;
}

interface Queued {
  topic: string;
  schema: DescMessage;
  event: MessageInitShape<DescMessage>;
  timestamp: ReturnType<typeof timestampNow>;
}

const QUEUE_MAX = 2048;
const FORWARD_TIMEOUT_MS = 5000;
const MAX_RETRIES = 5;

export class Publisher implements EventSink {
  private readonly queue: Queued[] = [];
  private client: TtrpcClient | undefined;
  private running = false;
  private closed = false;
  private idle: (() => void)[] = [];

  constructor(
    private readonly address: string,
    private readonly namespace: string,
    private readonly retryDelayMs = 1000,
  ) {}

  publish<D extends DescMessage>(schema: D, event: MessageInitShape<D>): void {
    if (this.closed) {
      log().warn({ type: schema.typeName }, 'publisher closed: event dropped');
      return;
    }
    if (this.queue.length >= QUEUE_MAX) {
      log().error({ type: schema.typeName }, 'event queue full: event dropped');
      return;
    }
    this.queue.push({ topic: eventTopic(schema), schema, event: event as MessageInitShape<DescMessage>, timestamp: timestampNow() });
    if (!this.running) void this.run();
  }

  /** Stop accepting events; resolves when the queue drained or after `timeoutMs`. */
  async close(timeoutMs = 5000): Promise<void> {
    this.closed = true;
    if (this.running) {
      await Promise.race([new Promise<void>((r) => this.idle.push(r)), new Promise<void>((r) => setTimeout(r, timeoutMs).unref())]);
    }
    this.client?.close();
    this.client = undefined;
  }

  private async connection(): Promise<TtrpcClient> {
    if (this.client) return this.client;
    const c = await TtrpcClient.connect(this.address);
    c.onClose(() => {
      if (this.client === c) this.client = undefined;
    });
    this.client = c;
    return c;
  }

  private async run(): Promise<void> {
    this.running = true;
    try {
      for (let item = this.queue.shift(); item; item = this.queue.shift()) await this.send(item);
    } finally {
      this.running = false;
      for (const r of this.idle.splice(0)) r();
    }
  }

  private async send(item: Queued): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        const c = await this.connection();
        await callMethod(
          c,
          Events.method.forward,
          {
            envelope: {
              timestamp: item.timestamp,
              namespace: this.namespace,
              topic: item.topic,
              event: packAny(item.schema, item.event),
            },
          },
          { timeoutMs: FORWARD_TIMEOUT_MS, metadata: { 'containerd-namespace-ttrpc': this.namespace } },
        );
        log().debug({ topic: item.topic }, 'event forwarded');
        return;
      } catch (err) {
        if (attempt >= MAX_RETRIES) {
          log().error({ err, topic: item.topic }, 'event dropped after retries');
          return;
        }
        this.client?.close();
        this.client = undefined;
        log().warn({ err, topic: item.topic, attempt }, 'event forward failed; retrying');
        await new Promise((r) => setTimeout(r, this.retryDelayMs * (attempt + 1)));
      }
    }
  }
}
