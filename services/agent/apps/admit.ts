// Whether this node may run an app as membershipd hands it over: its manifest signed by one of
// the node's own trusted release keys (membershipd's word is not enough), the app and version it
// was desired as, an agent new enough, and every permission enforceable here; then its services
// rendered at their places on this node. Used for an install and again for each start after an
// agent restart.
import type { AppManifest, ServiceConfig } from "../../../schemas/mod.ts";
import { compareVersions, isDomainError, verifyAppManifest, type MinisignPublicKey } from "../../core/mod.ts";
import type { AppsLayout } from "./layout.ts";
import type { AppCode, AppProblem } from "./problem.ts";
import { appServiceConfigs } from "./render.ts";

export interface AdmitContext {
  layout: AppsLayout;
  trustedKeys(): readonly MinisignPublicKey[];
  agentVersion: string;
  /** The kernel has Landlock's TCP port rules (supervisor's landlockNetSupported). */
  landlockNet(): boolean;
  /** This node can hand its data key to a service (vault mode). */
  dataKey: boolean;
}

export interface AppToRun {
  app: string;
  version: string;
  manifest: unknown;
  signature: string;
  settings: Record<string, unknown>;
}

export type Admitted =
  | { ok: true; manifest: AppManifest; keyId: string; configs: ServiceConfig[] }
  | { ok: false; error: AppProblem };

export function admitApp(a: AppToRun, ctx: AdmitContext): Admitted {
  const v = verifyAppManifest(a.manifest, a.signature, ctx.trustedKeys());
  if (isDomainError(v)) return refused(v.code as AppCode, v.message);
  const m = v.manifest;
  if (m.name !== a.app || m.version !== a.version)
    return refused(
      "E_APP_INVALID",
      `the signed manifest is of ${m.name} ${m.version}, not of ${a.app} ${a.version} as desired`,
    );
  if (compareVersions(ctx.agentVersion, m.min_agent_version) < 0)
    return refused(
      "E_AGENT_TOO_OLD",
      `app ${m.name} ${m.version} needs agent ${m.min_agent_version} or newer; this one is ${ctx.agentVersion}`,
    );
  // Any network is the host's narrowed by the Landlock helper (render.ts's `ports`), which cannot run without them.
  const ports = m.permissions.network.listen.map((p) => p.port);
  if ((ports.length > 0 || m.permissions.network.outbound) && !ctx.landlockNet())
    return refused(
      "E_APP_UNENFORCEABLE",
      ports.length > 0
        ? `app ${m.name} listens on TCP port ${ports.join(", ")}, and this kernel lacks Landlock's TCP port rules (Linux 6.7 or newer), so it could not be held to those ports`
        : `app ${m.name} connects out, and this kernel lacks Landlock's TCP port rules (Linux 6.7 or newer), so it could not be kept from listening on ports it does not declare`,
    );
  const rendered = appServiceConfigs(m, {
    codeDir: ctx.layout.code(m.name, m.version),
    volumes: Object.fromEntries(m.permissions.volumes.map((vol) => [vol.name, ctx.layout.volume(m.name, vol.name)])),
    settings: a.settings,
    dataKey: ctx.dataKey,
  });
  if (!rendered.ok) return rendered;
  return { ok: true, manifest: m, keyId: v.keyId, configs: rendered.configs };
}

const refused = (code: AppCode, message: string): Admitted => ({ ok: false, error: { code, message } });
