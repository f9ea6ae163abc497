// Typed glue between generated service descriptors and the byte-level
// transport: handlers receive decoded requests and return response inits;
// callers pass and receive messages. Methods left out of an implementation
// are not registered, so the server answers UNIMPLEMENTED "method X" — what
// containerd expects for unsupported Task RPCs.
import type { DescMessage, DescMethod, MessageInitShape, MessageShape } from '@bufbuild/protobuf';
import type { GenService, GenServiceMethods } from '@bufbuild/protobuf/codegenv2';
import { decode, encode } from '../proto/codec.js';
import type { CallOptions, TtrpcClient } from './client.js';
import type { CallContext, Handler, TtrpcServer } from './server.js';
import { Code, MSG, TtrpcError } from './status.js';

/** Implementation of a service, keyed by the method's local (camelCase) name. */
export type ServiceImpl<S extends GenServiceMethods> = {
  [K in keyof S]?: (req: MessageShape<S[K]['input']>, ctx: CallContext) => Promise<MessageInitShape<S[K]['output']>>;
};

export function serviceHandlers<S extends GenServiceMethods>(service: GenService<S>, impl: ServiceImpl<S>): Record<string, Handler> {
  const handlers: Record<string, Handler> = {};
  for (const m of service.methods) {
    const fn = impl[m.localName as keyof S];
    if (!fn) continue;
    handlers[m.name] = async (payload, ctx) => {
      let req: MessageShape<DescMessage>;
      try {
        req = decode(m.input, payload);
      } catch (err) {
        throw new TtrpcError(Code.INTERNAL, MSG.badPayload((err as Error).message));
      }
      const res = await fn.call(impl, req as never, ctx);
      return encode(m.output, res as MessageInitShape<DescMessage>);
    };
  }
  return handlers;
}

/** Register `impl` under the service's full name (e.g. containerd.task.v2.Task). */
export function registerService<S extends GenServiceMethods>(server: TtrpcServer, service: GenService<S>, impl: ServiceImpl<S>): void {
  server.register(service.typeName, serviceHandlers(service, impl));
}

/** Call one method, e.g. callMethod(client, Events.method.forward, {...}). */
export async function callMethod<M extends DescMethod>(
  client: TtrpcClient,
  method: M,
  req: MessageInitShape<M['input']>,
  opts?: CallOptions,
): Promise<MessageShape<M['output']>> {
  const out = await client.call(method.parent.typeName, method.name, encode(method.input, req), opts);
  try {
    return decode(method.output, out) as MessageShape<M['output']>;
  } catch (err) {
    throw new TtrpcError(Code.INTERNAL, `ttrpc: error unmarshalling response: ${(err as Error).message}`);
  }
}
