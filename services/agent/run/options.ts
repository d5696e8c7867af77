// What `startAgent` is given and what it hands back.
import type { NodeStore } from "../node-store.ts";
import type { Supervisor, Tools } from "../supervisor/mod.ts";
import type { OwnerVault, RateLimit, Secrets } from "../vault/mod.ts";
import type { Codes } from "../../core/mod.ts";
import type { WgPeer } from "../../../schemas/mod.ts";

export class AgentError extends Error {
  constructor(
    readonly code: Codes<"E_NOT_ENROLLED" | "E_SERVICE_CONFIG" | "E_HOST_SETTING">,
    message: string,
  ) {
    super(message);
  }
}

export interface AgentOptions {
  store: NodeStore;
  /** Where `<service>.json` files are (default `<data dir>/services`). */
  servicesDir?: string;
  log: (line: string) => void;
  /** Test hook: the supervisor's tools (bwrap, setpriv, prlimit paths). */
  tools?: Partial<Tools>;
  vault?: AgentVaultOptions;
  /** Where bwrap cannot run, run releases' install and health steps unsandboxed (else they are refused). */
  allowUnsandboxedSteps?: boolean;
  /**
   * Real paths the operator permits service data below (--writable-root), besides
   * `<data dir>/service-data/<service>`.
   */
  writableRoots?: readonly string[];
  /** The WireGuard mesh (--mesh): its interface kept in step with the fleet's peers, and its filter (--firewall). */
  mesh?: {
    iface: string;
    firewall?: { route?: { port: number; peers: readonly string[] } };
    /** --mesh-static: the control plane's own peers, kept whatever node.mesh lists. */
    staticPeers?: readonly WgPeer[];
    /** --mesh-state: where the mesh's state is written for membershipd's /healthz. */
    stateFile?: string;
  };
}

/** Vault mode: this node's data key split among its peers (services/agent/vault). */
export interface AgentVaultOptions {
  /** Make a vault (a new key, shares to the peers) when the data dir has none yet. */
  create?: boolean;
  initialSecrets?: Secrets;
  backoffUnitMs?: number;
  checkIntervalMs?: number;
  threshold?: number | null;
  minGuardians?: number;
  rateLimit?: RateLimit;
  /**
   * The operator's X25519 key (a curve nkey X…, or a passphrase's scrypt:…:X… spec): a vault made
   * while the fleet is under 5 nodes is kept under it (genesis).
   */
  genesisKey?: string | null;
  /** Test hook: this node, as a guardian, alters the shares it releases. */
  tamper?: (share: Uint8Array) => void;
  /**
   * Where the unlocked key is handed to its consumers (tmpfs; default $UNIBUS_KEY_RUNTIME_DIR or
   * /run/unibus/<node>).
   */
  keyRuntimeDir?: string;
  /** Root only: open the LUKS devices services declare (cryptsetup). */
  allowLuks?: boolean;
}

export interface RunningAgent {
  node: string;
  /**
   * Resolves with the exit code once the agent has stopped: 0 (SIGTERM, or `leave`),
   * EXIT_RESTART_INTO_SLOT after a switch of its own code, EXIT_TRIAL_UNHEALTHY when its new code
   * did not come up healthy in time (the boot step then counts the try).
   */
  done: Promise<number>;
  stop(): Promise<void>;
  supervisor: Supervisor;
  /** The owner's side of the vault (state "off" unless vault mode). */
  vault: OwnerVault;
}
