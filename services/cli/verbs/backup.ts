// `unibus backup keygen|verify`: the operator's key for backups and the offline check of a backup
// file (services/cli/backup-verify.ts). `backup create` is in backup-create.ts.
import { backupKeygen, backupVerify, reportText } from "../backup-verify.ts";
import { EXIT, need, print, usageError } from "../output.ts";
import { defineVerb } from "../verb.ts";

const OFFLINE = "works on files here; there is no command to print with --dry-run";

export const BACKUP_VERBS = [
  defineVerb({
    words: ["backup", "keygen"],
    usage: "--out FILE",
    help:
      "a new X25519 key pair for backups: the seed (a curve nkey, SX…) goes to FILE with mode 0600, never over an existing " +
      "file; prints the public key X… to give backup create --recipient. Keep FILE off the servers",
    flags: { out: { type: "string" } },
    dryRun: OFFLINE,
    run: async ({ args, flags, o }) => {
      need(args, 0, "no arguments, only --out FILE");
      const r = backupKeygen(flags.out ?? usageError("expected backup keygen --out FILE"));
      if (!o.json) process.stderr.write(`unibus: wrote the backup key's seed to ${r.seed_file} (mode 0600)\n`);
      print(o.json, r, () => r.public_key);
      return EXIT.ok;
    },
  }),
  defineVerb({
    words: ["backup", "verify"],
    usage: "FILE --key FILE [--cluster NAME] [--trust KEY]…",
    help:
      "checks a backup file without a server and without restoring anything: its SHA-256 and signature, that its key opens " +
      "with the seed in --key (a 0600 file from backup keygen), every record, and every event's signature and hash chain as " +
      "audit verify does; --cluster refuses a backup of another cluster, --trust pins the keys its genesis may be signed by",
    flags: {
      key: { type: "string" },
      cluster: { type: "string" },
      trust: { type: "string", multiple: true },
    },
    dryRun: OFFLINE,
    run: async ({ args, flags, o }) => {
      const [file] = need(args, 1, "one backup FILE") as [string];
      const key = flags.key ?? usageError("expected --key FILE (the seed backup keygen wrote, mode 0600)");
      const r = await backupVerify(file, { key, cluster: flags.cluster, trust: flags.trust, showProgress: !o.json });
      print(o.json, r, () => reportText(r));
      return EXIT.ok;
    },
  }),
];
