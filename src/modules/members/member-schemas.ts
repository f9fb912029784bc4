/** Response shapes of the members API (also the UI's types). */
import { z } from 'zod';

export const memberSchema = z.object({
  userId: z.string(),
  email: z.string(),
  name: z.string(),
  role: z.string(),
  roleName: z.string(),
  joinedAt: z.string(),
});
