// The backup actions: `backup.create` writes one now and answers what it holds; `backup.fetch`
// hands a piece of one to the CLI (a reply carries at most BACKUP_FETCH_MAX_BYTES, well under the
// server's payload limit once in base64). In a cluster every membershipd serves the actions in one
// queue group, and a backup's file is on the server that wrote it: a fetch that names that server
// and reaches another is told so (E_WRONG_NODE) and sent again. The group prefers the subscriber on
// the caller's own server, so the CLI's fetches usually reach the writer at once.
import type { BackupAction } from "../../../schemas/mod.ts";
import { domainError, isDomainError } from "../../core/mod.ts";
import type { Handlers } from "../handlers.ts";
import type { Backups } from "./backups.ts";
import { readBackupChunk } from "./files.ts";

export function createBackupHandlers(backups: Backups): Handlers<BackupAction> {
  return {
    "backup.create": (a) => backups.create(a.recipient),
    "backup.fetch": async (a) => {
      if (a.server !== undefined && a.server !== backups.server)
        return domainError(
          "E_WRONG_NODE",
          `backup ${a.name} is on server ${a.server}; this membershipd runs on ${backups.server}: send the fetch again`,
        );
      const chunk = await readBackupChunk(backups.dir, a.name, a.offset, a.length);
      if (isDomainError(chunk)) return chunk;
      return { data: chunk.data.toString("base64"), eof: chunk.eof, size: chunk.size };
    },
  };
}
