// Whoever answers requests answers with its own permissions, and a request's reply subject is the
// requester's choice: a monitor that named `$JS.API.STREAM.PURGE.KV_UNIBUS_users` as the reply of a
// read had membershipd (which may publish anywhere) purge the bucket with its answer, and one that
// named an event subject had the answer stored in the event stream for good. So every responder
// takes a request only when its reply subject is an inbox, before doing any work for it.
import { isInboxReply } from "./permissions.ts";

const QUIET_MS = 10_000;

/**
 * A check for one responder: true when `reply` is an inbox; otherwise false, and the refusal is
 * logged (the first, then at most one line every 10 s with how many more).
 */
export function replyGuard(what: string, log: (line: string) => void = () => {}, now = () => Date.now()) {
  let lastLogged = -Infinity;
  let more = 0;
  return (subject: string, reply: string | undefined): boolean => {
    if (isInboxReply(reply)) return true;
    if (now() - lastLogged < QUIET_MS) {
      more++;
      return false;
    }
    const since = more ? ` (and ${more} more since the last such line)` : "";
    const shown = reply === undefined ? "(none)" : JSON.stringify(reply.slice(0, 200));
    log(`${what}: ignored a request on ${subject} whose reply subject ${shown} is not an inbox${since}`);
    lastLogged = now();
    more = 0;
    return false;
  };
}
