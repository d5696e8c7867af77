// Fetching a release's tarball from the replicated object store UNIBUS_releases, bounded: a
// stored object larger than the manifest says is cut off and refused, never read to its end. The
// agent reads it by direct get (services/bus/release-objects.ts): a node may create no consumer.
import type { ObjectStore } from "@nats-io/obj";
import type { NatsConnection } from "@nats-io/transport-node";
import { readReleaseObject, RELEASES_OBJECT_STORE } from "../../bus/release-objects.ts";
import type { Result } from "../../core/mod.ts";

export { RELEASES_OBJECT_STORE };

/** The tarball's bytes, read no further than the manifest's size. */
export type Fetched = Result<Uint8Array, "E_RELEASE_NOT_FOUND" | "E_RELEASE_TAMPERED" | "E_UNAVAILABLE">;
export type ReleaseFetcher = (object: string, maxBytes: number) => Promise<Fetched>;

export function objectStoreFetcher(nc: () => NatsConnection | null): ReleaseFetcher {
  return async (object, maxBytes) => {
    const conn = nc();
    if (!conn)
      return {
        ok: false,
        error: { code: "E_UNAVAILABLE", message: "not connected to NATS; the release cannot be downloaded now" },
      };
    try {
      return await readReleaseObject(conn, object, maxBytes);
    } catch (err) {
      return {
        ok: false,
        error: { code: "E_UNAVAILABLE", message: `the object store could not be read: ${(err as Error).message}` },
      };
    }
  };
}

/** The same bounded read through a nats.js object store handle (tests that set up their own store). */
export async function readBounded(store: ObjectStore, object: string, maxBytes: number): Promise<Fetched> {
  const r = await store.get(object);
  if (!r)
    return {
      ok: false,
      error: {
        code: "E_RELEASE_NOT_FOUND",
        message: `the release's tarball (${object}) is not in ${RELEASES_OBJECT_STORE}`,
      },
    };
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = r.data.getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > maxBytes) {
      await reader.cancel().catch(() => {});
      return {
        ok: false,
        error: {
          code: "E_RELEASE_TAMPERED",
          message: `the stored tarball is larger than the ${maxBytes} bytes its manifest says`,
        },
      };
    }
    chunks.push(value);
  }
  const err = await r.error;
  // The client checks the object's own SHA-256 digest; ours (against the signed manifest) follows.
  if (err)
    return {
      ok: false,
      error: {
        code: "E_RELEASE_TAMPERED",
        message: `the stored tarball failed its object-store check: ${err.message}`,
      },
    };
  return { ok: true, value: Buffer.concat(chunks) };
}
