import { isIPv4, isIPv6 } from "node:net";
import { z } from "zod";

/** A name that is safe as one NATS subject token and one KV key token: no dots, wildcards or spaces. */
/** A dotted-quad IPv4 address, as overlay addresses are written. */
export const Ipv4 = z.string().regex(/^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/);

export const Slug = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, "must be 1-63 of a-z 0-9 _ - starting with a letter or digit");
export const UserPublicKey = z.string().regex(/^U[A-Z2-7]{55}$/, "must be an nkey user public key (U…)");
export const NodePublicKey = z.string().regex(/^[UN][A-Z2-7]{55}$/, "must be an nkey public key");
/** An nkey account public key (A…): the UNIBUS account's signing keys. */
export const AccountPublicKey = z.string().regex(/^A[A-Z2-7]{55}$/, "must be an nkey account public key (A…)");
export const CurvePublicKey = z.string().regex(/^X[A-Z2-7]{55}$/, "must be an nkey curve public key (X…)");
/**
 * A WireGuard public key as `wg pubkey` prints it: 32 bytes in standard base64, 44 characters with
 * one `=` (the last data character carries 4 bits, so only 16 letters may stand there).
 */
export const WgPublicKey = z
  .string()
  .regex(/^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/, "must be a WireGuard public key (44 characters of base64)");

/** `host:port`, `[v6]:port`: a DNS name (RFC 1123 labels), an IPv4 or a bracketed IPv6 address, port 1-65535. */
export function wgEndpointProblem(text: string): string | null {
  if (text.length > 261) return "is longer than a host name and a port can be";
  const m = /^(?:\[([^\]]+)\]|([^\s:[\]]+)):(\d{1,5})$/.exec(text);
  if (!m) return "must be host:port (or [IPv6]:port)";
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return "has a port outside 1-65535";
  const host = m[2];
  if (host === undefined) return isIPv6(m[1]!) ? null : "has brackets around something that is not an IPv6 address";
  if (/^[\d.]+$/.test(host)) return isIPv4(host) ? null : "has a malformed IPv4 address";
  if (host.length > 253) return "has a host name longer than 253 characters";
  const label = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
  return host.split(".").every((l) => label.test(l)) ? null : "has a malformed host name";
}
export const WgEndpoint = z.string().superRefine((v, ctx) => {
  const problem = wgEndpointProblem(v);
  if (problem) ctx.addIssue({ code: "custom", message: `a WireGuard endpoint ${problem}` });
});
export const Sha256Hex = z.string().regex(/^[0-9a-f]{64}$/);
export const IsoTime = z.iso.datetime({ offset: false });
export const Role = z.enum(["admin", "node", "service", "monitor", "bootstrap", "forwarder"]);
export type Role = z.infer<typeof Role>;
export const MemberRole = z.enum(["owner", "moderator", "member"]);
export type MemberRole = z.infer<typeof MemberRole>;

/** A node's labels (`role=web`): what selectors match. */
export const Labels = z.record(z.string().regex(/^[a-z0-9][a-z0-9_.-]{0,62}$/), z.string().max(128));
/** A list's page size: membershipd's default page is 1,000 records. */
export const ListLimit = z.number().int().min(1).max(10_000).default(1000);
/** A list's cursor: the `next` of the page before; the page starts after it. */
export const ListAfter = z.string().min(1).max(512).optional();
