// One import for the shim's message types. Generated code is in gen/ (see
// scripts/gen-proto.mjs); names that clash between packages (Options, Metrics,
// the v1 and v2 cgroup stats) are exported as namespaces.
export * from './gen/task_shim_pb.js';
export * from './gen/types_mount_pb.js';
export * from './gen/types_task_pb.js';
export * from './gen/events_task_pb.js';
export * from './gen/events_ttrpc_pb.js';
export * as runcOptions from './gen/runc_options_pb.js';
export * as runtimeOptions from './gen/runtimeoptions_pb.js';
export * as cgroupsV1 from './gen/cgroups_v1_metrics_pb.js';
export * as cgroupsV2 from './gen/cgroups_v2_metrics_pb.js';
export { type Any, AnySchema, type Empty, EmptySchema, TimestampSchema } from '@bufbuild/protobuf/wkt';
export { GO_ALWAYS_EMITTED, decode, encode } from './codec.js';
export { OCI_TYPE_URL, anyIs, anyTypeName, packAny, packJsonAny, unpackAny, unpackJsonAny } from './any.js';
export { EVENTS_SERVICE, TASK_EVENT_TOPICS, eventTopic } from './events.js';
export * from './timestamp.js';
