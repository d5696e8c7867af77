// Whoever answers requests answers with its own permissions, and a request's reply subject is the
// requester's choice: an answer published on a JetStream API subject (a purge) or on an event
// subject (stored for good) would act with the responder's rights, not the requester's. So every
// responder takes a request only when its reply subject is an inbox, before doing any work for it.
import { throttledLog } from "./log-throttle.ts";
import { isInboxReply } from "./permissions.ts";

/**
 * A check for one responder: true when `reply` is an inbox; otherwise false, and the refusal is
 * logged (the first, then at most one line every 10 s with how many more).
 */
export function replyGuard(what: string, log: (line: string) => void = () => {}, now = () => Date.now()) {
  const note = throttledLog(log, undefined, now);
  return (subject: string, reply: string | undefined): boolean => {
    if (isInboxReply(reply)) return true;
    const shown = reply === undefined ? "(none)" : JSON.stringify(reply.slice(0, 200));
    note(
      (more) =>
        `${what}: ignored a request on ${subject} whose reply subject ${shown} is not an inbox${more ? ` (and ${more} more since the last such line)` : ""}`,
    );
    return false;
  };
}
