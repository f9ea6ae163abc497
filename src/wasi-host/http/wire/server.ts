// A handler thread's HTTP/1.1 server: node:net's listener (SO_REUSEPORT,
// shared by the threads) and, per connection, Node's own parser without
// node:http's message objects (connection.ts). node:http's server costs
// more CPU a request than the guest's whole handler does: measured on this
// VM (wrk, 32 connections, one Node thread answering a fixed body), 20 µs a
// request and ~48k req/s for node:http, 11 µs and ~84k req/s for its parser
// alone. The wire format, the parser's strictness and limits, and the
// timeouts are node:http's (llhttp.ts, connection.ts).
import { createServer, type AddressInfo, type Server } from 'node:net';
import { Connection, NODE_TIMEOUTS, type ConnectionHost, type WireTimeouts } from './connection.js';
import type { WireRequest } from './request.js';
import { tickDate, type WireResponse } from './response.js';

export interface WireListen {
  port: number;
  host?: string;
}

export class WireServer implements ConnectionHost {
  readonly #net: Server;
  readonly #connections = new Set<Connection>();
  readonly #onRequest: (req: WireRequest, res: WireResponse) => void;
  #ticks = 0;
  #draining = false;
  readonly #tick: NodeJS.Timeout;
  readonly timeouts: WireTimeouts;

  constructor(onRequest: (req: WireRequest, res: WireResponse) => void, timeouts: WireTimeouts = NODE_TIMEOUTS) {
    this.#onRequest = onRequest;
    this.timeouts = timeouts;
    // Half-open allowed: a client that ends its side after the request still gets the answer.
    this.#net = createServer({ noDelay: true, allowHalfOpen: true }, (socket) => {
      this.#connections.add(new Connection(socket, this));
    });
    this.#tick = setInterval(() => {
      this.#ticks++;
      tickDate();
      for (const c of this.#connections) c.tick(this.#ticks);
    }, 1000).unref();
  }

  get ticks(): number {
    return this.#ticks;
  }
  get draining(): boolean {
    return this.#draining;
  }
  onRequest(req: WireRequest, res: WireResponse): void {
    this.#onRequest(req, res);
  }
  gone(conn: Connection): void {
    this.#connections.delete(conn);
  }

  /** Listens on the port shared by every handler thread (SO_REUSEPORT: the kernel spreads the connections). */
  listen(at: WireListen): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#net.once('error', reject);
      this.#net.listen({ port: at.port, ...(at.host ? { host: at.host } : {}), reusePort: true }, () => {
        this.#net.off('error', reject);
        resolve();
      });
    });
  }

  get port(): number {
    return (this.#net.address() as AddressInfo).port;
  }

  /** Accepts no more connections; those with nothing in flight end now, the others after their answer. */
  drain(): void {
    this.#draining = true;
    this.#net.close();
    for (const c of this.#connections) c.drain();
  }

  /** Ends every connection now. */
  close(): void {
    this.#draining = true;
    this.#net.close();
    clearInterval(this.#tick);
    for (const c of this.#connections) c.destroy();
  }
}
