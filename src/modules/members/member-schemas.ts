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

/** An invitation: never its token (only the POST answer carries it, once). */
export const invitationSchema = z.object({
  id: z.string(),
  email: z.string(),
  role: z.string(),
  createdAt: z.string(),
  expiresAt: z.string(),
});

/** A pending invitation as listed (GET …/invitations): who invited, unless their account is gone. */
export const pendingInvitationSchema = invitationSchema.extend({
  invitedBy: z.object({ userId: z.string(), email: z.string(), name: z.string() }).nullable(),
});
