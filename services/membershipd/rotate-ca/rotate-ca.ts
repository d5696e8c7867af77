// `membershipd rotate-ca begin|switch|finish`: the single-server plane's client TLS CA (the one
// membershipd made in DATA_DIR/tls/) replaced with an overlap, as a cluster does it with
// generate-cluster-certs.sh --rotate-cas. Each phase changes files only; membershipd takes them at
// its next start, and a start on a CA bundle it has not announced tells the agents to fetch it
// (node.trust's tls_ca), which they adopt while it shares a CA with theirs.
//   begin   a new CA in tls/next/; ca.pem trusts the old and the new
//   switch  a new server key and certificate from the new CA, with the old one's names
//   finish  the old CA moves to tls/retired-<time>/; ca.pem trusts the new one alone
import { execFileSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ErrorCode } from "../../core/mod.ts";

export class RotateCaError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export type CaPhase = "begin" | "switch" | "finish";

const PEM = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g;
const certsOf = (file: string) => readFileSync(file, "utf8").match(PEM) ?? [];

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync("openssl", args, { cwd, stdio: ["ignore", "ignore", "pipe"] });
  } catch (err) {
    throw new RotateCaError(
      "E_TLS",
      `openssl ${args[0]} failed: ${(err as { stderr?: Buffer }).stderr?.toString().trim()}`,
    );
  }
}

/** Atomically replaces `file` (0644: certificates; 0600 for keys). */
function put(file: string, text: string, mode = 0o644): void {
  writeFileSync(`${file}.tmp`, text, { mode });
  renameSync(`${file}.tmp`, file);
}

function makeCa(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const cn = `unibus CA ${new Date().toISOString().slice(0, 19)}`;
  // biome-ignore format: one openssl line
  openssl(["req", "-x509", "-new", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-keyout", "ca.key", "-out", "ca.pem", "-days", "3650", "-subj", `/CN=${cn}`, "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"], dir);
  chmodSync(join(dir, "ca.key"), 0o600);
}

/** The subjectAltName of a certificate as openssl's extension text ("DNS:a,IP:1.2.3.4"). */
function sanOf(certPem: string): string {
  const san = new X509Certificate(certPem).subjectAltName ?? "";
  return san
    .split(", ")
    .filter(Boolean)
    .map((n) => n.replace(/^IP Address:/, "IP:"))
    .join(",");
}

/** A new server key and certificate in `tls` from the CA in `caDir`, with the names of the current one. */
function issueServer(tls: string, caDir: string): void {
  const current = certsOf(join(tls, "server-chain.pem"))[0];
  if (!current) throw new RotateCaError("E_TLS", `${tls}/server-chain.pem holds no certificate`);
  const cn = new X509Certificate(current).subject.match(/CN=([^\n]+)/)?.[1] ?? "unibus";
  writeFileSync(
    join(tls, "server.ext"),
    `subjectAltName=${sanOf(current)}\nextendedKeyUsage=serverAuth,clientAuth\nkeyUsage=critical,digitalSignature\n`,
  );
  // biome-ignore format: one openssl line
  openssl(["req", "-new", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-keyout", "server.key.new", "-out", "server.csr", "-subj", `/CN=${cn}`], tls);
  // biome-ignore format: one openssl line
  openssl(["x509", "-req", "-in", "server.csr", "-CA", join(caDir, "ca.pem"), "-CAkey", join(caDir, "ca.key"), "-CAcreateserial", "-out", "server.pem.new", "-days", "825", "-extfile", "server.ext"], tls);
  const chain = readFileSync(join(tls, "server.pem.new"), "utf8") + readFileSync(join(caDir, "ca.pem"), "utf8");
  // The key first: a chain never names a key that is not in place.
  chmodSync(join(tls, "server.key.new"), 0o600);
  renameSync(join(tls, "server.key.new"), join(tls, "server.key"));
  renameSync(join(tls, "server.pem.new"), join(tls, "server.pem"));
  put(join(tls, "server-chain.pem"), chain);
  for (const f of ["server.csr", "server.ext"]) rmSync(join(tls, f), { force: true });
}

const presented = (tls: string) => certsOf(join(tls, "server-chain.pem")).at(-1) ?? "";
const same = (a: string, b: string) => a.trim() === b.trim();

/** Runs one phase on DATA_DIR/tls; returns what it did, in one line. */
export function rotateCa(dataDir: string, phase: CaPhase): string {
  const tls = join(dataDir, "tls");
  const next = join(tls, "next");
  if (!existsSync(join(tls, "ca.key")))
    throw new RotateCaError(
      "E_TLS",
      `${tls} holds no CA key: this plane's TLS material is not membershipd's own (a cluster's comes from generate-cluster-certs.sh)`,
    );
  const current = readFileSync(join(tls, "ca.pem"), "utf8").match(PEM)![0]!;
  if (phase === "begin") {
    if (existsSync(join(next, "ca.pem")))
      throw new RotateCaError("E_CONFLICT", "a CA rotation is under way already (tls/next/): switch or finish it");
    makeCa(next);
    put(join(tls, "ca.pem"), current + readFileSync(join(next, "ca.pem"), "utf8"));
    return "begin: a new CA is in tls/next/ and ca.pem trusts the old and the new; restart membershipd, then wait until every agent trusts both (unibus node status: agent.tls_cas)";
  }
  if (!existsSync(join(next, "ca.pem")))
    throw new RotateCaError("E_CONFLICT", "no CA rotation is under way (tls/next/): run begin first");
  const nextPem = readFileSync(join(next, "ca.pem"), "utf8");
  if (phase === "switch") {
    issueServer(tls, next);
    return "switch: the server's certificate is from the new CA; restart membershipd";
  }
  if (!same(presented(tls), nextPem))
    throw new RotateCaError(
      "E_CONFLICT",
      "the server's certificate is not from the new CA yet: run switch (and restart) first",
    );
  const retired = join(tls, `retired-${new Date().toISOString().replace(/[:.]/g, "")}`);
  mkdirSync(retired, { mode: 0o700 });
  renameSync(join(tls, "ca.key"), join(retired, "ca.key"));
  put(join(retired, "ca.pem"), current);
  renameSync(join(next, "ca.key"), join(tls, "ca.key"));
  put(join(tls, "ca.pem"), nextPem);
  rmSync(next, { recursive: true, force: true });
  return `finish: ca.pem trusts the new CA alone; the old one is in ${retired}; restart membershipd`;
}
