// sock_* on sockets the host preopened for the guest (listening sockets
// handed over as descriptors, as wasmtime's --tcplisten does) and on the
// connections accepted from them.
import type { Server, Socket } from 'node:net';
import { E, FDFLAGS, FILETYPE, R, RIFLAGS, SDFLAGS } from './abi.js';
import type { Ctx, Entry, WasiFn } from './context.js';
import { WasiError } from './errno.js';
import { need } from './fd-ops.js';
import { EventStream, WaitSet, type GuestStream } from './streams.js';
import { SOCKET_RIGHTS } from './rights.js';

/** A listening socket: libuv accepts, connections wait (paused) until the guest takes them. */
export class Listener {
  private server: Server | undefined;
  private readonly queue: Socket[] = [];
  private readonly waiters = new WaitSet();
  constructor(readonly fd: number) {}

  private ensure(): void {
    if (this.server) return;
    const net = process.getBuiltinModule('node:net');
    this.server = net.createServer({ pauseOnConnect: true }, (s) => {
      this.queue.push(s);
      this.waiters.wake();
    });
    this.server.on('error', () => this.waiters.wake());
    this.server.listen({ fd: this.fd });
  }
  take(): Socket | undefined {
    this.ensure();
    return this.queue.shift();
  }
  ready(): boolean {
    this.ensure();
    return this.queue.length > 0;
  }
  wait(signal: AbortSignal): Promise<void> {
    return this.waiters.wait(signal);
  }
  close(): void {
    for (const s of this.queue.splice(0)) s.destroy();
    this.server?.close();
  }
}

/** A guest stream over a connection libuv already holds. */
function connectionStream(sock: Socket): GuestStream {
  const fd = (sock as unknown as { _handle?: { fd?: number } })._handle?.fd ?? -1;
  return new EventStream(fd, FILETYPE.SOCKET_STREAM, true, () => {
    sock.resume();
    return sock;
  });
}

function socketStream(e: Entry): GuestStream {
  const h = e.handle;
  if (h.kind === 'stream' && h.stream.filetype === FILETYPE.SOCKET_STREAM) return h.stream;
  throw new WasiError(E.NOTSOCK);
}

export function socketOps(ctx: Ctx, fdOps: Record<string, WasiFn>): { sync: Record<string, WasiFn>; suspending: Record<string, WasiFn> } {
  const { mem, fds } = ctx;
  const fdRead = fdOps.fd_read as unknown as (fd: number, iovs: number, len: number, out: number) => number | Promise<number>;
  const fdWrite = fdOps.fd_write as unknown as (fd: number, iovs: number, len: number, out: number) => number | Promise<number>;

  const sync = {
    sock_shutdown(fd: number, how: number): number {
      const e = fds.get(fd);
      const stream = socketStream(e);
      need(e, R.SOCK_SHUTDOWN);
      if (how < SDFLAGS.RD || how > (SDFLAGS.RD | SDFLAGS.WR)) return E.INVAL;
      if (how & SDFLAGS.WR && stream instanceof EventStream) stream.shutdownWrite();
      return E.SUCCESS;
    },
  };

  const suspending = {
    sock_accept(fd: number, flags: number, fdPtr: number): number | Promise<number> {
      const e = fds.get(fd);
      if (e.handle.kind !== 'listener') return e.handle.kind === 'stream' && e.handle.stream.filetype === FILETYPE.SOCKET_STREAM ? E.INVAL : E.NOTSOCK;
      need(e, R.SOCK_ACCEPT);
      if (flags & ~FDFLAGS.NONBLOCK) return E.INVAL;
      const listener = e.handle.listener;
      const accept = (s: Socket): number => {
        const entry: Entry = {
          handle: { kind: 'stream', stream: connectionStream(s) },
          filetype: FILETYPE.SOCKET_STREAM,
          rightsBase: SOCKET_RIGHTS,
          rightsInheriting: 0n,
          fdflags: flags & FDFLAGS.NONBLOCK,
        };
        mem.setU32(fdPtr, fds.insert(entry));
        return E.SUCCESS;
      };
      const now = listener.take();
      if (now) return accept(now);
      if (e.fdflags & FDFLAGS.NONBLOCK) return E.AGAIN;
      return (async () => {
        for (;;) {
          await listener.wait(ctx.signal);
          if (ctx.signal.aborted) return E.CANCELED;
          const s = listener.take();
          if (s) return accept(s);
        }
      })();
    },
    sock_recv(fd: number, iovs: number, iovsLen: number, riFlags: number, lenPtr: number, roFlagsPtr: number): number | Promise<number> {
      socketStream(fds.get(fd));
      if (riFlags & ~(RIFLAGS.RECV_PEEK | RIFLAGS.RECV_WAITALL)) return E.INVAL;
      if (riFlags & RIFLAGS.RECV_PEEK) return E.NOTSUP;
      // RECV_WAITALL is honoured as POSIX allows a short read to be: the guest's loop completes it.
      mem.setU16(roFlagsPtr, 0);
      return fdRead(fd, iovs, iovsLen, lenPtr);
    },
    sock_send(fd: number, iovs: number, iovsLen: number, siFlags: number, lenPtr: number): number | Promise<number> {
      socketStream(fds.get(fd));
      if (siFlags !== 0) return E.INVAL;
      return fdWrite(fd, iovs, iovsLen, lenPtr);
    },
  };
  return { sync, suspending } as unknown as { sync: Record<string, WasiFn>; suspending: Record<string, WasiFn> };
}
