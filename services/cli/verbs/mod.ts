// Every verb of the unibus command, noun by noun, in the order the help lists them.
import type { Verb } from "../verb.ts";
import { ACCOUNT_VERBS } from "./account.ts";
import { APP_VERBS } from "./app.ts";
import { AUDIT_VERBS } from "./audit.ts";
import { BACKUP_VERBS } from "./backup.ts";
import { BACKUP_CREATE_VERBS } from "./backup-create.ts";
import { CLUSTER_VERBS } from "./cluster.ts";
import { EVENTS_VERBS } from "./events.ts";
import { MEMBER_VERBS } from "./member.ts";
import { MONITOR_VERBS } from "./monitor.ts";
import { NODE_VERBS } from "./node.ts";
import { RELEASE_VERBS } from "./release.ts";
import { REQ_VERBS } from "./req.ts";
import { ROLLOUT_VERBS } from "./rollout.ts";
import { ROOM_VERBS } from "./room.ts";
import { USER_VERBS } from "./user.ts";
import { VAULT_VERBS } from "./vault.ts";
import { WRITER_VERBS } from "./writer.ts";

export const VERBS: readonly Verb[] = [
  ...USER_VERBS,
  ...NODE_VERBS,
  ...ROOM_VERBS,
  ...MEMBER_VERBS,
  ...CLUSTER_VERBS,
  ...RELEASE_VERBS,
  ...ROLLOUT_VERBS,
  ...APP_VERBS,
  ...EVENTS_VERBS,
  ...AUDIT_VERBS,
  ...WRITER_VERBS,
  ...ACCOUNT_VERBS,
  ...REQ_VERBS,
  ...MONITOR_VERBS,
  ...VAULT_VERBS,
  // keygen and verify, then create: the help lists them in this order.
  ...BACKUP_VERBS,
  ...BACKUP_CREATE_VERBS,
];
