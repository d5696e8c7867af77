/** Whether a NATS subject matches a filter: `*` is one token, a final `>` one or more. */
export function subjectMatches(filter: string, subject: string): boolean {
  const f = filter.split(".");
  const s = subject.split(".");
  for (const [i, t] of f.entries()) {
    if (t === ">") return s.length > i;
    if (i >= s.length || (t !== "*" && t !== s[i])) return false;
  }
  return f.length === s.length;
}
