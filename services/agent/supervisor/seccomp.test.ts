// The seccomp filter: the assembler's encoding, and what the default profile answers for each
// kind of call, run through an interpreter of the compiled bytes (the real kernel's answer is in
// test/attack-sandbox.test.ts).
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  ARCHES,
  BPF,
  CLONE_NEW_MASK,
  DENIED_CALLS,
  RET,
  assemble,
  evaluate,
  seccompFilter,
  seccompProgram,
} from "./seccomp.ts";

const X64 = ARCHES.x64!;
const ARM64 = ARCHES.arm64!;
const EPERM = RET.ERRNO | 1;
const ENOSYS = RET.ERRNO | 38;
const EAFNOSUPPORT = RET.ERRNO | 97;

test("the assembler: struct sock_filter little-endian, jumps counted from the next instruction", () => {
  const out = assemble([
    { op: "ld", offset: 4 },
    { op: "jeq", k: 0xc000003e, yes: null, no: "bad" },
    { op: "ret", k: RET.ALLOW },
    { op: "label", name: "bad" },
    { op: "ret", k: RET.KILL_PROCESS },
  ]);
  assert.equal(out.length, 4 * 8);
  assert.deepEqual([out.readUInt16LE(0), out.readUInt32LE(4)], [BPF.LD_W_ABS, 4]);
  assert.deepEqual(
    [out.readUInt16LE(8), out.readUInt8(10), out.readUInt8(11), out.readUInt32LE(12)],
    [BPF.JEQ_K, 0, 1, 0xc000003e],
  );
  assert.deepEqual([out.readUInt16LE(16), out.readUInt32LE(20)], [BPF.RET_K, RET.ALLOW]);
  assert.deepEqual([out.readUInt16LE(24), out.readUInt32LE(28)], [BPF.RET_K, RET.KILL_PROCESS]);
  assert.throws(
    () =>
      assemble([
        { op: "jeq", k: 1, yes: "nowhere", no: null },
        { op: "ret", k: 0 },
      ]),
    /no label nowhere/,
  );
  assert.throws(
    () =>
      assemble([
        { op: "label", name: "back" },
        { op: "jeq", k: 1, yes: "back", no: null },
        { op: "ret", k: 0 },
      ]),
    /out of range/,
  );
  const far = [
    { op: "jeq", k: 1, yes: "end", no: null } as const,
    ...Array.from({ length: 256 }, () => ({ op: "ld", offset: 0 }) as const),
    { op: "label", name: "end" } as const,
    { op: "ret", k: 0 } as const,
  ];
  assert.throws(() => assemble(far), /out of range \(256\)/);
});

