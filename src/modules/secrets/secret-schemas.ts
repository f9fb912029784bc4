/** The JSON of a secret (SPEC §4): every field but a value. Also the UI's type. */
import { z } from 'zod';

export const secretSchema = z.object({
  id: z.string(),
  name: z.string(),
  visibility: z.enum(['masked', 'restricted']),
  description: z.string(),
  allowedHosts: z.array(z.string()),
  hostsPinnedAt: z.string().nullable(),
  version: z.number().int(),
  /** Moved by every change (version: new values only); If-Match takes "<version>.<revision>". */
  revision: z.number().int(),
  createdAt: z.string(),
  createdBy: z.string().nullable(),
  updatedAt: z.string(),
  updatedBy: z.string().nullable(),
  lastUsedAt: z.string().nullable(),
  deletedAt: z.string().nullable(),
  purgeAt: z.string().nullable(),
});
