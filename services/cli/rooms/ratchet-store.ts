// A sender's ratchet state per room and epoch, DATA_DIR/rooms/<handle>/<room>.<epoch>.json (0600).
// The state after a message is saved BEFORE that message is sent, so a crash between the two
// loses a counter but never hands it out twice (two messages under one key and nonce space would
// let a reader of both learn their XOR). An exclusive lock file serialises two `room send` of one
// user on one epoch; a lock whose process is gone is taken over.
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { replaceSecretFile, writeSecretFile } from "../../bus/mod.ts";
import { SendingRatchet, type SendingRatchetState } from "../../core/room-crypto/mod.ts";
import { CliError } from "../output.ts";

export const ratchetDir = (dataDir: string, handle: string): string => join(dataDir, "rooms", handle);

const LOCK_WAIT_MS = 15_000;
const LOCK_POLL_MS = 20;

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Takes `path` (O_EXCL create with our pid), waiting for another holder; a dead holder's lock is removed. */
async function lock(path: string): Promise<() => void> {
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      writeSecretFile(path, String(process.pid));
      return () => rmSync(path, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    const holder = Number(readText(path));
    if (Number.isInteger(holder) && holder > 0 && !pidAlive(holder)) {
      rmSync(path, { force: true });
      continue;
    }
    if (Date.now() > deadline)
      throw new CliError("E_IN_PROGRESS", `another room send holds ${path}; try again when it is done`);
    await sleep(LOCK_POLL_MS);
  }
}

function readText(path: string): string {
  try {
    return readFileSync(path, "utf8").trim();
  } catch {
    return "";
  }
}

export interface RatchetStep {
  counter: number;
  /** The message key: the caller zeroes it once the message is encrypted. */
  messageKey: Uint8Array;
}

/**
 * Runs `use` with the sender's next counter and message key in (room, epoch), the state after it
 * already on disk. Another process of the same user waits for the lock. Starting a new epoch's
 * chain removes the state files of the room's older epochs (their chains are no longer used).
 */
export async function withNextMessageKey<T>(
  dir: string,
  ids: { room: string; epoch: number; sender: string },
  epochKey: Uint8Array,
  use: (step: RatchetStep) => Promise<T>,
): Promise<T> {
  const file = join(dir, `${ids.room}.${ids.epoch}.json`);
  const unlock = await lock(join(dir, `${ids.room}.${ids.epoch}.lock`));
  try {
    const ratchet = existsSync(file)
      ? SendingRatchet.resume(parseState(file, ids))
      : (dropOlderEpochs(dir, ids.room, ids.epoch), SendingRatchet.start(epochKey, ids.room, ids.epoch, ids.sender));
    const step = ratchet.next();
    const state = ratchet.state();
    ratchet.destroy();
    if (step === null)
      throw new CliError(
        "E_ROOM_EPOCH",
        `${ids.sender} has used every counter of epoch ${ids.epoch}; rotate the room's key`,
      );
    replaceSecretFile(file, `${JSON.stringify(state)}\n`);
    return await use(step);
  } finally {
    unlock();
  }
}

function parseState(file: string, ids: { room: string; epoch: number; sender: string }): SendingRatchetState {
  const s = JSON.parse(readFileSync(file, "utf8")) as SendingRatchetState;
  if (s.room !== ids.room || s.epoch !== ids.epoch || s.sender !== ids.sender)
    throw new CliError(
      "E_IDENTITY",
      `${file} is the ratchet of ${s.sender} in ${s.room}.${s.epoch}, not of ${ids.sender}`,
    );
  return s;
}

function dropOlderEpochs(dir: string, room: string, epoch: number): void {
  if (!existsSync(dir)) return;
  for (const name of readdirSync(dir)) {
    const m = /^(.+)\.(\d+)\.json$/.exec(name);
    if (m && m[1] === room && Number(m[2]) < epoch) rmSync(join(dir, name), { force: true });
  }
}
