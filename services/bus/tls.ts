// The cluster CA and this server's certificate, made with openssl on first start into
// DATA_DIR/tls/ (keys 0600). The server presents its certificate followed by the CA, so a joining
// node can check the CA against the fingerprint in its invite before it sends anything.
import { execFileSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ErrorCode } from "../core/mod.ts";

export interface TlsMaterial {
  dir: string;
  caFile: string;
  chainFile: string;
  keyFile: string;
  /** SHA-256 of the CA certificate's DER, lowercase hex without colons. */
  caFingerprint: string;
}

export class TlsError extends Error {
  readonly code = "E_TLS" satisfies ErrorCode;
}

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync("openssl", args, { cwd, stdio: ["ignore", "ignore", "pipe"] });
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim();
    throw new TlsError(`openssl ${args[0]} failed: ${stderr || (err as Error).message}`);
  }
}

export function caFingerprint(pem: string): string {
  return new X509Certificate(pem).fingerprint256.replace(/:/g, "").toLowerCase();
}

/** Creates the CA and a server certificate for `names` (DNS names and IPs) unless they exist. */
export function ensureTlsMaterial(dir: string, serverName: string, names: string[]): TlsMaterial {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const m = {
    dir,
    caFile: join(dir, "ca.pem"),
    chainFile: join(dir, "server-chain.pem"),
    keyFile: join(dir, "server.key"),
  };
  if (!existsSync(m.caFile)) {
    openssl(
      [
        "req",
        "-x509",
        "-new",
        "-nodes",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "3650",
        "-subj",
        `/CN=unibus CA ${serverName}`,
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
      ],
      dir,
    );
    chmodSync(join(dir, "ca.key"), 0o600);
  }
  if (!existsSync(m.chainFile)) {
    const san = [...new Set(["localhost", "127.0.0.1", serverName, ...names])]
      .map((n) => (/^[\d.]+$/.test(n) || n.includes(":") ? `IP:${n}` : `DNS:${n}`))
      .join(",");
    writeFileSync(
      join(dir, "server.ext"),
      `subjectAltName=${san}\nextendedKeyUsage=serverAuth,clientAuth\nkeyUsage=critical,digitalSignature\n`,
    );
    openssl(
      [
        "req",
        "-new",
        "-nodes",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        `/CN=${serverName}`,
      ],
      dir,
    );
    chmodSync(join(dir, "server.key"), 0o600);
    openssl(
      [
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "825",
        "-extfile",
        "server.ext",
      ],
      dir,
    );
    writeFileSync(m.chainFile, readFileSync(join(dir, "server.pem"), "utf8") + readFileSync(m.caFile, "utf8"));
    for (const f of ["server.csr", "server.ext"]) rmSync(join(dir, f), { force: true });
  }
  return { ...m, caFingerprint: caFingerprint(presentedCa(readFileSync(m.chainFile, "utf8"))) };
}

/**
 * The CA the server presents: the last certificate of its chain. Invites carry its fingerprint;
 * ca.pem may hold two CAs during a rotation (docs/operations.md, "Rotating the CAs").
 */
function presentedCa(chainPem: string): string {
  const blocks = chainPem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g);
  if (!blocks?.length) throw new TlsError("the server's certificate chain holds no certificate");
  return blocks[blocks.length - 1]!;
}
