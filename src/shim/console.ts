// runc's --console-socket: a listening AF_UNIX socket in a private temp dir;
// runc connects during create/exec and sends one message whose SCM_RIGHTS
// carries the pty master (go-runc console.go). Node's net cannot receive fds,
// so the accepted connection is left paused and read with recvmsg via koffi.
import { mkdtempSync, rmSync } from 'node:fs';
import * as net from 'node:net';
import { join } from 'node:path';
import { recvFd } from '../linux-runtime/sys.js';

export class ConsoleSocket {
  readonly master: Promise<number>;
  private constructor(
    readonly path: string,
    private readonly dir: string,
    private readonly server: net.Server,
    master: Promise<number>,
  ) {
    this.master = master;
    // An unawaited failure (runc failed before connecting) must not crash the shim.
    this.master.catch(() => undefined);
  }

  /** A socket in a private directory made under `tmpDir`. */
  static async create(tmpDir: string): Promise<ConsoleSocket> {
    const dir = mkdtempSync(join(tmpDir, 'pty'));
    const path = join(dir, 'pty.sock');
    let resolveMaster!: (fd: number) => void;
    let rejectMaster!: (e: Error) => void;
    const master = new Promise<number>((res, rej) => {
      resolveMaster = res;
      rejectMaster = rej;
    });
    const server = net.createServer({ pauseOnConnect: true }, (sock) => {
      const fd = (sock as unknown as { _handle: { fd: number } })._handle.fd;
      let tries = 0;
      const attempt = () => {
        try {
          const r = recvFd(fd);
          if (r === 'again') {
            if (++tries > 2000) throw new Error('console socket: no pty received');
            setTimeout(attempt, 5);
            return;
          }
          resolveMaster(r.fd);
          sock.destroy();
        } catch (err) {
          rejectMaster(err as Error);
          sock.destroy();
        }
      };
      attempt();
    });
    await new Promise<void>((res, rej) => {
      server.once('error', rej);
      server.listen(path, () => res());
    });
    return new ConsoleSocket(path, dir, server, master);
  }

  close(): void {
    this.server.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
