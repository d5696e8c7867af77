import { z } from "zod";

/** A name that is safe as one NATS subject token and one KV key token: no dots, wildcards or spaces. */
export const Slug = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, "must be 1-63 of a-z 0-9 _ - starting with a letter or digit");
export const UserPublicKey = z.string().regex(/^U[A-Z2-7]{55}$/, "must be an nkey user public key (U…)");
export const NodePublicKey = z.string().regex(/^[UN][A-Z2-7]{55}$/, "must be an nkey public key");
/** An nkey account public key (A…): the UNIBUS account's signing keys. */
export const AccountPublicKey = z.string().regex(/^A[A-Z2-7]{55}$/, "must be an nkey account public key (A…)");
export const CurvePublicKey = z.string().regex(/^X[A-Z2-7]{55}$/, "must be an nkey curve public key (X…)");
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
