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

/** A pending invitation as listed (GET …/invitations): never its token; who invited, unless their account is gone. */
export const pendingInvitationSchema = z.object({
  id: z.string(),
  email: z.string(),
  role: z.string(),
  createdAt: z.string(),
  expiresAt: z.string(),
  invitedBy: z.object({ userId: z.string(), email: z.string(), name: z.string() }).nullable(),
});
