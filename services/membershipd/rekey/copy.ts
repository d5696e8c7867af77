// The old store's streams into the new one, in-process: the backup's snapshot reader hands out each
// stream's messages up to the cut, the restore's StreamReplay republishes every one at its own
// sequence with its headers, and each copied stream is compared with the cut. No file is written and
// no operator key is needed: the records never leave this process.
import type { NatsConnection } from "@nats-io/transport-node";
import type { JetStreamManager } from "@nats-io/jetstream";
import { snapshotRecords, type BackupCut } from "../backup/mod.ts";
import { restoreProgress, StreamReplay, type ReplayedStream, type StagingServer } from "../restore/mod.ts";
import { RekeyError } from "./errors.ts";
import { EVENTS_STREAM } from "../../bus/mod.ts";
import { eventsHead } from "./streams.ts";

export interface CopySource {
  nc: NatsConnection;
  jsm: JetStreamManager;
  dataDir: string;
}

export async function copyStreams(
  from: CopySource,
  to: StagingServer,
  cut: BackupCut,
  signal?: AbortSignal,
): Promise<ReplayedStream[]> {
  const progress = restoreProgress(
    cut.streams.reduce((n, s) => n + s.messages, 0),
    { label: "membershipd rekey-store" },
  );
  const copied: ReplayedStream[] = [];
  let replay: StreamReplay | null = null;
  let done = 0;
  for await (const r of snapshotRecords({ ...from, cut, ...(signal ? { signal } : {}) })) {
    if (signal?.aborted) throw new RekeyError("E_REKEY_FAILED", "interrupted; the old store was left as it was");
    if (r.t === "stream") {
      if (replay) copied.push(await replay.finish());
      const entry = cut.streams.find((s) => s.name === r.name)!;
      replay = new StreamReplay(to.publisher, to.jsm, r.name, r.config, entry);
      await replay.create();
    } else if (r.t === "msg") {
      await replay!.put(r);
      progress.update(++done);
    } else if (r.t === "end") {
      if (replay) copied.push(await replay.finish());
      replay = null;
    }
  }
  progress.end(done);
  await compare(cut, copied, to.jsm);
  return copied;
}

/** Every stream of the cut is in the new store with its count and last sequence, and the chain head is the same. */
async function compare(cut: BackupCut, copied: ReplayedStream[], jsm: JetStreamManager): Promise<void> {
  for (const s of cut.streams) {
    const c = copied.find((x) => x.name === s.name);
    if (!c || c.messages !== s.messages || c.lastSeq !== s.last_seq)
      throw new RekeyError(
        "E_REKEY_FAILED",
        `stream ${s.name} holds ${c?.messages ?? 0} messages up to ${c?.lastSeq ?? 0} in the new store, not ${s.messages} up to ${s.last_seq}; the old store was left as it was`,
      );
  }
  const events = cut.streams.find((s) => s.name === EVENTS_STREAM)!;
  const head = await eventsHead(jsm, events);
  if (head !== cut.eventsHead)
    throw new RekeyError(
      "E_REKEY_FAILED",
      `the new store's event chain head ${head} is not the old one's ${cut.eventsHead}; the old store was left as it was`,
    );
}
