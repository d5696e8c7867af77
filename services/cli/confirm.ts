// The yes an install or a widening upgrade waits for: asked on the terminal, or given as --yes.
// Without a terminal and without --yes nothing is changed: a script must say yes explicitly.
import { createInterface } from "node:readline/promises";
import { CliError, EXIT } from "./output.ts";

export async function confirmed(question: string, yes: boolean): Promise<boolean> {
  if (yes) return true;
  if (!process.stdin.isTTY)
    throw new CliError(
      "E_CONFIRM_REQUIRED",
      "this needs a yes after the review: answer on a terminal, or pass --yes; nothing was changed",
      EXIT.usage,
    );
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await rl.question(`${question} [y/N] `);
    return /^(y|yes)$/i.test(answer.trim());
  } finally {
    rl.close();
  }
}
