// App manifests for the pure tests: the smallest valid manifest, with what a test changes.
import { AppManifest, type AppManifestInput } from "../../../schemas/mod.ts";

export function manifest(
  name: string,
  version: string,
  o: Partial<Omit<AppManifestInput, "v" | "kind" | "name" | "version">> = {},
): AppManifest {
  return AppManifest.parse({
    v: 1,
    kind: "app",
    name,
    version,
    description: `${name} for tests`,
    sha256: "ab".repeat(32),
    size: 1024,
    min_agent_version: "0.0.1",
    created_at: "2026-01-01T00:00:00.000Z",
    services: [{ name: "main", command: "bin/main" }],
    ...o,
  });
}
