// wasi:http/types and wasi:http/outgoing-handler (0.2), on the thread that
// owns the instance: a request that the thread's server parsed (wire/)
// becomes an IncomingRequest, the guest's OutgoingResponse is written to its
// WireResponse, and an outgoing request is a node:http(s) ClientRequest.
// Bodies are the streams of io.ts. Every function is lowered (abi.ts); the
// classes are also what the import object carries, so that jco's glue
// accepts the two objects it lifts itself, the handler's arguments.
//
// Conventions (jco's, which abi.ts follows): a function returning result<T>
// answers err when it throws a plain (non-Error) value, the value being the
// error; an Error thrown is a trap.
import type { ClientRequest, IncomingMessage } from 'node:http';
import { CABI_DISPOSE, CABI_REP, type FnType, type HostFn, type Lowering, type Ty } from './abi.js';
import { Fields, type HeaderError } from './fields.js';
import { disposer, failure, HostError, HostInputStream, HostOutputStream, HostPollable, markerClass, ReadableSource, withLowering, WritableSink, type BodyTarget, type Waitable } from './io.js';
import type { Reps, RepScope } from './reps.js';
import type { WireRequest } from './wire/request.js';
import type { ResponseListener, WireResponse } from './wire/response.js';
import { ENTRIES, FIELD_VALUE, ERROR_CODE, fn, futureResult, HEADER_ERROR, list, METHOD, method, option, own, result, SCHEME, borrow } from './wit.js';

type Method =
  | { tag: 'get' | 'head' | 'post' | 'put' | 'delete' | 'connect' | 'options' | 'trace' | 'patch' }
  | { tag: 'other'; val: string };
type Scheme = { tag: 'HTTP' | 'HTTPS' } | { tag: 'other'; val: string };
/** wasi:http/types error-code: a tag, some with a payload. */
export type ErrorCode = { tag: string; val?: unknown };
type Result<T, E> = { tag: 'ok'; val: T } | { tag: 'err'; val: E };

const METHODS = new Set(['get', 'head', 'post', 'put', 'delete', 'connect', 'options', 'trace', 'patch']);

function methodOf(name: string): Method {
  const lower = name.toLowerCase();
  return METHODS.has(lower) ? ({ tag: lower } as Method) : { tag: 'other', val: name };
}

function methodName(m: Method): string {
  return m.tag === 'other' ? m.val : m.tag.toUpperCase();
}

/** The request has no body (RFC 9112 §6.3: neither Content-Length nor Transfer-Encoding, or a zero length). */
function bodyless(req: WireRequest): boolean {
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 17 && name.toLowerCase() === 'transfer-encoding') return false;
    if (name.length === 14 && name.toLowerCase() === 'content-length' && raw[i + 1]!.trim() !== '0') return false;
  }
  return true;
}

const INTERNAL_ERROR = Buffer.from('internal server error\n');

/**
 * The WireResponse of one exchange, as the body sink's target. The status
 * line and headers are written with the first bytes of the body (or its
 * end), so that a body finished in one go carries a Content-Length.
 */
