// Splits a service's output into lines, bounded: a line longer than the limit is cut there and
// marked, and the rest of it is dropped, so a service that never writes a newline cannot make the
// agent buffer without end. No I/O.
export const MAX_LINE_BYTES = 16 * 1024;
export const CUT_MARK = " [line cut]";

export class LineSplitter {
  private parts: Buffer[] = [];
  private size = 0;
  private cut = false;

  constructor(
    private readonly emit: (line: string) => void,
    private readonly max = MAX_LINE_BYTES,
  ) {}

  push(chunk: Buffer): void {
    let start = 0;
    for (let nl = chunk.indexOf(10, start); nl >= 0; nl = chunk.indexOf(10, start)) {
      this.take(chunk.subarray(start, nl));
      this.end();
      start = nl + 1;
    }
    this.take(chunk.subarray(start));
  }

  /** The last line, if the output did not end with a newline. */
  flush(): void {
    if (this.size > 0 || this.cut) this.end();
  }

  private take(piece: Buffer): void {
    if (this.cut) return;
    const room = this.max - this.size;
    if (piece.length > room) {
      this.parts.push(piece.subarray(0, room));
      this.size = this.max;
      this.cut = true;
      return;
    }
    this.parts.push(piece);
    this.size += piece.length;
  }

  private end(): void {
    let line = Buffer.concat(this.parts).toString("utf8");
    if (this.cut) line += CUT_MARK;
    else if (line.endsWith("\r")) line = line.slice(0, -1);
    this.parts = [];
    this.size = 0;
    this.cut = false;
    this.emit(line);
  }
}
