// Every live record of a KV bucket in one pass over its stream (last value per key), rather than
// a request per key.
import { DeliverPolicy, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";

export async function readKvSnapshot(js: JetStreamClient, jsm: JetStreamManager, bucket: string): Promise<Map<string, any>> {
  const stream = `KV_${bucket}`;
  const out = new Map<string, any>();
  const info = await jsm.streams.info(stream);
  if (info.state.messages === 0) return out;
  const prefix = `$KV.${bucket}.`;
  const consumer = await js.consumers.get(stream, { deliver_policy: DeliverPolicy.LastPerSubject });
  const messages = await consumer.consume({ max_messages: 4096 });
  try {
    for await (const m of messages) {
      const op = m.headers?.get("KV-Operation");
      const key = m.subject.slice(prefix.length);
      if (op === "DEL" || op === "PURGE") out.delete(key);
      else out.set(key, m.json());
      if (m.info.pending === 0) break;
    }
  } finally {
    await messages.close();
  }
  return out;
}
