// End-to-end encrypted rooms (issue 25), the cryptographic core: no I/O, no clock, no NATS. Epoch
// keys sealed to each member's X25519 key; a per-sender ratchet inside an epoch; messages encrypted
// with XChaCha20-Poly1305 and signed with the sender's Ed25519 key; a reader that answers every input
// with a value; the rotation policy. layout.ts documents the bytes. Await roomCryptoReady() once
// before anything else (libsodium loads asynchronously; everything after is synchronous).
export { roomCryptoReady } from "./sodium.ts";
export { newEpochKey, openEpochKey, sealEpochKey } from "./epoch-keys.ts";
export { ChainReader, ratchetAt, SendingRatchet, type SendingRatchetState } from "./ratchet.ts";
export { encryptMessage, type MessageBody, type OutgoingMessage } from "./message.ts";
export { readMessage, type MessageIds, type ReadFailureKind, type ReadResult } from "./read.ts";
export { RoomKeyring, type EpochInfo, type KnownEpoch, type ReadContext } from "./keyring.ts";
export { MAX_OPEN_COUNTERS, ReplayMemory } from "./replay.ts";
export { rotationDue, type EpochProgress } from "./policy.ts";
