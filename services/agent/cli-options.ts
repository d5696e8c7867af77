// unibus-agent's flags, shared with the boot step (update/boot-cli.ts), which reads the same argv
// for --data-dir and must not pull in the daemon's modules to do so.
export const options = {
  "data-dir": { type: "string" },
  name: { type: "string" },
  label: { type: "string", multiple: true },
  json: { type: "boolean" },
  timeout: { type: "string" },
  token: { type: "string" },
  "token-file": { type: "string" },
  bundle: { type: "string" },
  "bundle-file": { type: "string" },
  "services-dir": { type: "string" },
  help: { type: "boolean", short: "h" },
  vault: { type: "boolean" },
  "genesis-key": { type: "string" },
  "allow-unsandboxed-steps": { type: "boolean" },
  "allow-luks": { type: "boolean" },
  from: { type: "string" },
  "operator-key": { type: "string" },
  "no-cold-start": { type: "boolean" },
  "writable-root": { type: "string", multiple: true },
  "wg-endpoint": { type: "string" },
  mesh: { type: "boolean" },
  "wg-interface": { type: "string" },
  firewall: { type: "boolean" },
  "route-port": { type: "string" },
  "route-peer": { type: "string", multiple: true },
  "disable-ipv6": { type: "boolean" },
  "rotate-key": { type: "boolean" },
  "no-wg-endpoint": { type: "boolean" },
  "mesh-static": { type: "string" },
  "mesh-state": { type: "string" },
  "overlay-address": { type: "string" },
  "listen-port": { type: "string" },
} as const;

/** Where the data dir is: --data-dir, UNIBUS_AGENT_DATA_DIR, or local_files/agent (relative to the working directory). */
export const DEFAULT_DATA_DIR = "local_files/agent";