class ResponseTarget implements BodyTarget {
  readonly #res: WireResponse;
  readonly #events: ResponseEvents;
  readonly #status: number;
  readonly #raw: string[];
  readonly #lengthGiven: boolean;
  #trailers = false;
  constructor(res: WireResponse, events: ResponseEvents, status: number, raw: string[]) {
    this.#res = res;
    this.#events = events;
    this.#status = status;
    this.#raw = raw;
    // A guest that promised a length must keep its promise: the response
    // refuses extra bytes and a short end, and we turn that into an error.
    this.#lengthGiven = raw.some((v, i) => i % 2 === 0 && v === 'content-length');
  }
  #head(length: number | undefined): void {
    if (this.#res.headersSent) return;
    if (length !== undefined && !this.#lengthGiven && !this.#trailers) this.#raw.push('content-length', String(length));
    this.#res.writeHead(this.#status, this.#raw);
  }
  get headersSent(): boolean {
    return this.#res.headersSent;
  }
  get writableNeedDrain(): boolean {
    return this.#res.writableNeedDrain;
  }
  write(chunk: Uint8Array): boolean {
    this.#head(undefined);
    return this.#res.write(chunk);
  }
  end(chunk?: Uint8Array): void {
    this.#head(chunk?.length ?? 0);
    if (chunk) this.#res.end(chunk);
    else this.#res.end();
  }
  addTrailers(t: Record<string, string>): void {
    this.#trailers = true;
    this.#head(undefined);
    this.#res.addTrailers(t);
  }
  destroy(err?: Error): void {
    this.#res.destroy(err);
  }
  on(event: 'drain' | 'error', listener: (err: Error) => void): this {
    if (event === 'error') this.#events.onError = listener;
    else this.#res.on('drain', listener as () => void);
    return this;
  }
  once(_event: 'close', listener: () => void): this {
    this.#events.onClose = listener;
    return this;
  }
}

/**
 * A response's listener, set when the request comes in; the server and the
 * body sink hang their callbacks here (one object, no listener arrays). The
 * server's own request state extends this class (`closed`).
 */
export class ResponseEvents implements ResponseListener {
  onError: ((err: Error) => void) | undefined;
  onClose: (() => void) | undefined;
  constructor(res: WireResponse) {
    res.events = this;
  }
  /** The response is closed (sent, or its connection gone), after the body sink heard of it. */
  closed(): void {}
}

/** Where an exchange stands, for the server (thread.ts) once the guest's handle() has settled. */
export interface Exchange {
  request: IncomingRequest;
  outparam: ResponseOutparam;
  /**
   * handle() returned (`failure` undefined) or failed: a request left
   * unanswered, or whose guest failed, gets a 500 (a cut connection once
   * bytes were sent); a body never finished is cut.
   */
  settle(failure?: unknown): void;
}

export interface HttpHostOptions {
  /** A guest's failed request, already answered 500. */
  onError(message: string): void;
}

export class IncomingBody {
  readonly #source: ReadableSource;
  readonly #trailers: () => readonly string[];
  #taken = false;
  constructor(source: ReadableSource, trailers: () => readonly string[]) {
    this.#source = source;
    this.#trailers = trailers;
  }
  stream(): HostInputStream {
    if (this.#taken) throw undefined;
    this.#taken = true;
    return new HostInputStream(this.#source);
  }
  static finish(body: IncomingBody): FutureTrailers {
    return new FutureTrailers(body.#source, body.#trailers);
  }
}

export class FutureTrailers {
  readonly #source: ReadableSource;
  readonly #trailers: () => readonly string[];
  #got = false;
  constructor(source: ReadableSource, trailers: () => readonly string[]) {
    this.#source = source;
    this.#trailers = trailers;
  }
  subscribe(): HostPollable {
    return new HostPollable(this.#source);
  }
  get(): Result<Result<Fields | undefined, ErrorCode>, undefined> | undefined {
    if (!this.#source.ready()) return undefined;
    if (this.#got) return { tag: 'err', val: undefined };
    this.#got = true;
    const raw = this.#trailers();
    return { tag: 'ok', val: { tag: 'ok', val: raw.length > 0 ? Fields.fromRaw(raw) : undefined } };
  }
}

/** The two objects jco's glue lifts itself carry a rep of ours (its cabiRep); dropping or passing them gives it back. */
class Lifted {
  #reps: Reps | undefined;
  #rep = 0;
  /** Registers this object with `reps` under a rep that jco's glue will read. */
  lift(reps: Reps, type: string, scope: RepScope | undefined): void {
    this.#reps = reps;
    this.#rep = reps.add(this, type, scope);
    (this as unknown as Record<symbol, number>)[CABI_REP] = this.#rep;
  }
  /** The rep the guest's handle will stand for. */
  get rep(): number {
    return this.#rep;
  }
  release(): void {
    this.#reps?.release(this.#rep);
    this.#reps = undefined;
  }
  [Symbol.dispose](): void {
    this.release();
  }
}

export class IncomingRequest extends Lifted {
  readonly #req: WireRequest;
  #body: IncomingBody | undefined;
  constructor(req: WireRequest) {
    super();
    this.#req = req;
  }
  method(): Method {
    return methodOf(this.#req.method);
  }
  pathWithQuery(): string | undefined {
    return this.#req.url;
  }
  scheme(): Scheme | undefined {
    return { tag: 'HTTP' };
  }
  authority(): string | undefined {
    const raw = this.#req.rawHeaders;
    for (let i = 0; i + 1 < raw.length; i += 2) {
      const name = raw[i]!;
      if (name.length === 4 && name.toLowerCase() === 'host') return raw[i + 1];
    }
    return undefined;
  }
  headers(): Fields {
    return Fields.fromRaw(this.#req.rawHeaders);
  }
  consume(): IncomingBody {
    if (this.#body) throw undefined;
    const req = this.#req;
    return (this.#body = new IncomingBody(new ReadableSource(bodyless(req) ? null : req), () => req.rawTrailers));
  }
}

export class OutgoingBody {
  readonly sink = new WritableSink();
  #taken = false;
  write(): HostOutputStream {
    if (this.#taken) throw undefined;
    this.#taken = true;
    return new HostOutputStream(this.sink);
  }
  get taken(): boolean {
    return this.#taken;
  }
  static finish(body: OutgoingBody, trailers: Fields | undefined): void {
    try {
      body.sink.finish(trailers?.toRecord(), failure);
    } catch (err) {
      throw { tag: 'internal-error', val: err instanceof Error ? err.message : 'the body failed' } satisfies ErrorCode;
    }
  }
  /** Dropped without finish: what was sent is cut off. */
  [Symbol.dispose](): void {
    this.sink.abort();
  }
}

export class OutgoingResponse {
  #status = 200;
  readonly #headers: Fields;
  #body: OutgoingBody | undefined;
  #target: ResponseTarget | undefined;
  constructor(headers: Fields) {
    this.#headers = Fields.lock(headers);
  }
  statusCode(): number {
    return this.#status;
  }
  setStatusCode(code: number): void {
    if (!Number.isInteger(code) || code < 100 || code > 999) throw undefined;
    this.#status = code;
  }
  headers(): Fields {
    return this.#headers;
  }
  body(): OutgoingBody {
    if (this.#body) throw undefined;
    this.#body = new OutgoingBody();
    if (this.#target) this.#body.sink.attach(this.#target);
    return this.#body;
  }
  /** The response was set: it goes to `res` (its body, now or when the guest makes it). */
  static send(r: OutgoingResponse, res: WireResponse, events: ResponseEvents): void {
    r.#target = new ResponseTarget(res, events, r.#status, r.#headers.toRaw());
    r.#body?.sink.attach(r.#target);
  }
  /**
   * handle() is over: a body never made is empty. A body not finished is
   * not a valid one: cut off once bytes were sent; before, the host answers
   * in the guest's place (false).
   */
  static close(r: OutgoingResponse): boolean {
    if (!r.#body) {
      r.#target?.end();
      return true;
    }
    if (r.#body.sink.finished) return true;
    if (r.#target?.headersSent) {
      r.#body.sink.abort();
      return true;
    }
    return false;
  }
  /** The host answers instead (the guest trapped): nothing of this response is sent any more. */
  static drop(r: OutgoingResponse): void {
    r.#body?.sink.detach();
    r.#target = undefined;
  }
}

/** Who hears the guest's answer (an exchange). */
interface AnswerTaker {
  deliver(response: Result<OutgoingResponse, ErrorCode>): void;
}

export class ResponseOutparam extends Lifted {
  readonly #taker: AnswerTaker;
  constructor(taker: AnswerTaker) {
    super();
    this.#taker = taker;
  }
  static set(param: ResponseOutparam, response: Result<OutgoingResponse, ErrorCode>): void {
    param.release();
    param.#taker.deliver(response);
  }
}

// ---- outgoing requests ----

export class RequestOptions {
  #connect: bigint | undefined;
  #firstByte: bigint | undefined;
  #betweenBytes: bigint | undefined;
  connectTimeout(): bigint | undefined {
    return this.#connect;
  }
  setConnectTimeout(d: bigint | undefined): void {
    this.#connect = d;
  }
  firstByteTimeout(): bigint | undefined {
    return this.#firstByte;
  }
  setFirstByteTimeout(d: bigint | undefined): void {
    this.#firstByte = d;
  }
  betweenBytesTimeout(): bigint | undefined {
    return this.#betweenBytes;
  }
  setBetweenBytesTimeout(d: bigint | undefined): void {
    this.#betweenBytes = d;
  }
  static timeouts(o: RequestOptions | undefined): { connect?: number; firstByte?: number; betweenBytes?: number } {
    const ms = (d: bigint | undefined) => (d === undefined ? undefined : Number(d / 1_000_000n));
    if (!o) return {};
    return { connect: ms(o.#connect), firstByte: ms(o.#firstByte), betweenBytes: ms(o.#betweenBytes) };
  }
}

export class OutgoingRequest {
  #method: Method = { tag: 'get' };
  #scheme: Scheme | undefined;
  #authority: string | undefined;
  #path: string | undefined;
  readonly #headers: Fields;
  readonly #body = new OutgoingBody();
  #bodyTaken = false;
  constructor(headers: Fields) {
    this.#headers = Fields.lock(headers);
  }
  method(): Method {
    return this.#method;
  }
  setMethod(m: Method): void {
    if (m.tag === 'other' && !/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(m.val)) throw undefined;
    this.#method = m;
  }
  pathWithQuery(): string | undefined {
    return this.#path;
  }
  setPathWithQuery(p: string | undefined): void {
    if (p !== undefined && !/^[\x21-\x7e]*$/.test(p)) throw undefined;
    this.#path = p;
  }
  scheme(): Scheme | undefined {
    return this.#scheme;
  }
  setScheme(s: Scheme | undefined): void {
    if (s?.tag === 'other' && !/^[a-zA-Z][a-zA-Z0-9+.-]*$/.test(s.val)) throw undefined;
    this.#scheme = s;
  }
  authority(): string | undefined {
    return this.#authority;
  }
  setAuthority(a: string | undefined): void {
    if (a !== undefined && !/^[^\s/?#@]*$/.test(a)) throw undefined;
    this.#authority = a;
  }
  headers(): Fields {
    return this.#headers;
  }
  body(): OutgoingBody {
    if (this.#bodyTaken) throw undefined;
    this.#bodyTaken = true;
    return this.#body;
  }
  static parts(r: OutgoingRequest) {
    return { method: r.#method, scheme: r.#scheme, authority: r.#authority, path: r.#path, headers: r.#headers, body: r.#body, bodyTaken: r.#bodyTaken };
  }
}

export class IncomingResponse {
  readonly #res: IncomingMessage;
  #body: IncomingBody | undefined;
  constructor(res: IncomingMessage) {
    this.#res = res;
  }
  status(): number {
    return this.#res.statusCode ?? 0;
  }
  headers(): Fields {
    return Fields.fromRaw(this.#res.rawHeaders);
  }
  consume(): IncomingBody {
    if (this.#body) throw undefined;
    const res = this.#res;
    return (this.#body = new IncomingBody(new ReadableSource(res), () => res.rawTrailers));
  }
  /** Dropped unread: the rest of the body is let go so that the connection can be reused. */
  [Symbol.dispose](): void {
    if (!this.#body) this.#res.resume();
  }
}

export class FutureIncomingResponse implements Waitable {
  #value: Result<IncomingResponse, ErrorCode> | undefined;
  #got = false;
  readonly #settled: Promise<void>;
  constructor(run: Promise<IncomingResponse>) {
    this.#settled = run.then(
      (r) => void (this.#value = { tag: 'ok', val: r }),
      (e: unknown) => void (this.#value = { tag: 'err', val: errorCodeOf(e) }),
    );
  }
  ready(): boolean {
    return this.#value !== undefined;
  }
  changed(): Promise<void> {
    return this.#settled;
  }
  subscribe(): HostPollable {
    return new HostPollable(this);
  }
  get(): Result<Result<IncomingResponse, ErrorCode>, undefined> | undefined {
    if (!this.#value) return undefined;
    if (this.#got) return { tag: 'err', val: undefined };
    this.#got = true;
    return { tag: 'ok', val: this.#value };
  }
}

/** An outgoing request's target: the ClientRequest, which writes its head with the first bytes anyway. */
function clientTarget(req: ClientRequest): BodyTarget {
  return req as unknown as BodyTarget;
}

async function send(request: OutgoingRequest, options: RequestOptions | undefined): Promise<IncomingResponse> {
  const p = OutgoingRequest.parts(request);
  if (!p.authority) throw { tag: 'HTTP-request-URI-invalid' } satisfies ErrorCode;
  const scheme = p.scheme?.tag === 'other' ? p.scheme.val.toLowerCase() : p.scheme?.tag === 'HTTP' ? 'http' : 'https';
  if (scheme !== 'http' && scheme !== 'https') throw { tag: 'HTTP-protocol-error' } satisfies ErrorCode;
  let url: URL;
  try {
    url = new URL(`${scheme}://${p.authority}`);
  } catch {
    throw { tag: 'HTTP-request-URI-invalid' } satisfies ErrorCode;
  }
  const mod = scheme === 'https' ? await import('node:https') : await import('node:http');
  const t = RequestOptions.timeouts(options);
  const req = mod.request({
    method: methodName(p.method),
    hostname: url.hostname.replace(/^\[|\]$/g, ''),
    port: url.port || undefined,
    path: p.path ?? '/',
    headers: p.headers.toRaw(),
    ...(t.connect !== undefined ? { timeout: t.connect } : {}),
  });
  const sink = p.body.sink;
  sink.attach(clientTarget(req));
  // A body the guest never asked for is empty.
  if (!p.bodyTaken) sink.finish(undefined, failure);
  return new Promise<IncomingResponse>((resolve, reject) => {
    let firstByte: NodeJS.Timeout | undefined;
    if (t.firstByte !== undefined) firstByte = setTimeout(() => req.destroy(Object.assign(new Error('no response in time'), { code: 'ETIMEDOUT' })), t.firstByte);
    req.once('timeout', () => req.destroy(Object.assign(new Error('connect timed out'), { code: 'ETIMEDOUT' })));
    req.once('error', (e) => {
      clearTimeout(firstByte);
      reject(e);
    });
    req.once('response', (res) => {
      clearTimeout(firstByte);
      if (t.betweenBytes !== undefined) res.setTimeout(t.betweenBytes, () => res.destroy(new Error('body stalled')));
      resolve(new IncomingResponse(res));
    });
  });
}

/** A Node error of an outgoing request as a wasi:http error-code. */
export function errorCodeOf(e: unknown): ErrorCode {
  if (typeof e === 'object' && e !== null && 'tag' in e && !(e instanceof Error)) return e as ErrorCode;
  const err = e as NodeJS.ErrnoException;
  switch (err?.code) {
    case 'ECONNREFUSED':
      return { tag: 'connection-refused' };
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return { tag: 'DNS-error', val: { rcode: err.code, infoCode: undefined } };
    case 'ETIMEDOUT':
      return { tag: 'connection-timeout' };
    case 'ECONNRESET':
    case 'EPIPE':
      return { tag: 'connection-terminated' };
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return { tag: 'destination-unavailable' };
    default:
      return { tag: 'internal-error', val: err?.message ?? String(e) };
  }
}

/**
 * One request's exchange: its two handler arguments and the guest's answer.
 * A class, not closures: a request makes one object here instead of four
 * functions and a record.
 */
class HttpExchange implements Exchange, AnswerTaker {
  readonly request: IncomingRequest;
  readonly outparam: ResponseOutparam;
  readonly #options: HttpHostOptions;
  readonly #res: WireResponse;
  readonly #events: ResponseEvents;
  #answered = false;
  #response: OutgoingResponse | undefined;
  constructor(reps: Reps, options: HttpHostOptions, req: WireRequest, res: WireResponse, events: ResponseEvents, scope: RepScope | undefined) {
    this.#options = options;
    this.#res = res;
    this.#events = events;
    this.outparam = new ResponseOutparam(this);
    this.request = new IncomingRequest(req);
    this.request.lift(reps, 'incoming-request', scope);
    this.outparam.lift(reps, 'response-outparam', scope);
  }
  deliver(result: Result<OutgoingResponse, ErrorCode>): void {
    if (this.#answered) throw new Error('response-outparam set twice');
    this.#answered = true;
    if (result.tag === 'err') {
      this.#options.onError(`the guest answered with an error: ${JSON.stringify(result.val, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v))}`);
      this.#fail500();
      return;
    }
    this.#response = result.val;
    OutgoingResponse.send(result.val, this.#res, this.#events);
  }
  settle(failure?: unknown): void {
    const response = this.#response;
    if (failure === undefined && this.#answered) {
      if (!response || OutgoingResponse.close(response)) return;
      this.#options.onError('the guest returned before finishing the response body');
    } else if (failure === undefined) this.#options.onError('the guest returned without answering');
    if (response) OutgoingResponse.drop(response);
    this.#fail500();
  }
  #fail500(): void {
    const res = this.#res;
    if (res.writableEnded) return;
    if (res.headersSent) {
      res.destroy();
      return;
    }
    res.writeHead(500, ['content-type', 'text/plain', 'content-length', String(INTERNAL_ERROR.length)]);
    res.end(INTERNAL_ERROR);
  }
}

/**
 * The import object's wasi:http/types and wasi:http/outgoing-handler, every
 * function lowered, and `exchange`, which turns a request of Node's server
 * into the handler's two arguments.
 */
export function wasiHttp(low: Lowering & { host: Reps }, options: HttpHostOptions) {
  const reps = low.host;
  const dispose = disposer(reps);
  const classes = { Fields, IncomingRequest, OutgoingRequest, RequestOptions, ResponseOutparam, IncomingResponse, IncomingBody, FutureTrailers, OutgoingResponse, OutgoingBody, FutureIncomingResponse };
  // The import object's classes stand for ours (instanceof) and carry the
  // lowered functions where jco looks them up; one set per import object.
  const local = Object.fromEntries(
    Object.entries(classes).map(([name, cls]) => [name, Object.assign(markerClass(name, [cls]), { [CABI_DISPOSE]: dispose })]),
  ) as unknown as Record<keyof typeof classes, new () => object>;
  const def = (name: keyof typeof classes, wit: string, js: string | null, type: FnType, impl: HostFn, isStatic = false) => {
    const lowered = withLowering(wit, type, impl, low);
    const cls = local[name] as unknown as Record<string | symbol, unknown> & { prototype: Record<string, unknown> };
    if (js === null) Object.assign(cls, { [Symbol.for('cabiLower')]: (lowered as unknown as Record<symbol, unknown>)[Symbol.for('cabiLower')] });
    else if (isStatic) Object.defineProperty(cls, js, { value: lowered, configurable: true, writable: true });
    else Object.defineProperty(cls.prototype, js, { value: lowered, configurable: true, writable: true });
  };
  const HE = HEADER_ERROR;
  const res = (ok: Ty | null) => result(ok, null);

  def('Fields', '[constructor]fields', null, fn([], own('fields')), () => new Fields());
  def('Fields', '[static]fields.from-list', 'fromList', fn([ENTRIES], result(own('fields'), HE)), (e: [string, string][]) => Fields.fromList(e), true);
  def('Fields', '[method]fields.get', 'get', method('fields', ['string'], list(FIELD_VALUE)), (f: Fields, n: string) => f.get(n));
  def('Fields', '[method]fields.has', 'has', method('fields', ['string'], 'bool'), (f: Fields, n: string) => f.has(n));
  def('Fields', '[method]fields.set', 'set', method('fields', ['string', list(FIELD_VALUE)], result(null, HE)), (f: Fields, n: string, v: string[]) => f.set(n, v));
  def('Fields', '[method]fields.delete', 'delete', method('fields', ['string'], result(null, HE)), (f: Fields, n: string) => f.delete(n));
  def('Fields', '[method]fields.append', 'append', method('fields', ['string', FIELD_VALUE], result(null, HE)), (f: Fields, n: string, v: string) => f.append(n, v));
  def('Fields', '[method]fields.entries', 'entries', method('fields', [], ENTRIES), (f: Fields) => f.entries());
  def('Fields', '[method]fields.clone', 'clone', method('fields', [], own('fields')), (f: Fields) => f.clone());

  const IR = 'incoming-request';
  def('IncomingRequest', `[method]${IR}.method`, 'method', method(IR, [], METHOD), (r: IncomingRequest) => r.method());
  def('IncomingRequest', `[method]${IR}.path-with-query`, 'pathWithQuery', method(IR, [], option('string')), (r: IncomingRequest) => r.pathWithQuery());
  def('IncomingRequest', `[method]${IR}.scheme`, 'scheme', method(IR, [], option(SCHEME)), (r: IncomingRequest) => r.scheme());
  def('IncomingRequest', `[method]${IR}.authority`, 'authority', method(IR, [], option('string')), (r: IncomingRequest) => r.authority());
  def('IncomingRequest', `[method]${IR}.headers`, 'headers', method(IR, [], own('fields')), (r: IncomingRequest) => r.headers());
  def('IncomingRequest', `[method]${IR}.consume`, 'consume', method(IR, [], res(own('incoming-body'))), (r: IncomingRequest) => r.consume());

  const OR = 'outgoing-request';
  def('OutgoingRequest', `[constructor]${OR}`, null, fn([own('fields')], own(OR)), (h: Fields) => new OutgoingRequest(h));
  def('OutgoingRequest', `[method]${OR}.body`, 'body', method(OR, [], res(own('outgoing-body'))), (r: OutgoingRequest) => r.body());
  def('OutgoingRequest', `[method]${OR}.method`, 'method', method(OR, [], METHOD), (r: OutgoingRequest) => r.method());
  def('OutgoingRequest', `[method]${OR}.set-method`, 'setMethod', method(OR, [METHOD], res(null)), (r: OutgoingRequest, m: Method) => r.setMethod(m));
  def('OutgoingRequest', `[method]${OR}.path-with-query`, 'pathWithQuery', method(OR, [], option('string')), (r: OutgoingRequest) => r.pathWithQuery());
  def('OutgoingRequest', `[method]${OR}.set-path-with-query`, 'setPathWithQuery', method(OR, [option('string')], res(null)), (r: OutgoingRequest, p: string | undefined) => r.setPathWithQuery(p));
  def('OutgoingRequest', `[method]${OR}.scheme`, 'scheme', method(OR, [], option(SCHEME)), (r: OutgoingRequest) => r.scheme());
  def('OutgoingRequest', `[method]${OR}.set-scheme`, 'setScheme', method(OR, [option(SCHEME)], res(null)), (r: OutgoingRequest, s: Scheme | undefined) => r.setScheme(s));
  def('OutgoingRequest', `[method]${OR}.authority`, 'authority', method(OR, [], option('string')), (r: OutgoingRequest) => r.authority());
  def('OutgoingRequest', `[method]${OR}.set-authority`, 'setAuthority', method(OR, [option('string')], res(null)), (r: OutgoingRequest, a: string | undefined) => r.setAuthority(a));
  def('OutgoingRequest', `[method]${OR}.headers`, 'headers', method(OR, [], own('fields')), (r: OutgoingRequest) => r.headers());

  const RO = 'request-options';
  const dur = option('u64');
  def('RequestOptions', `[constructor]${RO}`, null, fn([], own(RO)), () => new RequestOptions());
  def('RequestOptions', `[method]${RO}.connect-timeout`, 'connectTimeout', method(RO, [], dur), (o: RequestOptions) => o.connectTimeout());
  def('RequestOptions', `[method]${RO}.set-connect-timeout`, 'setConnectTimeout', method(RO, [dur], res(null)), (o: RequestOptions, d: bigint | undefined) => o.setConnectTimeout(d));
  def('RequestOptions', `[method]${RO}.first-byte-timeout`, 'firstByteTimeout', method(RO, [], dur), (o: RequestOptions) => o.firstByteTimeout());
  def('RequestOptions', `[method]${RO}.set-first-byte-timeout`, 'setFirstByteTimeout', method(RO, [dur], res(null)), (o: RequestOptions, d: bigint | undefined) => o.setFirstByteTimeout(d));
  def('RequestOptions', `[method]${RO}.between-bytes-timeout`, 'betweenBytesTimeout', method(RO, [], dur), (o: RequestOptions) => o.betweenBytesTimeout());
  def('RequestOptions', `[method]${RO}.set-between-bytes-timeout`, 'setBetweenBytesTimeout', method(RO, [dur], res(null)), (o: RequestOptions, d: bigint | undefined) => o.setBetweenBytesTimeout(d));

  def('ResponseOutparam', '[static]response-outparam.set', 'set', fn([own('response-outparam'), result(own('outgoing-response'), ERROR_CODE)]), (p: ResponseOutparam, r: Result<OutgoingResponse, ErrorCode>) => ResponseOutparam.set(p, r), true);

  const IRS = 'incoming-response';
  def('IncomingResponse', `[method]${IRS}.status`, 'status', method(IRS, [], 'u16'), (r: IncomingResponse) => r.status());
  def('IncomingResponse', `[method]${IRS}.headers`, 'headers', method(IRS, [], own('fields')), (r: IncomingResponse) => r.headers());
  def('IncomingResponse', `[method]${IRS}.consume`, 'consume', method(IRS, [], res(own('incoming-body'))), (r: IncomingResponse) => r.consume());

  def('IncomingBody', '[method]incoming-body.stream', 'stream', method('incoming-body', [], res(own('input-stream'))), (b: IncomingBody) => b.stream());
  def('IncomingBody', '[static]incoming-body.finish', 'finish', fn([own('incoming-body')], own('future-trailers')), (b: IncomingBody) => IncomingBody.finish(b), true);

  def('FutureTrailers', '[method]future-trailers.subscribe', 'subscribe', method('future-trailers', [], own('pollable')), (f: FutureTrailers) => f.subscribe());
  def('FutureTrailers', '[method]future-trailers.get', 'get', method('future-trailers', [], futureResult(option(own('fields')))), (f: FutureTrailers) => f.get());

  const OS = 'outgoing-response';
  def('OutgoingResponse', `[constructor]${OS}`, null, fn([own('fields')], own(OS)), (h: Fields) => new OutgoingResponse(h));
  def('OutgoingResponse', `[method]${OS}.status-code`, 'statusCode', method(OS, [], 'u16'), (r: OutgoingResponse) => r.statusCode());
  def('OutgoingResponse', `[method]${OS}.set-status-code`, 'setStatusCode', method(OS, ['u16'], res(null)), (r: OutgoingResponse, c: number) => r.setStatusCode(c));
  def('OutgoingResponse', `[method]${OS}.headers`, 'headers', method(OS, [], own('fields')), (r: OutgoingResponse) => r.headers());
  def('OutgoingResponse', `[method]${OS}.body`, 'body', method(OS, [], res(own('outgoing-body'))), (r: OutgoingResponse) => r.body());

  def('OutgoingBody', '[method]outgoing-body.write', 'write', method('outgoing-body', [], res(own('output-stream'))), (b: OutgoingBody) => b.write());
  def('OutgoingBody', '[static]outgoing-body.finish', 'finish', fn([own('outgoing-body'), option(own('fields'))], result(null, ERROR_CODE)), (b: OutgoingBody, t: Fields | undefined) => OutgoingBody.finish(b, t), true);

  const FIR = 'future-incoming-response';
  def('FutureIncomingResponse', `[method]${FIR}.subscribe`, 'subscribe', method(FIR, [], own('pollable')), (f: FutureIncomingResponse) => f.subscribe());
  def('FutureIncomingResponse', `[method]${FIR}.get`, 'get', method(FIR, [], futureResult(own(IRS))), (f: FutureIncomingResponse) => f.get());

  const httpErrorCode = withLowering('http-error-code', fn([borrow('error')], option(ERROR_CODE)), (e: object) => {
    if (e instanceof HostError) return e.code;
    const payload = (e as { payload?: unknown }).payload;
    return typeof payload === 'object' && payload !== null && typeof (payload as ErrorCode).tag === 'string' ? payload : undefined;
  }, low);
  const outgoingHandler = {
    handle: withLowering('handle', fn([own(OR), option(own(RO))], result(own(FIR), ERROR_CODE)), (r: OutgoingRequest, o: RequestOptions | undefined) => new FutureIncomingResponse(send(r, o)), low),
  };

  /** One request: the handler's arguments (owned by `scope`, the instance), and how its answer reaches `res` (whose listeners are `events`). */
  function exchange(req: WireRequest, res: WireResponse, events: ResponseEvents, scope: RepScope | undefined): Exchange {
    return new HttpExchange(reps, options, req, res, events, scope);
  }

  return {
    types: { ...local, httpErrorCode },
    outgoingHandler,
    exchange,
  };
}
