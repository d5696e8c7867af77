// The verb definitions against themselves, the parser and the help: no server, no process.
import { test } from "node:test";
import assert from "node:assert/strict";
import { allFlags, findVerb, readArgv, splitArgv } from "./argv.ts";
import { GLOBAL_FLAGS } from "./global-flags.ts";
import { usageText, verbHelp, wrap } from "./help.ts";
import { CliError } from "./output.ts";
import { openSession } from "./session.ts";
import { defineVerb, verbName } from "./verb.ts";
import { VERBS } from "./verbs/mod.ts";

const byName = (name: string) => VERBS.find((v) => verbName(v) === name) ?? assert.fail(`no verb ${name}`);
const flagsInUsage = (usage: string) => new Set([...usage.matchAll(/--([a-z][a-z-]*)/g)].map((m) => m[1]!));

test("each verb is named once, and no verb's words are another's arguments", () => {
  const names = VERBS.map(verbName);
  assert.equal(new Set(names).size, names.length, names.join(", "));
  for (const v of VERBS)
    assert.ok(
      v.words.every((w) => /^[a-z][a-z-]*$/.test(w)),
      verbName(v),
    );
});

test("a verb's usage shows exactly its own flags (global flags aside)", () => {
  for (const v of VERBS) {
    const shown = flagsInUsage(v.usage);
    const own = Object.keys(v.flags);
    for (const f of own) assert.ok(shown.has(f), `${verbName(v)}: --${f} is not in its usage "${v.usage}"`);
    for (const f of shown) assert.ok(own.includes(f), `${verbName(v)}: its usage shows --${f}, which it does not take`);
  }
});

test("a flag has one type in every verb and none shadows a global flag", () => {
  const seen = new Map<string, string>();
  for (const v of VERBS) {
    for (const [name, spec] of Object.entries(v.flags)) {
      assert.ok(!(name in GLOBAL_FLAGS), `${verbName(v)}: --${name} is a global flag`);
      const kind = `${spec.type}${spec.multiple ? "[]" : ""}`;
      assert.equal(seen.get(name) ?? kind, kind, `--${name} is ${seen.get(name)} elsewhere, ${kind} in ${verbName(v)}`);
      seen.set(name, kind);
    }
  }
});

test("the help is built from the definitions: every verb with its usage and help, every global flag", () => {
  const text = usageText(VERBS);
  assert.match(text, /^usage: unibus /);
  const squeezed = text.replace(/\s+/g, " ");
  for (const v of VERBS) {
    assert.ok(squeezed.includes(`${verbName(v)} ${v.usage}`.trim()), `the help lacks ${verbName(v)} ${v.usage}`);
    if (v.help) assert.ok(squeezed.includes(v.help), `the help lacks what ${verbName(v)} does`);
  }
  for (const f of Object.keys(GLOBAL_FLAGS)) assert.match(text, new RegExp(`^  (-h, )?--${f}\\b`, "m"));
  assert.ok(
    text.split("\n").every((l) => l.length <= 120),
    "a line of the help is wider than 120",
  );
});

test("a verb's own help says when --dry-run does not apply", () => {
  assert.match(verbHelp(byName("node logs")), /^usage: unibus \[global flags\] node logs <node> <service> /);
  assert.match(verbHelp(byName("node logs")), /--dry-run does not apply: node logs reads the log stream/);
  assert.doesNotMatch(verbHelp(byName("room create")), /--dry-run/);
});

test("the verb is the longest one the leading words name, global flags anywhere", () => {
  const all = allFlags(VERBS);
  const verbOf = (argv: string[]) => {
    const v = findVerb(VERBS, readArgv(argv, all).positionals);
    return v && verbName(v);
  };
  assert.equal(verbOf(["node", "invite", "revoke", "abc"]), "node invite revoke");
  assert.equal(verbOf(["node", "invite", "--note", "revoke"]), "node invite");
  assert.equal(verbOf(["--data-dir", "node", "--json", "user", "list"]), "user list");
  assert.equal(verbOf(["req", "unibus.cmd.membership.room.show", "{}"]), "req");
  assert.equal(verbOf(["node"]), null);
  assert.equal(verbOf(["bogus", "list"]), null);
  assert.equal(readArgv(["node", "-h"], all).help, true);
});

test("argv splits into global flags and the verb's own part", () => {
  const v = byName("member list");
  assert.deepEqual(splitArgv(v, ["--json", "member", "--room=ops", "list", "--timeout", "2s", "--limit", "5"]), {
    globalArgv: ["--json", "--timeout", "2s"],
    verbArgv: ["member", "--room=ops", "list", "--limit", "5"],
  });
  assert.deepEqual(splitArgv(byName("req"), ["req", "--", "s", "--x"]).verbArgv, ["req", "--", "s", "--x"]);
});

test("an unknown flag, a missing value or a value for a boolean is a usage error naming the flag and the verb's usage", () => {
  const refusal = (name: string, argv: string[]) => {
    try {
      splitArgv(byName(name), argv);
    } catch (err) {
      assert.ok(err instanceof CliError);
      assert.equal(err.exitCode, 2);
      assert.equal(err.code, "E_USAGE");
      return err.message;
    }
    return assert.fail(`${argv.join(" ")} was accepted`);
  };
  assert.equal(
    refusal("user list", ["user", "list", "--canary", "3", "--replicas", "9"]),
    "user list has no flag --canary (usage: unibus user list [--limit N] [--after KEY])",
  );
  assert.equal(
    refusal("audit replay", ["audit", "replay", "--trust", "K"]),
    "audit replay has no flag --trust (usage: unibus audit replay)",
  );
  assert.match(
    refusal("room create", ["room", "create", "r", "--subject"]),
    /^--subject takes a value \(usage: unibus room create <room> \[--subject TEXT\]\)$/,
  );
  assert.match(refusal("room list", ["room", "list", "--active=yes"]), /^--active takes no value /);
  assert.match(
    refusal("room create", ["room", "create", "r", "--subject", "--json"]),
    /^Option '--subject' argument is ambiguous \(usage: /,
  );
});

test("a verb's run gets the arguments after its words and its own flags, parsed", async () => {
  let seen: unknown;
  const probe = defineVerb({
    words: ["probe", "it"],
    usage: "<x> [--n N] [--on] [--k K]…",
    help: "",
    flags: { n: { type: "string" }, on: { type: "boolean" }, k: { type: "string", multiple: true } },
    dryRun: true,
    run: async ({ args, flags }) => {
      seen = { args, n: flags.n, on: flags.on, k: flags.k };
      return 0;
    },
  });
  const o = { dataDir: "/nonexistent", as: "admin", json: false, dryRun: false, timeoutMs: 5000 };
  assert.equal(
    await probe.invoke(["probe", "it", "x", "--n", "1", "--k", "a", "--on", "--k", "b"], openSession(o, undefined)),
    0,
  );
  assert.deepEqual(seen, { args: ["x"], n: "1", on: true, k: ["a", "b"] });
});

test("wrap keeps lines within the width and a number with its unit", () => {
  assert.deepEqual(wrap("status 2 s, start 15 s", 12), ["status 2 s,", "start 15 s"]);
  assert.deepEqual(wrap("", 10), []);
});
