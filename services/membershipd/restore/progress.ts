// A long restore's progress on stderr: messages republished so far of the backup's total, rewritten
// in place on a terminal (5 times a second at most), a line every few seconds otherwise.
export interface Progress {
  update(done: number): void;
  end(done: number): void;
}

export function restoreProgress(
  total: number,
  o: { tty?: boolean; write?: (text: string) => void; now?: () => number; label?: string } = {},
): Progress {
  const tty = o.tty ?? process.stderr.isTTY === true;
  const write = o.write ?? ((text: string) => void process.stderr.write(text));
  const now = o.now ?? Date.now;
  const started = now();
  let last = started;
  let shown = false;
  const line = (done: number) => {
    const seconds = Math.max(0.001, (now() - started) / 1000);
    const pct = total > 0 ? ` (${Math.floor((100 * done) / total)} %)` : "";
    return `${o.label ?? "membershipd restore"}: ${done}/${total} messages${pct}, ${Math.round(done / seconds)}/s`;
  };
  return {
    update(done) {
      const t = now();
      if (t - last < (tty ? 200 : 3000)) return;
      last = t;
      shown = true;
      write(tty ? `\r${line(done)}` : `${line(done)}\n`);
    },
    end(done) {
      // Only a restore that showed progress says where it ended: a short one prints its summary alone.
      if (shown) write(tty ? `\r${line(done)}\n` : `${line(done)}\n`);
    },
  };
}
