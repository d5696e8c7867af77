// What bench/scale/run.ts and its agent processes (bench/scale/worker.ts) say to each other over IPC.

export type ToWorker =
  | {
      type: "setup";
      worker: number;
      /** Agents sim-<from> … sim-<to - 1>. */
      from: number;
      to: number;
      natsUrl: string;
      caFile: string;
      dir: string;
      bootstrapCreds: string;
      inviteSecret: string;
      /** A plain identity for the raw echo baseline (its own subjects under rawPrefix). */
      rawCreds: Uint8Array;
      rawPrefix: string;
      enrollWidth: number;
      connectWidth: number;
      reportWidth: number;
    }
  | { type: "enroll" }
  | { type: "connect" }
  | { type: "report"; round: number }
  | { type: "census" }
  /** Start a CPU profile, or stop it and write it to `file` (SCALE_PROFILE_FANOUT). */
  | { type: "profile"; file?: string }
  | { type: "stop" };

export type FromWorker =
  | { type: "ready" }
  | { type: "enrolled"; times: number[]; refusals: Record<string, number> }
  | { type: "connected"; agents: number; nodes: string[]; failures: string[] }
  | { type: "reported"; ok: number; refusals: Record<string, number> }
  | { type: "closed"; node: string; at: number }
  | { type: "census"; connected: number; closed: number; other: number; errors: Record<string, number> }
  | { type: "profiled" }
  | { type: "stopped" }
  | { type: "failed"; message: string };
