// The operator's genesis passphrase, never from argv: a 0600 file (--passphrase-file), the
// environment (UNIBUS_GENESIS_PASSPHRASE), or a prompt on the terminal with echo off. The bytes
// come back in a Buffer the caller zeroes; one trailing newline of a file is not part of it.
import { readSecretFile, SecretFileError } from "../bus/mod.ts";
import { CliError, EXIT } from "./output.ts";

export const PASSPHRASE_ENV = "UNIBUS_GENESIS_PASSPHRASE";
/** A new genesis key needs at least this many bytes of passphrase (see docs/security.md for what brute force costs). */
export const MIN_PASSPHRASE_BYTES = 12;

function withoutNewline(raw: Buffer): Buffer {
  let end = raw.length;
  if (end > 0 && raw[end - 1] === 0x0a) end--;
  if (end > 0 && raw[end - 1] === 0x0d) end--;
  const out = Buffer.from(raw.subarray(0, end));
  raw.fill(0);
  return out;
}

/** One line typed with echo off; Ctrl-C or Ctrl-D give up. */
function prompt(question: string): Promise<Buffer> {
  const stdin = process.stdin;
  // Echo goes off before the prompt is shown, so nothing typed (or pasted) the moment it appears
  // is echoed.
  stdin.setRawMode(true);
  process.stderr.write(question);
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const done = (err: Error | null) => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.off("data", onData);
      process.stderr.write("\n");
      if (err) {
        buf.fill(0);
        reject(err);
      } else resolve(buf);
    };
    const onData = (chunk: Buffer) => {
      for (const byte of chunk) {
        if (byte === 0x0d || byte === 0x0a) return done(null);
        if (byte === 0x03 || byte === 0x04) return done(new CliError("E_USAGE", "no passphrase given", EXIT.usage));
        if (byte === 0x7f || byte === 0x08) {
          // The erased byte is zeroed, not just left beyond the view.
          if (buf.length > 0) buf[buf.length - 1] = 0;
          buf = buf.subarray(0, Math.max(0, buf.length - 1));
          continue;
        }
        const next = Buffer.alloc(buf.length + 1);
        buf.copy(next);
        next[buf.length] = byte;
        buf.fill(0);
        buf = next;
      }
      chunk.fill(0);
    };
    stdin.resume();
    stdin.on("data", onData);
  });
}

export interface PassphraseSource {
  file?: string | undefined;
  /** Ask twice on a terminal (a new passphrase). */
  confirm?: boolean;
}

export async function readPassphrase(s: PassphraseSource): Promise<Buffer> {
  let got: Buffer;
  if (s.file !== undefined) {
    try {
      got = withoutNewline(readSecretFile(s.file));
    } catch (err) {
      if (err instanceof SecretFileError) throw new CliError(err.code, err.message, EXIT.usage);
      throw err;
    }
  } else if (process.env[PASSPHRASE_ENV] !== undefined) {
    got = Buffer.from(process.env[PASSPHRASE_ENV]!, "utf8");
  } else if (process.stdin.isTTY) {
    got = await prompt("genesis passphrase: ");
    if (s.confirm) {
      const again = await prompt("again: ");
      const same = again.equals(got);
      again.fill(0);
      if (!same) {
        got.fill(0);
        throw new CliError("E_USAGE", "the two passphrases differ", EXIT.usage);
      }
    }
  } else {
    throw new CliError(
      "E_USAGE",
      `give the genesis passphrase with --passphrase-file FILE (mode 0600), ${PASSPHRASE_ENV}, or on a terminal`,
      EXIT.usage,
    );
  }
  if (got.length === 0) throw new CliError("E_USAGE", "the genesis passphrase is empty", EXIT.usage);
  return got;
}
