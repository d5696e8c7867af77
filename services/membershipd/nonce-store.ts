// Where the pipeline claims a command's nonce and keeps its reply: the KV bucket UNIBUS_nonces in
// production (kvNonceStore: a create is atomic across every membershipd of a cluster), a Map in the
// pipeline's unit tests (MemoryNonceStore, the same answers).
import { JetStreamApiCodes, JetStreamApiError } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import type { Reply } from "../../schemas/mod.ts";

/** `claimed_at` (ms, wall clock) lets a copy take over a claim whose process died before replying. */
export interface NonceRecord {
  command: string;
  reply?: Reply;
  claimed_at?: number;
}

export interface NonceEntry {
  record: NonceRecord;
  revision: number;
}

export interface NonceStore {
  /** The record under `nonce`; null when there is none (or it was given back). */
  get(nonce: string): Promise<NonceEntry | null>;
  /** Claims `nonce`: false when another claim holds it. */
  create(nonce: string, record: NonceRecord): Promise<boolean>;
  /** Replaces the record at `revision`: false when it changed since. */
  update(nonce: string, record: NonceRecord, revision: number): Promise<boolean>;
  put(nonce: string, record: NonceRecord): Promise<void>;
  /** Gives the claim back. */
  delete(nonce: string): Promise<void>;
}

/** What KV `create` and `update` throw when the key exists or moved on. */
function isKeyTaken(err: unknown): boolean {
  return (
    err instanceof JetStreamApiError &&
    (err.code === JetStreamApiCodes.StreamWrongLastSequence ||
      err.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown)
  );
}

/** `false` for a taken key; any other failure (a timeout, a store restarting) is thrown. */
async function unlessTaken(write: Promise<unknown>): Promise<boolean> {
  try {
    await write;
    return true;
  } catch (err) {
    if (isKeyTaken(err)) return false;
    throw err;
  }
}

export function kvNonceStore(kv: KV): NonceStore {
  return {
    async get(nonce) {
      const e = await kv.get(nonce);
      return e && e.operation === "PUT" ? { record: e.json<NonceRecord>(), revision: e.revision } : null;
    },
    create: (nonce, record) => unlessTaken(kv.create(nonce, JSON.stringify(record))),
    update: (nonce, record, revision) => unlessTaken(kv.update(nonce, JSON.stringify(record), revision)),
    put: async (nonce, record) => void (await kv.put(nonce, JSON.stringify(record))),
    delete: (nonce) => kv.delete(nonce),
  };
}

export class MemoryNonceStore implements NonceStore {
  private readonly records = new Map<string, NonceEntry>();
  private revision = 0;

  async get(nonce: string): Promise<NonceEntry | null> {
    const e = this.records.get(nonce);
    return e ? { record: structuredClone(e.record), revision: e.revision } : null;
  }

  async create(nonce: string, record: NonceRecord): Promise<boolean> {
    if (this.records.has(nonce)) return false;
    return this.set(nonce, record);
  }

  async update(nonce: string, record: NonceRecord, revision: number): Promise<boolean> {
    if (this.records.get(nonce)?.revision !== revision) return false;
    return this.set(nonce, record);
  }

  async put(nonce: string, record: NonceRecord): Promise<void> {
    this.set(nonce, record);
  }

  async delete(nonce: string): Promise<void> {
    this.records.delete(nonce);
  }

  private set(nonce: string, record: NonceRecord): true {
    this.records.set(nonce, { record: structuredClone(record), revision: ++this.revision });
    return true;
  }
}
