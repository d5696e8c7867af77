// Writable paths on a real file system: the allow-list, what the agent creates and hands over
// (the top only), and what it refuses: paths of others, symlinks on the way or at the end,
// directories others may write, and the roots themselves.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, chownSync, lstatSync, mkdirSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { allowedRoot, prepareWritable, writableRefusal, type WritableRoots } from "./writable.ts";
import { Fixture } from "./testing.ts";

const fixture = new Fixture();
after(() => fixture.cleanup());

const asRoot = process.getuid?.() === 0;
const id = { uid: 1_879_300_001, gid: 1_879_300_002 };

test("the allow-list: the service's own directory under the service-data root, or strictly below a permitted root", () => {
  const roots: WritableRoots = { serviceData: "/var/lib/unibus-agent/service-data", permitted: ["/srv/unibus"] };
  assert.equal(
    allowedRoot("/var/lib/unibus-agent/service-data/web", "web", roots),
    "/var/lib/unibus-agent/service-data",
  );
  assert.equal(
    allowedRoot("/var/lib/unibus-agent/service-data/web/cache", "web", roots),
    "/var/lib/unibus-agent/service-data",
  );
  assert.equal(
    allowedRoot("/var/lib/unibus-agent/service-data/api", "web", roots),
    null,
    "another service's directory",
  );
  assert.equal(allowedRoot("/var/lib/unibus-agent/service-data/web2", "web", roots), null);
  assert.equal(allowedRoot("/var/lib/unibus-agent/service-data", "web", roots), null, "the root itself");
  assert.equal(allowedRoot("/srv/unibus/web", "web", roots), "/srv/unibus");
  assert.equal(allowedRoot("/srv/unibus", "web", roots), null, "a permitted root itself is never handed over");
  assert.equal(allowedRoot("/srv/unibusx/web", "web", roots), null);
  for (const p of [
    "/root/.ssh",
    "/var/spool/cron/crontabs",
    "/var/lib/unibus-agent",
    "/run/unibus/n1",
    "/home/alice",
  ]) {
    assert.match(
      writableRefusal([p], "web", roots) ?? "",
      /is outside where service data may live \(\/var\/lib\/unibus-agent\/service-data\/web; below \/srv\/unibus\)/,
      p,
    );
  }
  assert.match(
    writableRefusal(["/srv/x"], "web", { serviceData: null, permitted: [] }) ?? "",
    /nowhere: the agent permits no writable root/,
  );
  const reserved = {
    serviceData: "/var/lib/unibus-agent/service-data",
    permitted: ["/var/lib"],
    reserved: ["/var/lib/unibus-agent", "/run/unibus/n1"],
  };
  assert.equal(
    allowedRoot("/var/lib/unibus-agent/keys", "web", reserved),
    null,
    "the agent's data dir, even below a permitted root",
  );
  assert.equal(allowedRoot("/var/lib/unibus-agent", "web", reserved), null);
  assert.equal(allowedRoot("/var/lib/web", "web", reserved), "/var/lib");
  assert.equal(
    allowedRoot("/var/lib/unibus-agent/service-data/web", "web", reserved),
    "/var/lib/unibus-agent/service-data",
  );
});

test("a new path is made and only its top handed to the service; an existing one must already be the service's", {
  skip: !asRoot,
}, () => {
  const root = fixture.tempDir();
  const roots = { serviceData: join(root, "service-data"), permitted: [root] };
  const ctx = { service: "web", id, root: true, roots };
  const own = join(roots.serviceData, "web", "cache");
  assert.deepEqual(prepareWritable([own], ctx), { ok: true });
  assert.deepEqual([statSync(own).uid, statSync(own).gid, statSync(own).mode & 0o777], [id.uid, id.gid, 0o700]);
  const parent = statSync(join(roots.serviceData, "web"));
  assert.deepEqual([parent.uid, parent.mode & 0o777], [0, 0o755], "the directory on the way stays the agent's");
  // A second start: already the service's, nothing changes.
  writeFileSync(join(own, "f"), "x");
  assert.deepEqual(prepareWritable([own], ctx), { ok: true });
  assert.equal(statSync(join(own, "f")).uid, 0, "never chowned recursively");

  const existing = join(root, "srv-data");
  mkdirSync(existing, { mode: 0o700 });
  mkdirSync(join(existing, ".ssh"));
  writeFileSync(join(existing, ".ssh", "authorized_keys"), "k");
  const r = prepareWritable([existing], ctx);
  assert.ok(!r.ok);
  assert.match(r.message, /is owned by UID 0, not by service web/);
  assert.deepEqual([statSync(existing).uid, statSync(join(existing, ".ssh", "authorized_keys")).uid], [0, 0]);
});

test("symlinks, directories others may write, and a parent of someone else's are refused", { skip: !asRoot }, () => {
  const root = fixture.tempDir();
  const ctx = (permitted: string[]) => ({ service: "web", id, root: true, roots: { serviceData: null, permitted } });
  const target = join(root, "elsewhere");
  mkdirSync(target);
  symlinkSync(target, join(root, "link"));
  const viaLink = prepareWritable([join(root, "link", "data")], ctx([root]));
  assert.ok(
    !viaLink.ok && /lies under .*\/link, which is not a directory/.test(viaLink.message),
    JSON.stringify(viaLink),
  );
  const atLink = prepareWritable([join(root, "link")], ctx([root]));
  assert.ok(!atLink.ok && /is not a directory \(a symlink/.test(atLink.message));
  assert.equal(lstatSync(join(target)).uid, 0);

  const shared = join(root, "shared");
  mkdirSync(shared);
  chmodSync(shared, 0o777);
  const underShared = prepareWritable([join(shared, "data")], ctx([root]));
  assert.ok(!underShared.ok && /may be written by others/.test(underShared.message));

  const theirs = join(root, "theirs");
  mkdirSync(theirs);
  chownSync(theirs, id.uid, id.gid);
  const underTheirs = prepareWritable([join(theirs, "data")], ctx([root]));
  assert.ok(
    !underTheirs.ok && /belongs to UID 1879300001, not to the agent/.test(underTheirs.message),
    "the service could swap what is below its own directory",
  );

  const worldRoot = prepareWritable(["/tmp/unibus-never/data"], ctx(["/tmp"]));
  assert.ok(!worldRoot.ok && /writable root \/tmp may be written by others/.test(worldRoot.message));
});
