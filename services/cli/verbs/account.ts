// `unibus account rotate-signing-key|retire-signing-key|status`: the UNIBUS account's signing key,
// rotated on a running control plane (docs/operations.md, "Rotating the account signing key").
import { need } from "../output.ts";
import { show } from "../session.ts";
import { defineVerb } from "../verb.ts";

interface HolderLine {
  key: string;
  role: string;
  name: string;
}

/** One line per identity still holding a JWT an older key signed. */
function holders(list: HolderLine[], what: string): string {
  if (list.length === 0) return `no identity ${what}`;
  return [`${list.length} identities ${what}:`, ...list.map((h) => `  ${h.role} ${h.name} ${h.key}`)].join("\n");
}

export const ACCOUNT_VERBS = [
  defineVerb({
    words: ["account", "rotate-signing-key"],
    usage: "[--key A…]",
    help:
      "mint every JWT with a new account signing key from now on; the old one stays valid until retired. " +
      "--key: one whose seed is already on every server (a cluster: generate-cluster-certs.sh --next-signing-key, then deploy)",
    flags: { key: { type: "string" } },
    dryRun: true,
    run: async ({ flags, o, send }) =>
      show(o, await send("account.rotate", flags.key ? { key: flags.key } : {}), (r) =>
        [
          `signing key ${r.key} mints from now on (it replaces ${r.replaces}, which stays valid until retired)`,
          holders(r.on_older_keys, "still hold a JWT an older key signed (nodes get new ones at their next connect)"),
        ].join("\n"),
      ),
  }),
  defineVerb({
    words: ["account", "retire-signing-key"],
    usage: "<key> [--force]",
    help: "stop listing an old signing key: the servers cut what it signed (refused while active nodes hold such JWTs, unless --force)",
    flags: { force: { type: "boolean" } },
    dryRun: true,
    run: async ({ args, flags, o, send }) => {
      const [key] = need(args, 1, "an account signing key (A…)");
      return show(o, await send("account.retire", { key, force: flags.force === true }), (r) =>
        [`signing key ${key} is retired`, holders(r.cut, "were cut off with it")].join("\n"),
      );
    },
  }),
  defineVerb({
    words: ["account", "status"],
    usage: "",
    help: "the account signing keys listed, the one that mints, and who still holds a JWT an older key signed",
    flags: {},
    dryRun: true,
    run: async ({ o, send }) =>
      show(o, await send("account.status", {}), (r) =>
        [
          `minting: ${r.current}`,
          `listed: ${r.listed.join(", ")}`,
          holders(r.on_older_keys, "hold a JWT an older key signed"),
        ].join("\n"),
      ),
  }),
];
