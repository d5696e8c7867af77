// The agent's version: the package's, or, in a bundle built as a release of the agent's own code
// (scripts/build-agent-release.ts), the release's version, which esbuild writes in for
// UNIBUS_AGENT_BUILD_VERSION (a bundle has no package.json next to it).
import { readFileSync } from "node:fs";

declare const UNIBUS_AGENT_BUILD_VERSION: string | undefined;

export const AGENT_VERSION: string =
  typeof UNIBUS_AGENT_BUILD_VERSION === "string"
    ? UNIBUS_AGENT_BUILD_VERSION
    : (JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")).version as string);
