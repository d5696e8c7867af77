// `membershipd rotate-ca begin|switch|finish [--data-dir DIR]`: the single-server plane's TLS CA
// replaced with an overlap (rotate-ca.ts; docs/operations.md, "Rotating the CAs").
import { runOneOff } from "../one-off.ts";
import { RotateCaError, rotateCa, type CaPhase } from "./rotate-ca.ts";

export { rotateCa, RotateCaError, type CaPhase } from "./rotate-ca.ts";

const usage = `usage: membershipd rotate-ca begin|switch|finish [--data-dir DIR]
  begin   make a new CA (DATA_DIR/tls/next/); ca.pem trusts the old and the new
  switch  the server's key and certificate from the new CA
  finish  retire the old CA; ca.pem trusts the new one alone
Restart membershipd after each phase; agents adopt the bundle when it starts (node.trust).`;

export function runRotateCa(argv: string[]): Promise<never> {
  return runOneOff(
    {
      name: "rotate-ca",
      usage,
      run: async (args) => {
        const [phase, ...rest] = args;
        if (phase !== "begin" && phase !== "switch" && phase !== "finish")
          throw new RotateCaError("E_USAGE", `expected begin, switch or finish\n${usage}`);
        const at = rest.indexOf("--data-dir");
        if ((at === -1 && rest.length) || (at !== -1 && (rest.length !== 2 || at !== 0)))
          throw new RotateCaError("E_USAGE", `unexpected arguments: ${rest.join(" ")}\n${usage}`);
        const dataDir = at === 0 ? rest[1]! : (process.env.UNIBUS_DATA_DIR ?? "local_files");
        return `${rotateCa(dataDir, phase as CaPhase)}\n`;
      },
    },
    argv,
  );
}
