// The longest functions under some folders, by lines from the function's first token to its last
// (a nested function counts inside its parent too, as a reader has to take in the whole span):
//   npx tsx scripts/longest-functions.ts [--top N] [--tests] <folder|file>...
// Prints the top N (default 10) as `length  file:line  name`. Test files (*.test.ts) are left out
// unless --tests: a test's body is a script, not a unit of the design.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { parseArgs } from "node:util";
import ts from "typescript";

interface FunctionSpan {
  file: string;
  line: number;
  lines: number;
  name: string;
}

function sourceFiles(path: string, withTests: boolean): string[] {
  if (statSync(path).isFile()) return [path];
  return readdirSync(path, { withFileTypes: true }).flatMap((e) => {
    const p = join(path, e.name);
    if (e.isDirectory()) return e.name === "node_modules" || e.name.startsWith(".") ? [] : sourceFiles(p, withTests);
    const isSource = /\.(ts|tsx|mts|cts)$/.test(e.name) && !e.name.endsWith(".d.ts");
    return isSource && (withTests || !/\.test\.[cm]?tsx?$/.test(e.name)) ? [p] : [];
  });
}

/**
 * What a reader would call the function: its own name, the variable or property it is assigned
 * to, or the call it is passed to.
 */
function nameOf(node: ts.SignatureDeclaration, sf: ts.SourceFile): string {
  if (ts.isConstructorDeclaration(node)) return `${classNameOf(node)}.constructor`;
  if (node.name) {
    const own = node.name.getText(sf);
    return ts.isClassElement(node) ? `${classNameOf(node)}.${own}` : own;
  }
  const parent = node.parent;
  if (ts.isVariableDeclaration(parent) || ts.isPropertyAssignment(parent) || ts.isPropertyDeclaration(parent))
    return parent.name.getText(sf);
  if (ts.isCallExpression(parent)) return `(argument of ${parent.expression.getText(sf).slice(0, 40)})`;
  return "(anonymous)";
}

function classNameOf(node: ts.Node): string {
  const c = node.parent;
  return (ts.isClassDeclaration(c) || ts.isClassExpression(c)) && c.name ? c.name.text : "(class)";
}

function functionsIn(file: string): FunctionSpan[] {
  const sf = ts.createSourceFile(file, readFileSync(file, "utf8"), ts.ScriptTarget.Latest, true);
  const found: FunctionSpan[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isFunctionLike(node) && "body" in node && node.body) {
      const first = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line;
      const last = sf.getLineAndCharacterOfPosition(node.getEnd()).line;
      found.push({ file, line: first + 1, lines: last - first + 1, name: nameOf(node, sf) });
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return found;
}

function main(argv: string[]): number {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { top: { type: "string", default: "10" }, tests: { type: "boolean", default: false } },
  });
  const top = Number(values.top);
  if (positionals.length === 0 || !Number.isInteger(top) || top < 1) {
    process.stderr.write("usage: npx tsx scripts/longest-functions.ts [--top N] [--tests] <folder|file>...\n");
    return 2;
  }
  const spans = positionals.flatMap((p) => sourceFiles(p, values.tests)).flatMap(functionsIn);
  spans.sort((a, b) => b.lines - a.lines || a.file.localeCompare(b.file) || a.line - b.line);
  for (const s of spans.slice(0, top))
    process.stdout.write(`${String(s.lines).padStart(5)}  ${relative(process.cwd(), s.file)}:${s.line}  ${s.name}\n`);
  return 0;
}

process.exitCode = main(process.argv.slice(2));
