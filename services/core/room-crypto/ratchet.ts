// Per-sender ratchets within an epoch (megolm's idea): each sender's chain starts from the epoch key
// and steps forward by a one-way KDF, one step per message (byte layout in layout.ts). A sender keeps
// only its current chain key, so its state after message i yields no key of message i or before;
// readers derive forward from the epoch key and cache where they got to.
//
// Every holder of the epoch key can derive every chain: what protects earlier messages from a later
// compromise is the epoch (rotate, then zero old keys), and what tells senders apart is the Ed25519
// signature. The ratchet gives senders forward secrecy against theft of their sending state and
// keeps each message under its own key.
import { MAX_MESSAGE_COUNTER } from "../../../schemas/room-messages.ts";
import { fromBase64Url, toBase64Url } from "../signing/crypto.ts";
import { assertIds, chainSeedInput, KDF_CONTEXT, KDF_MESSAGE_KEY_ID, KDF_NEXT_CHAIN_ID } from "./layout.ts";
import { sodiumNow } from "./sodium.ts";

const KEY_BYTES = 32;

function chainZero(epochKey: Uint8Array, room: string, epoch: number, sender: string): Uint8Array {
  if (epochKey.length !== KEY_BYTES) throw new TypeError("room-crypto: an epoch key is 32 bytes");
  return sodiumNow().crypto_generichash(KEY_BYTES, chainSeedInput(room, epoch, sender), epochKey);
}

const nextChain = (chain: Uint8Array): Uint8Array =>
  sodiumNow().crypto_kdf_derive_from_key(KEY_BYTES, KDF_NEXT_CHAIN_ID, KDF_CONTEXT, chain);

const messageKeyOf = (chain: Uint8Array): Uint8Array =>
  sodiumNow().crypto_kdf_derive_from_key(KEY_BYTES, KDF_MESSAGE_KEY_ID, KDF_CONTEXT, chain);

/** Steps `chain` forward `steps` times, zeroing every key it leaves behind (but not `chain` itself). */
function forward(chain: Uint8Array, steps: number): Uint8Array {
  let c = chain;
  for (let i = 0; i < steps; i++) {
    const n = nextChain(c);
    if (c !== chain) c.fill(0);
    c = n;
  }
  return c === chain ? c.slice() : c;
}

/** A sender's chain where a SendingRatchet stopped: persist it (it is secret) to go on after a restart. */
export interface SendingRatchetState {
  room: string;
  epoch: number;
  sender: string;
  /** The counter of the next message. */
  counter: number;
  /** chain_counter, base64url. */
  chain: string;
}

/**
 * One sender's outbound chain in one epoch. `next()` hands out the key of the next counter and
 * replaces the chain key with the next one, zeroing the old: nothing it keeps derives a key it has
 * handed out.
 */
export class SendingRatchet {
  #chain: Uint8Array;
  #counter: number;

  private constructor(
    readonly room: string,
    readonly epoch: number,
    readonly sender: string,
    counter: number,
    chain: Uint8Array,
  ) {
    this.#counter = counter;
    this.#chain = chain;
  }

  /** The chain at counter 0. The epoch key is not kept: the caller zeroes it when it no longer reads the epoch. */
  static start(epochKey: Uint8Array, room: string, epoch: number, sender: string): SendingRatchet {
    assertIds({ room, epoch, sender });
    return new SendingRatchet(room, epoch, sender, 0, chainZero(epochKey, room, epoch, sender));
  }

  static resume(state: SendingRatchetState): SendingRatchet {
    assertIds({ room: state.room, epoch: state.epoch, sender: state.sender });
    const chain = fromBase64Url(state.chain);
    const counterOk = Number.isInteger(state.counter) && state.counter >= 0 && state.counter <= MAX_MESSAGE_COUNTER + 1;
    if (chain.length !== KEY_BYTES || !counterOk) throw new TypeError("room-crypto: not a sending ratchet state");
    return new SendingRatchet(state.room, state.epoch, state.sender, state.counter, chain);
  }

  /** The counter the next message will carry. */
  get counter(): number {
    return this.#counter;
  }

  /**
   * The next message's counter and key (the caller zeroes the key after encrypting), or null once
   * the epoch's counters are used up: the sender waits for the next epoch.
   */
  next(): { counter: number; messageKey: Uint8Array } | null {
    if (this.#counter > MAX_MESSAGE_COUNTER) return null;
    const messageKey = messageKeyOf(this.#chain);
    const following = nextChain(this.#chain);
    this.#chain.fill(0);
    this.#chain = following;
    return { counter: this.#counter++, messageKey };
  }

  /** What to persist after each message, so a restart neither reuses a counter nor keeps an old key. */
  state(): SendingRatchetState {
    const { room, epoch, sender } = this;
    return { room, epoch, sender, counter: this.#counter, chain: toBase64Url(this.#chain) };
  }

  /** Zeroes the chain key; the ratchet hands out nothing after. */
  destroy(): void {
    this.#chain.fill(0);
    this.#counter = MAX_MESSAGE_COUNTER + 1;
  }
}

/**
 * A chain key every this many steps stays cached, so a message older than the cache's head costs at
 * most this many steps: out-of-order delivery stays cheap and a member cannot make readers walk its
 * chain from the start again and again.
 */
const CHECKPOINT_EVERY = 256;

/**
 * One sender's chain in one epoch, as a reader derives it: forward from the epoch key, remembering
 * the furthest chain key reached (messages in order cost one step each) and one chain key every
 * CHECKPOINT_EVERY steps (older messages cost at most that many).
 */
export class ChainReader {
  #head: Uint8Array;
  #headCounter = 0;
  readonly #checkpoints: Uint8Array[];

  constructor(epochKey: Uint8Array, room: string, epoch: number, sender: string) {
    assertIds({ room, epoch, sender });
    const zero = chainZero(epochKey, room, epoch, sender);
    this.#checkpoints = [zero];
    this.#head = zero.slice();
  }

  /** The message key of `counter` (a new array: the caller zeroes it), or null when out of range. */
  keyAt(counter: number): Uint8Array | null {
    if (!Number.isInteger(counter) || counter < 0 || counter > MAX_MESSAGE_COUNTER) return null;
    if (counter < this.#headCounter) {
      const base = Math.floor(counter / CHECKPOINT_EVERY);
      const chain = forward(this.#checkpoints[base]!, counter - base * CHECKPOINT_EVERY);
      const key = messageKeyOf(chain);
      chain.fill(0);
      return key;
    }
    while (this.#headCounter < counter) {
      const n = nextChain(this.#head);
      this.#head.fill(0);
      this.#head = n;
      this.#headCounter++;
      if (this.#headCounter % CHECKPOINT_EVERY === 0) this.#checkpoints.push(n.slice());
    }
    return messageKeyOf(this.#head);
  }

  /** Zeroes every chain key it holds. */
  destroy(): void {
    this.#head.fill(0);
    for (const c of this.#checkpoints) c.fill(0);
  }
}

/**
 * The message key of `counter` in `sender`'s chain, derived from the epoch key without a cache:
 * counter + 1 steps. Readers of more than one message keep a ChainReader per sender instead.
 */
export function ratchetAt(
  epochKey: Uint8Array,
  room: string,
  epoch: number,
  sender: string,
  counter: number,
): Uint8Array {
  const reader = new ChainReader(epochKey, room, epoch, sender);
  try {
    const key = reader.keyAt(counter);
    if (key === null) throw new RangeError(`room-crypto: counter must be 0-${MAX_MESSAGE_COUNTER}`);
    return key;
  } finally {
    reader.destroy();
  }
}
