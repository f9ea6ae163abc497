// The public server of an HTTP component in a shared host (pod and process
// isolation; a `container`-level component is served by ../http/ instead,
// with no proxy). The component is served by preview2-shim on an internal
// loopback port inside its guest thread (hosted-http.ts), one fresh instance
// per request. This side owns the public port and proxies to it, which is
// what lets it
//   - count the requests in flight and drain them on SIGTERM (then 143),
//   - answer 500 itself if the internal server fails a request,
//   - stay free for signals while the guest computes.
// node:http is imported dynamically: esbuild hoists static imports of Node
// modules to the top of host.mjs, and a preview1 start must not load it.
import type { IncomingMessage, Server, ServerResponse } from 'node:http';

// Hop-by-hop headers are the proxy's own business.
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer']);

function forwardHeaders(headers: IncomingMessage['headers']): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(headers)) if (v !== undefined && !HOP.has(k)) out[k] = v;
  return out;
}

export interface HttpProxy {
  server: Server;
  inFlight(): number;
  /** Stops accepting, lets the requests in flight finish; resolves when none is left. */
  drain(): Promise<void>;
}

/** Proxies `listenPort` to the internal server at 127.0.0.1:`upstreamPort`. */
export async function startHttpProxy(listenPort: number, upstreamPort: number, onListening: () => void, onError: (err: Error) => void): Promise<HttpProxy> {
  const { Agent, createServer, request: httpRequest } = await import('node:http');
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  let inFlight = 0;
  let drained: (() => void) | undefined;
  const done = () => {
    inFlight--;
    if (inFlight === 0 && drained) drained();
  };
  const fail500 = (res: ServerResponse) => {
    if (!res.headersSent) {
      res.writeHead(500, { 'content-type': 'text/plain' });
      res.end('internal server error\n');
    } else res.destroy();
  };
  const server = createServer((req, res) => {
    inFlight++;
    let finished = false;
    const finish = () => {
      if (!finished) {
        finished = true;
        done();
      }
    };
    res.once('close', finish);
    const up = httpRequest(
      { host: '127.0.0.1', port: upstreamPort, method: req.method, path: req.url, headers: forwardHeaders(req.headers), agent },
      (upRes) => {
        res.writeHead(upRes.statusCode ?? 500, forwardHeaders(upRes.headers));
        upRes.pipe(res);
        upRes.once('error', () => fail500(res));
      },
    );
    up.once('error', () => fail500(res));
    req.pipe(up);
  });
  server.once('error', onError);
  server.listen(listenPort, onListening);
  return {
    server,
    inFlight: () => inFlight,
    drain: () =>
      new Promise<void>((resolve) => {
        server.close();
        server.closeIdleConnections();
        if (inFlight === 0) resolve();
        else drained = resolve;
      }),
  };
}
