// The client side of end-to-end encrypted rooms (issue 25), for the CLI's room verbs and the
// benches: the exchange key files, the room's keys opened into a keyring, when and how to rotate,
// the sender's ratchet on disk, sending and reading. The cryptography is services/core/room-crypto.
export {
  commitKexSeed,
  dropKexSeed,
  kexSeedPath,
  kexSeedSibling,
  loadKexPair,
  newKexSeed,
  stageKexSeed,
} from "./kex-seed.ts";
export { epochMembers, fetchRoomKeys, forgetKeys, openRoomKeys, type OpenedKeys } from "./keys.ts";
export {
  joinersOf,
  keyHoldersOf,
  rotateRoom,
  rotationReason,
  shareWithJoiners,
  type RoomClient,
  type Rotated,
} from "./rotation.ts";
export { ratchetDir, withNextMessageKey, type RatchetStep } from "./ratchet-store.ts";
export { keysForSending, sendRoomMessage, type SenderIdentity, type Sent } from "./send.ts";
export {
  describeMessage,
  openRoomReader,
  readPage,
  refreshKeys,
  sanitize,
  saveFile,
  type DecodedMessage,
  type LineOptions,
  type RoomReader,
} from "./read.ts";
