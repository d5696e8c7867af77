// When a room should start a new epoch on its own (members leaving start one regardless): a pure
// function of the room's policy and the current epoch's age and message count, so the shell that
// rotates (and its tests) needs no clock of its own.
import { MAX_MESSAGE_COUNTER, type RoomKeyPolicy } from "../../../schemas/room-messages.ts";

export interface EpochProgress {
  epochStartedAt: Date;
  /** Messages written in the epoch so far, all senders together. */
  messagesInEpoch: number;
  now: Date;
}

/**
 * Why the current epoch should end now, or null. The message count is checked first (it is exact;
 * clocks are not). Even a policy without a message limit ends an epoch before a sender could run
 * out of counters (MAX_MESSAGE_COUNTER): a sender's counter is at most the epoch's message count.
 */
export function rotationDue(policy: RoomKeyPolicy, p: EpochProgress): null | "messages" | "time" {
  const messageLimit = policy.rotate_every_messages === 0 ? MAX_MESSAGE_COUNTER + 1 : policy.rotate_every_messages;
  if (p.messagesInEpoch >= messageLimit) return "messages";
  const ageMs = p.now.getTime() - p.epochStartedAt.getTime();
  if (policy.rotate_every_seconds > 0 && ageMs >= policy.rotate_every_seconds * 1000) return "time";
  return null;
}
