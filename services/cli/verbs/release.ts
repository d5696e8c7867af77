// `unibus release …`: build, sign and publish releases (services/cli/release.ts), list and show them.
import { LIMIT_FLAG, limitArg, PAGE_USAGE, pageText } from "./limit.ts";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { canonicalJson, publicKeyLine, publicKeyOf } from "../../core/mod.ts";
import { need, table, usageError } from "../output.ts";
import {
  buildRelease,
  checkPublisherTrust,
  presigned,
  publisherTrustedKeys,
  signedHere,
  signingKey,
  upload,
} from "../release.ts";
import { show } from "../session.ts";
import { defineVerb } from "../verb.ts";

const RELEASE_FLAGS = {
  version: { type: "string" },
  name: { type: "string" },
  notes: { type: "string" },
  spec: { type: "string" },
} as const;

export const RELEASE_VERBS = [
  defineVerb({
    words: ["release", "publish"],
    usage:
      "<dir|tarball> --version V --key FILE [--name N] [--notes T] [--spec FILE] | <tarball> --manifest FILE [--signature FILE.minisig] [--trusted-keys FILE]",
    help:
      "tars a directory, signs its manifest (minisign format) with the key in a 0600 file (nkey seed or minisign -W secret key), " +
      "uploads to UNIBUS_releases, publishes it; or publishes a manifest signed with minisign (release manifest, then minisign -S). " +
      "Nothing is stored unless the signature verifies against a trusted key: --trusted-keys FILE, else <data dir>/release-keys.pub (the agents' file)",
    flags: {
      ...RELEASE_FLAGS,
      key: { type: "string" },
      manifest: { type: "string" },
      signature: { type: "string" },
      "trusted-keys": { type: "string" },
    },
    dryRun: true,
    run: async ({ args, flags, o, send, connection }) => {
      const trusted = publisherTrustedKeys(o.dataDir, flags["trusted-keys"]);
      const [input] = need(args, 1, "<dir|tarball>") as [string];
      const release = flags.manifest
        ? presigned(input, flags.manifest, flags.signature)
        : signedHere(
            input,
            flags.key ??
              usageError("--key FILE (a 0600 nkey seed or minisign secret key), or --manifest and --signature"),
            flags,
          );
      checkPublisherTrust(release, trusted);
      if (!o.dryRun) await upload(await connection(), release.tarball, release.manifest);
      return show(
        o,
        await send("release.publish", { manifest: release.manifest, signature: release.signature }),
        (r) =>
          `published ${r.name} ${r.version} (${r.size} bytes, sha256 ${r.sha256.slice(0, 16)}…)${r.published ? "" : " (already published)"}`,
      );
    },
  }),
  defineVerb({
    words: ["release", "manifest"],
    usage: "<dir|tarball> --version V [--name N] [--notes T] [--spec FILE] [--out DIR]",
    help: "writes the tarball and the canonical manifest to sign with minisign -S",
    flags: { ...RELEASE_FLAGS, out: { type: "string" } },
    dryRun: "only writes files here; there is no command to print with --dry-run",
    run: async ({ args, flags, o }) => {
      const [input] = need(args, 1, "<dir|tarball>") as [string];
      const { tarball, manifest } = buildRelease(input, flags);
      const base = join(flags.out ?? ".", `${manifest.name}-${manifest.version}`);
      writeFileSync(`${base}.tar.gz`, tarball);
      // The exact bytes a signature covers: sign this file with minisign -S -m.
      writeFileSync(`${base}.manifest.json`, canonicalJson(manifest));
      return show(
        o,
        { tarball: `${base}.tar.gz`, manifest: `${base}.manifest.json`, sha256: manifest.sha256 },
        (r) =>
          `wrote ${r.tarball} and ${r.manifest}\n# sign: minisign -S -m ${r.manifest}\n# then: unibus release publish ${r.tarball} --manifest ${r.manifest} --signature ${r.manifest}.minisig`,
      );
    },
  }),
  defineVerb({
    words: ["release", "list"],
    usage: `[--name N] ${PAGE_USAGE}`,
    help: "",
    flags: { name: { type: "string" }, ...LIMIT_FLAG },
    dryRun: true,
    run: async ({ flags, o, send }) =>
      show(o, await send("release.list", { ...(flags.name ? { name: flags.name } : {}), ...limitArg(flags) }), (r) =>
        pageText(r, table(r.items, ["name", "version", "size", "key_id", "published_at"])),
      ),
  }),
  defineVerb({
    words: ["release", "show"],
    usage: "<name> <version>",
    help: "",
    flags: {},
    dryRun: true,
    run: async ({ args, o, send }) => {
      const [name, version] = need(args, 2, "<name> <version>");
      return show(o, await send("release.show", { name, version }), (r) => JSON.stringify(r, null, 2));
    },
  }),
  defineVerb({
    words: ["release", "key"],
    usage: "<key file>",
    help: "the public key for agents' release-keys.pub",
    flags: {},
    dryRun: "only reads the key file; there is no command to print with --dry-run",
    run: async ({ args, o }) => {
      const k = signingKey(need(args, 1, "<key file>")[0]!);
      return show(
        o,
        { key_id: k.keyId, public_key: publicKeyLine(publicKeyOf(k)) },
        (r) => `untrusted comment: minisign public key ${r.key_id}\n${r.public_key}`,
      );
    },
  }),
];
