// The WIT types of wasi:io, wasi:clocks/monotonic-clock and wasi:http (0.2),
// as abi.ts reads them: what the host lowers itself. Case and field order is
// the WIT's (it is the ABI's); names are the WIT's.
import type { FnType, Ty } from './abi.js';

export const own = (res: string): Ty => ({ own: res });
export const borrow = (res: string): Ty => ({ borrow: res });
export const option = (t: Ty): Ty => ({ option: t });
export const result = (ok: Ty | null, err: Ty | null): Ty => ({ result: [ok, err] });
export const list = (t: Ty): Ty => ({ list: t });
export const fn = (params: Ty[], res: Ty | null = null): FnType => ({ params, result: res });
/** A method: `self` first. */
export const method = (self: string, params: Ty[], res: Ty | null = null): FnType => fn([borrow(self), ...params], res);

export const BYTES = list('u8');
/** A field-value (list<u8>), held by the host as a latin1 string (abi.ts). */
export const FIELD_VALUE: Ty = 'latin1';

export const STREAM_ERROR: Ty = { variant: [['last-operation-failed', own('error')], ['closed', null]] };

export const METHOD: Ty = {
  variant: [['get', null], ['head', null], ['post', null], ['put', null], ['delete', null], ['connect', null], ['options', null], ['trace', null], ['patch', null], ['other', 'string']],
};

export const SCHEME: Ty = { variant: [['HTTP', null], ['HTTPS', null], ['other', 'string']] };

const FIELD_SIZE: Ty = { record: [['field-name', option('string')], ['field-size', option('u32')]] };

export const ERROR_CODE: Ty = {
  variant: [
    ['DNS-timeout', null],
    ['DNS-error', { record: [['rcode', option('string')], ['info-code', option('u16')]] }],
    ['destination-not-found', null],
    ['destination-unavailable', null],
    ['destination-IP-prohibited', null],
    ['destination-IP-unroutable', null],
    ['connection-refused', null],
    ['connection-terminated', null],
    ['connection-timeout', null],
    ['connection-read-timeout', null],
    ['connection-write-timeout', null],
    ['connection-limit-reached', null],
    ['TLS-protocol-error', null],
    ['TLS-certificate-error', null],
    ['TLS-alert-received', { record: [['alert-id', option('u8')], ['alert-message', option('string')]] }],
    ['HTTP-request-denied', null],
    ['HTTP-request-length-required', null],
    ['HTTP-request-body-size', option('u64')],
    ['HTTP-request-method-invalid', null],
    ['HTTP-request-URI-invalid', null],
    ['HTTP-request-URI-too-long', null],
    ['HTTP-request-header-section-size', option('u32')],
    ['HTTP-request-header-size', option(FIELD_SIZE)],
    ['HTTP-request-trailer-section-size', option('u32')],
    ['HTTP-request-trailer-size', FIELD_SIZE],
    ['HTTP-response-incomplete', null],
    ['HTTP-response-header-section-size', option('u32')],
    ['HTTP-response-header-size', FIELD_SIZE],
    ['HTTP-response-body-size', option('u64')],
    ['HTTP-response-trailer-section-size', option('u32')],
    ['HTTP-response-trailer-size', FIELD_SIZE],
    ['HTTP-response-transfer-coding', option('string')],
    ['HTTP-response-content-coding', option('string')],
    ['HTTP-response-timeout', null],
    ['HTTP-upgrade-failed', null],
    ['HTTP-protocol-error', null],
    ['loop-detected', null],
    ['configuration-error', null],
    ['internal-error', option('string')],
  ],
};

export const HEADER_ERROR: Ty = { variant: [['invalid-syntax', null], ['forbidden', null], ['immutable', null]] };
export const ENTRIES = list({ tuple: ['string', FIELD_VALUE] });
/** option<result<result<T, error-code>>>, the shape of a future's get. */
export const futureResult = (t: Ty | null): Ty => option(result(result(t, ERROR_CODE), null));
