/** Response shapes of the variables API (also the UI's types). */
import { z } from 'zod';

export const VARIABLE_TYPES = ['text', 'number', 'boolean', 'datetime', 'map', 'list'] as const;
export type VariableType = (typeof VARIABLE_TYPES)[number];

export const variableSchema = z.object({
  id: z.string(),
  kind: z.enum(['system', 'custom']),
  name: z.string(),
  type: z.enum(VARIABLE_TYPES),
  description: z.string(),
  testValue: z.unknown(),
  fallbackValue: z.unknown(),
  createdAt: z.string().nullable(),
  updatedAt: z.string().nullable(),
});
