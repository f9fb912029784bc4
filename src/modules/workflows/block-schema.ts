/** The JSON shape of workflows and their blocks (SPEC §4), as zod schemas. */
import { z } from 'zod';
import { plainText, wellFormedString } from '../../app/http.js';
import { variableNameSchema } from '../variables/variable-names.js';

export const BLOCK_ID = /^[A-Za-z0-9_-]{1,64}$/;
export const HTTP_METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS'] as const;
export const MAX_BLOCKS = 100;
export const DEFAULT_TIMEOUT_MS = 10_000;
export const MAX_TIMEOUT_MS = 60_000;

const blockId = z.string().regex(BLOCK_ID, 'must be 1–64 letters, digits, "_" or "-"');
const route = blockId.nullable().default(null);
/** Template text is stored, then sent on after substitution: well-formed Unicode only. */
const template = (max: number) => wellFormedString().max(max, `must be at most ${max} characters`);
const pair = z.strictObject({ key: template(256), value: template(16_384) });

export const apiBlockSchema = z.strictObject({
  id: blockId,
  type: z.literal('api'),
  name: plainText(100).default(''),
  method: z.enum(HTTP_METHODS),
  url: template(4096).min(1, 'must not be empty'),
  query: z.array(pair).max(100).default([]),
  headers: z.array(pair).max(100).default([]),
  body: z
    .discriminatedUnion('mode', [
      z.strictObject({ mode: z.literal('none'), content: z.null().optional() }),
      z.strictObject({ mode: z.literal('text'), content: template(1_000_000) }),
      z.strictObject({ mode: z.literal('json'), content: template(1_000_000) }),
      z.strictObject({ mode: z.literal('form'), content: z.array(pair).max(200) }),
    ])
    .default({ mode: 'none' }),
  timeoutMs: z.number().int().min(1).max(MAX_TIMEOUT_MS).default(DEFAULT_TIMEOUT_MS),
  capture: z
    .array(z.strictObject({ variable: variableNameSchema, path: wellFormedString().min(1).max(512) }))
    .max(100)
    .default([]),
  onSuccess: route,
  onError: route,
});

export const setBlockSchema = z.strictObject({
  id: blockId,
  type: z.literal('set'),
  name: plainText(100).default(''),
  assignments: z
    .array(z.strictObject({ variable: variableNameSchema, value: template(65_536) }))
    .max(100)
    .default([]),
  onSuccess: route,
});

export const blockSchema = z.discriminatedUnion('type', [apiBlockSchema, setBlockSchema]);

export type ApiBlock = z.infer<typeof apiBlockSchema>;
export type SetBlock = z.infer<typeof setBlockSchema>;
export type Block = z.infer<typeof blockSchema>;

export const workflowInputSchema = z.strictObject({
  name: plainText(200).refine((s) => s.length > 0, 'must not be empty'),
  startBlockId: blockId.nullable().default(null),
  blocks: z.array(blockSchema).max(MAX_BLOCKS).default([]),
});

export type WorkflowInput = z.infer<typeof workflowInputSchema>;
