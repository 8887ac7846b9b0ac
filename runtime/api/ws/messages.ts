// WebSocket client messages (docs/protocol.md section 4).
import { z } from 'zod';
import { inferBodySchema } from '../oip-schema.js';
import { TOPICS } from '../topics.js';

export { TOPICS, type Topic } from '../topics.js';

export const OPS = ['infer', 'emit', 'subscribe', 'status'] as const;

/** Echoed in the answer as sent: a string, or a number (JSON-RPC clients number their messages). */
export const messageIdSchema = z.union([z.string(), z.number().finite()]);

export const inferMessageSchema = inferBodySchema.omit({ id: true }).extend({
  id: messageIdSchema,
  op: z.literal('infer'),
  model: z.string().min(1),
  version: z.union([z.string(), z.number().int()]).optional(),
});

export const emitMessageSchema = z.object({
  id: messageIdSchema,
  op: z.literal('emit'),
  type: z.string().min(1).max(256),
  payload: z.unknown(),
});

export const subscribeMessageSchema = z.object({
  id: messageIdSchema,
  op: z.literal('subscribe'),
  topics: z.array(z.enum(TOPICS)).min(1),
});

export const statusMessageSchema = z.object({ id: messageIdSchema, op: z.literal('status') });

export type InferMessage = z.infer<typeof inferMessageSchema>;
export type EmitMessage = z.infer<typeof emitMessageSchema>;
