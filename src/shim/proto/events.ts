// Which topic each task event is published on (containerd runtime/events.go).
// The shim sends Envelope{topic, event: Any(type_url = message name)}.
import type { DescMessage } from '@bufbuild/protobuf';
import {
  TaskCheckpointedSchema,
  TaskCreateSchema,
  TaskDeleteSchema,
  TaskExecAddedSchema,
  TaskExecStartedSchema,
  TaskExitSchema,
  TaskOOMSchema,
  TaskPausedSchema,
  TaskResumedSchema,
  TaskStartSchema,
} from './gen/events_task_pb.js';

export const EVENTS_SERVICE = 'containerd.services.events.ttrpc.v1.Events';

export const TASK_EVENT_TOPICS: ReadonlyMap<DescMessage, string> = new Map<DescMessage, string>([
  [TaskCreateSchema, '/tasks/create'],
  [TaskStartSchema, '/tasks/start'],
  [TaskExitSchema, '/tasks/exit'],
  [TaskDeleteSchema, '/tasks/delete'],
  [TaskOOMSchema, '/tasks/oom'],
  [TaskExecAddedSchema, '/tasks/exec-added'],
  [TaskExecStartedSchema, '/tasks/exec-started'],
  [TaskPausedSchema, '/tasks/paused'],
  [TaskResumedSchema, '/tasks/resumed'],
  [TaskCheckpointedSchema, '/tasks/checkpointed'],
]);

export function eventTopic(schema: DescMessage): string {
  const t = TASK_EVENT_TOPICS.get(schema);
  if (t === undefined) throw new Error(`no topic for event ${schema.typeName}`);
  return t;
}
