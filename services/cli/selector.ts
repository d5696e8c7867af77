// Which nodes a fan-out reaches. `role=web,zone=eu`: every pair must match one of the node's
// labels; `name=web-1` matches the node's own name (not a label called "name"); `all` matches
// every node. Nothing fancier: a selector that reads ambiguously is refused, never guessed at. Pure.

export interface SelectorTerm {
  key: string;
  value: string;
}
export type Selector = { all: true } | { all: false; terms: SelectorTerm[] };
export type SelectorParse = { ok: true; selector: Selector } | { ok: false; problem: string };

/** The key of a label as enrollment accepts it (schemas/events.ts), or the pseudo-label `name`. */
const KEY = /^[a-z0-9][a-z0-9_.-]{0,62}$/;
const MAX_VALUE = 128;

export function parseSelector(text: string): SelectorParse {
  const t = text.trim();
  if (t === "all") return { ok: true, selector: { all: true } };
  if (t === "") return { ok: false, problem: "the selector is empty (use key=value[,key=value…], name=<node> or all)" };
  const terms: SelectorTerm[] = [];
  for (const raw of t.split(",")) {
    const term = parseTerm(raw.trim());
    if ("problem" in term) return { ok: false, problem: term.problem };
    if (terms.some((x) => x.key === term.key))
      return { ok: false, problem: `"${term.key}" appears twice in the selector; a node has one value per label` };
    terms.push(term);
  }
  return { ok: true, selector: { all: false, terms } };
}

function parseTerm(raw: string): SelectorTerm | { problem: string } {
  const eq = raw.indexOf("=");
  if (eq === -1) return { problem: `"${raw}" is not key=value (use key=value[,key=value…], name=<node> or all)` };
  const key = raw.slice(0, eq).trim();
  const value = raw.slice(eq + 1).trim();
  if (!KEY.test(key))
    return { problem: `"${key}" is not a label key (a-z 0-9 _ . -, starting with a letter or digit)` };
  if (value === "") return { problem: `${key}= has no value` };
  if (value.length > MAX_VALUE) return { problem: `the value of ${key} is longer than ${MAX_VALUE} characters` };
  return { key, value };
}

export interface Selectable {
  node: string;
  labels: Readonly<Record<string, string>>;
}

export function selects(selector: Selector, node: Selectable): boolean {
  if (selector.all) return true;
  return selector.terms.every(({ key, value }) =>
    key === "name" ? node.node === value : Object.hasOwn(node.labels, key) && node.labels[key] === value,
  );
}

/** The selector as the user would write it, for messages. */
export function describeSelector(selector: Selector): string {
  return selector.all ? "all" : selector.terms.map((t) => `${t.key}=${t.value}`).join(",");
}
