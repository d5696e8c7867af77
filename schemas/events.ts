// Every event type, by aggregate kind. docs/events.md is generated from this file (`make docs`).
import { z } from "zod";
import { CurvePublicKey, MemberRole, NodePublicKey, Role, Slug, UserPublicKey } from "./ids.ts";

export const EventDataSchemas = {
  system: {
    SystemInitialized: z.object({ cluster: Slug, service_key: NodePublicKey }).strict()
      .describe("The first event of a store: names the cluster and the first trusted writer key."),
  },
  user: {
    UserCreated: z.object({ handle: Slug, role: Role, sign_key: UserPublicKey, kex_key: CurvePublicKey.nullable() }).strict()
      .describe("A user identity with its role, Ed25519 signing key and optional X25519 key-exchange key."),
  },
  room: {
    RoomCreated: z.object({ room: Slug, subject: z.string().max(200), created_by: Slug }).strict()
      .describe("A room with its subject (topic line), created by a user."),
    RoomArchived: z.object({ room: Slug, archived_by: Slug }).strict()
      .describe("The room is read-only from now on: no new members."),
  },
  member: {
    MemberAdded: z.object({ room: Slug, user: Slug, role: MemberRole, added_by: Slug }).strict()
      .describe("A user joins a room with a role."),
    MemberRoleChanged: z.object({ room: Slug, user: Slug, role: MemberRole, changed_by: Slug }).strict()
      .describe("A member's role in a room changes."),
    MemberRemoved: z.object({ room: Slug, user: Slug, removed_by: Slug }).strict()
      .describe("A user leaves a room (or is removed)."),
  },
} as const;

export type AggregateKind = keyof typeof EventDataSchemas;
export const AggregateKinds = Object.keys(EventDataSchemas) as AggregateKind[];

type DataOf<K extends AggregateKind> = {
  [T in keyof (typeof EventDataSchemas)[K]]: { type: T; data: z.infer<(typeof EventDataSchemas)[K][T] & z.ZodType> };
}[keyof (typeof EventDataSchemas)[K]];

export type SystemEvent = DataOf<"system">;
export type UserEvent = DataOf<"user">;
export type RoomEvent = DataOf<"room">;
export type MemberEvent = DataOf<"member">;
export type DomainEvent = SystemEvent | UserEvent | RoomEvent | MemberEvent;
export type EventType = DomainEvent["type"];

const dataByType = new Map<string, { kind: AggregateKind; schema: z.ZodType }>();
for (const kind of AggregateKinds) {
  for (const [type, schema] of Object.entries(EventDataSchemas[kind])) dataByType.set(type, { kind, schema: schema as z.ZodType });
}

/** The kind and data schema of an event type, or undefined for a type this version does not know. */
export function eventTypeInfo(type: string): { kind: AggregateKind; schema: z.ZodType } | undefined {
  return dataByType.get(type);
}