for (const [arch, t] of [
  ["x64", X64],
  ["arm64", ARM64],
] as const) {
  test(`${arch}: the default profile refuses namespaces, mounts and the rest of the list, and allows ordinary calls`, () => {
    const f = seccompFilter(arch, { unixSockets: true })!;
    const call = (name: keyof typeof t.calls, arg0?: number) =>
      evaluate(f, { arch: t.audit, nr: t.calls[name]!, ...(arg0 !== undefined ? { arg0 } : {}) });
    for (const name of DENIED_CALLS) if (t.calls[name] !== undefined) assert.equal(call(name), EPERM, name);
    assert.equal(call("clone", 0x10000000 | 0x11), EPERM, "clone(CLONE_NEWUSER)");
    assert.equal(call("clone", 0x40000000), EPERM, "clone(CLONE_NEWNET)");
    assert.equal(call("clone", 0x00020000), EPERM, "clone(CLONE_NEWNS)");
    assert.equal(call("clone", 0x003d0f00), RET.ALLOW, "a thread (pthread_create's flags)");
    assert.equal(call("clone", 0x01200011), RET.ALLOW, "fork (glibc's flags)");
    assert.equal(call("clone3"), ENOSYS, "clone3: glibc falls back to clone");
    assert.equal(call("socket", 1), RET.ALLOW, "AF_UNIX with the network");
    // read, write, open(at), close, execve, exit, exit_group
    const ordinary = arch === "x64" ? [0, 1, 2, 3, 59, 60, 231] : [63, 64, 56, 57, 221, 93, 94];
    for (const nr of ordinary) assert.equal(evaluate(f, { arch: t.audit, nr }), RET.ALLOW, `call ${nr}`);
  });

  test(`${arch}: network false refuses socket(AF_UNIX) only`, () => {
    const f = seccompFilter(arch, { unixSockets: false })!;
    assert.equal(evaluate(f, { arch: t.audit, nr: t.calls.socket!, arg0: 1 }), EAFNOSUPPORT);
    assert.equal(evaluate(f, { arch: t.audit, nr: t.calls.socket!, arg0: 2 }), RET.ALLOW, "AF_INET (loopback) stays");
    assert.equal(evaluate(f, { arch: t.audit, nr: t.calls.socket!, arg0: 10 }), RET.ALLOW, "AF_INET6");
    assert.equal(evaluate(f, { arch: t.audit, nr: t.calls.clone!, arg0: 0x10000000 }), EPERM);
  });

  test(`${arch}: ports: TCP sockets only (UDP with outbound), route netlink, no other family; listen() refused without a port`, () => {
    const socket = (f: Buffer, arg0: number, arg1: number, arg2 = 0) =>
      evaluate(f, { arch: t.audit, nr: t.calls.socket!, arg0, arg1, arg2 });
    const NONBLOCK_CLOEXEC = 0x800 | 0x80000;
    const server = seccompFilter(arch, { unixSockets: true, inet: { udp: false, listen: true } })!;
    for (const family of [2, 10]) {
      assert.equal(socket(server, family, 1), RET.ALLOW, `${family}: TCP`);
      assert.equal(socket(server, family, 1 | NONBLOCK_CLOEXEC, 6), RET.ALLOW, `${family}: TCP, flags, IPPROTO_TCP`);
      assert.equal(socket(server, family, 1, 262), EPERM, `${family}: MPTCP, which Landlock's port rules miss`);
      assert.equal(socket(server, family, 1, 132), EPERM, `${family}: SCTP`);
      assert.equal(socket(server, family, 2), EPERM, `${family}: UDP without outbound`);
      assert.equal(socket(server, family, 3, 1), EPERM, `${family}: raw`);
      assert.equal(socket(server, family, 5), EPERM, `${family}: SEQPACKET`);
      assert.equal(socket(server, family, 0), EPERM, `${family}: no type`);
    }
    assert.equal(socket(server, 1, 1), RET.ALLOW, "AF_UNIX with the network");
    assert.equal(socket(server, 16, 3, 0), RET.ALLOW, "NETLINK_ROUTE (glibc's getaddrinfo asks it)");
    assert.equal(socket(server, 16, 3, 15), EAFNOSUPPORT, "another netlink protocol");
    for (const family of [17, 40, 38, 44]) assert.equal(socket(server, family, 3), EAFNOSUPPORT, `family ${family}`);
    assert.equal(evaluate(server, { arch: t.audit, nr: t.calls.listen! }), RET.ALLOW, "listen() with a port");
    const client = seccompFilter(arch, { unixSockets: true, inet: { udp: true, listen: false } })!;
    assert.equal(socket(client, 2, 2), RET.ALLOW, "UDP with outbound");
    assert.equal(socket(client, 10, 2 | NONBLOCK_CLOEXEC, 17), RET.ALLOW, "UDP, flags, IPPROTO_UDP");
    assert.equal(socket(client, 2, 2, 136), EPERM, "UDP-Lite");
    assert.equal(socket(client, 2, 1), RET.ALLOW, "TCP");
    assert.equal(socket(client, 2, 3, 1), EPERM, "raw ICMP");
    assert.equal(evaluate(client, { arch: t.audit, nr: t.calls.listen! }), EPERM, "listen() without a port");
    const offline = seccompFilter(arch, { unixSockets: false, inet: { udp: false, listen: false } })!;
    assert.equal(socket(offline, 1, 1), EAFNOSUPPORT, "AF_UNIX stays refused without the network");
    for (const f of [server, client]) {
      assert.equal(evaluate(f, { arch: t.audit, nr: t.calls.unshare! }), EPERM, "the default profile still applies");
      assert.equal(evaluate(f, { arch: t.audit, nr: t.calls.clone!, arg0: 0x40000000 }), EPERM);
    }
  });
}

test("another ABI is refused whole: i386 and x32 on x86_64, 32-bit arm on arm64", () => {
  const f = seccompFilter("x64", { unixSockets: true })!;
  assert.equal(evaluate(f, { arch: 0x40000003, nr: 3 }), ENOSYS, "i386 read()");
  assert.equal(
    evaluate(f, { arch: 0x40000003, nr: 310 }),
    ENOSYS,
    "i386 310 is not process_vm_readv there, and still refused",
  );
  assert.equal(evaluate(f, { arch: X64.audit, nr: 0x40000000 | 272 }), ENOSYS, "x32 unshare");
  assert.equal(evaluate(f, { arch: X64.audit, nr: 0x40000000 }), ENOSYS, "x32 read");
  const a = seccompFilter("arm64", { unixSockets: true })!;
  assert.equal(evaluate(a, { arch: 0x40000028, nr: 63 }), ENOSYS, "arm (32-bit)");
  assert.equal(evaluate(a, { arch: X64.audit, nr: 0 }), ENOSYS);
});

test("the tables: every denied call has a number on x86_64, the namespace mask is every CLONE_NEW* flag, no table: no filter", () => {
  for (const name of DENIED_CALLS) assert.equal(typeof X64.calls[name], "number", name);
  assert.equal(CLONE_NEW_MASK, 0x7e020080);
  assert.equal(seccompFilter("riscv64", { unixSockets: true }), null);
  const program = seccompProgram("x64", { unixSockets: false })!;
  assert.ok(program.filter((i) => i.op !== "label").length < 100, "well under BPF_MAXINSNS");
  const ports = seccompProgram("x64", { unixSockets: true, inet: { udp: true, listen: false } })!;
  assert.ok(ports.filter((i) => i.op !== "label").length < 100, "with ports too");
});
