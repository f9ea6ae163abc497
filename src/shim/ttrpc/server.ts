// ttrpc server (ttrpc v1.1.1 semantics): services are registered as
// name → method → handler; each accepted connection is a ServerConnection.
import { chmod } from 'node:fs/promises';
import * as net from 'node:net';
import { log } from '../../log.js';
import { type CallContext, type Handler, ServerConnection } from './connection.js';
import { Code, MSG, TtrpcError } from './status.js';

export type { CallContext, Handler };

export class TtrpcServer {
  // Maps, not objects: service and method names come from the peer, and
  // "constructor" or "__proto__" must not resolve to anything.
  private readonly services = new Map<string, Map<string, Handler>>();
  private readonly conns = new Set<ServerConnection>();
  private readonly closedCbs: (() => void)[] = [];
  private server: net.Server | undefined;
  private closing = false;

  register(service: string, methods: Record<string, Handler>): void {
    if (this.services.has(service)) throw new Error(`duplicate service ${service} registered`);
    this.services.set(service, new Map(Object.entries(methods)));
  }

  /**
   * Serve on an already-listening net.Server (e.g. the socket inherited as
   * fd 3), or on a new unix socket at `path`, made mode 0600 (the socket is
   * the shim's only access control: Node cannot check SO_PEERCRED). An
   * existing file at `path` is an error (EADDRINUSE): callers decide whether
   * it is a live shim or stale.
   */
  async listen(pathOrServer: string | net.Server): Promise<void> {
    if (this.server) throw new Error('ttrpc server already listening');
    let srv: net.Server;
    if (typeof pathOrServer === 'string') {
      srv = net.createServer();
      await new Promise<void>((resolve, reject) => {
        srv.once('error', reject);
        srv.listen(pathOrServer, () => {
          srv.off('error', reject);
          resolve();
        });
      });
      if (!pathOrServer.startsWith('\0')) await chmod(pathOrServer, 0o600);
    } else {
      srv = pathOrServer;
    }
    this.server = srv;
    // accept() failures (EMFILE…) must not crash the shim.
    srv.on('error', (err) => log().warn({ err }, 'ttrpc: server error'));
    srv.on('connection', (socket) => this.accept(socket));
  }

  /** Stop accepting, abort in-flight calls, close every connection. */
  async close(): Promise<void> {
    this.closing = true;
    const srv = this.server;
    const serverClosed = new Promise<void>((resolve) => {
      if (!srv || !srv.listening) return resolve();
      srv.close(() => resolve()); // for a path socket, libuv unlinks the file
    });
    await Promise.all([...this.conns].map((c) => c.shutdown()));
    await serverClosed;
  }

  connections(): number {
    return this.conns.size;
  }

  onConnectionClosed(cb: () => void): void {
    this.closedCbs.push(cb);
  }

  private accept(socket: net.Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    const conn = new ServerConnection(
      socket,
      (s, m) => this.resolve(s, m),
      () => {
        this.conns.delete(conn);
        for (const cb of this.closedCbs) {
          try {
            cb();
          } catch (err) {
            log().warn({ err }, 'ttrpc: connection-closed callback failed');
          }
        }
      },
    );
    this.conns.add(conn);
  }

  private resolve(service: string, method: string): Handler | TtrpcError {
    const s = this.services.get(service);
    if (!s) return new TtrpcError(Code.UNIMPLEMENTED, MSG.unknownService(service));
    return s.get(method) ?? new TtrpcError(Code.UNIMPLEMENTED, MSG.unknownMethod(method));
  }
}
