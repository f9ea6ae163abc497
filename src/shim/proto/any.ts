// google.protobuf.Any as containerd 1.6 writes it: the type URL of a protobuf
// message is its bare full name ("containerd.events.TaskExit"), without the
// "type.googleapis.com/" prefix (typeurl v1.0.2 falls back to
// proto.MessageName). OCI types travel as JSON under their own URLs.
import { create, type DescMessage, type MessageInitShape, type MessageShape } from '@bufbuild/protobuf';
import { type Any, AnySchema } from '@bufbuild/protobuf/wkt';
import { decode, encode } from './codec.js';

export type { Any };

/** JSON-encoded OCI runtime-spec types (containerd runtime/typeurl.go). */
export const OCI_TYPE_URL = {
  Spec: 'types.containerd.io/opencontainers/runtime-spec/1/Spec',
  Process: 'types.containerd.io/opencontainers/runtime-spec/1/Process',
  LinuxResources: 'types.containerd.io/opencontainers/runtime-spec/1/LinuxResources',
} as const;

/** The message name an Any names, accepting the prefixed form others may send. */
export function anyTypeName(any: Any): string {
  const u = any.typeUrl;
  return u.startsWith('type.googleapis.com/') ? u.slice('type.googleapis.com/'.length) : u;
}

export function anyIs(any: Any | undefined, schema: DescMessage): boolean {
  return any !== undefined && anyTypeName(any) === schema.typeName;
}

/** Wrap a message in an Any, with containerd's unprefixed type URL. */
export function packAny<D extends DescMessage>(schema: D, msg: MessageInitShape<D>): Any {
  return create(AnySchema, { typeUrl: schema.typeName, value: encode(schema, msg) });
}

/** The message inside an Any, or undefined if it holds another type. Throws on malformed bytes. */
export function unpackAny<D extends DescMessage>(any: Any | undefined, schema: D): MessageShape<D> | undefined {
  if (!any || !anyIs(any, schema)) return undefined;
  return decode(schema, any.value);
}

export function packJsonAny(typeUrl: string, value: unknown): Any {
  return create(AnySchema, { typeUrl, value: new TextEncoder().encode(JSON.stringify(value)) });
}

/** Parse a JSON Any; throws SyntaxError on bad JSON. */
export function unpackJsonAny(any: Any): unknown {
  return JSON.parse(new TextDecoder().decode(any.value));
}
