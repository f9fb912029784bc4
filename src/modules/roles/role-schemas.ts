/** Response shapes of the roles API (also the UI's types). */
import { z } from 'zod';
import { PERMISSIONS } from '../../policy/permissions.js';

export const roleSchema = z.object({
  id: z.string(),
  name: z.string(),
  description: z.string(),
  system: z.boolean(),
  permissions: z.array(z.enum(PERMISSIONS)),
});
