// The seccomp filter every sandbox runs under (bwrap --seccomp FD): a classic-BPF program, made
// here and tested instruction by instruction, so no compiler or library is needed on the node.
// Pure.
//
// It is a deny-list on top of what the sandbox already takes away (no capabilities, its own UID,
// no_new_privs): the system calls that reach kernel surface a service never needs, above all new
// user namespaces, in which an unprivileged process holds every capability and can mount. The
// same profile for every service; a service file cannot widen it.
//  - another ABI than the host's (i386 through int 0x80, x32 on x86_64, 32-bit arm on arm64): the
//    numbers differ, so every call of it is refused.
//  - unshare, setns, and clone with any CLONE_NEW* flag: no namespace of its own. clone3 passes its
//    flags in memory the filter cannot read: ENOSYS, and glibc falls back to clone.
//  - mounts (mount, umount2, pivot_root, the new mount API), keyrings, ptrace and process_vm_*,
//    bpf, perf_event_open, userfaultfd, io_uring (its operations are not seen by seccomp), kernel
//    modules and kexec, reboot, swap, acct, quotactl, syslog, open_by_handle_at, iopl/ioperm.
//  - with `network: false`, socket(AF_UNIX): a socket file of the host reachable under a bound
//    path (or the read-only root) cannot be connected to. socketpair() still works, for a
//    service's own processes; abstract sockets are already per network namespace.
//  - with `ports` (an app on the host's network, its TCP ports held by Landlock, landlock/): an
//    allow-list of sockets. AF_UNIX and AF_NETLINK's route protocol; AF_INET/AF_INET6 only as TCP
//    (SOCK_STREAM, protocol 0 or IPPROTO_TCP: Landlock's port rules cover TCP alone, and measured,
//    an IPPROTO_MPTCP socket connects past them) and, with `outbound`, UDP; anything else fails.
//    Without listen ports listen() itself is refused, which also holds on a kernel without Landlock.

export interface SeccompOptions {
  /** false: socket(AF_UNIX) is refused too (`network: false`). */
  readonly unixSockets: boolean;
  /** A service with `ports`: internet sockets are TCP only, plus UDP with `udp`; `listen` false refuses listen(). */
  readonly inet?: { readonly udp: boolean; readonly listen: boolean };
}

const EPERM = 1;
const ENOSYS = 38;
const EAFNOSUPPORT = 97;
const AF_UNIX = 1;
const AF_INET = 2;
const AF_INET6 = 10;
const AF_NETLINK = 16;
const NETLINK_ROUTE = 0;
const IPPROTO_TCP = 6;
const IPPROTO_UDP = 17;
/** socket()'s type is SOCK_TYPE_MASK (0xf) plus SOCK_NONBLOCK/SOCK_CLOEXEC: STREAM is 1, DGRAM 2. */
const SOCK_STREAM = 1;
const SOCK_DGRAM = 2;
const SOCK_TYPE_MASK = 0xf;
/** CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET and NEWTIME. */
export const CLONE_NEW_MASK =
  0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000 | 0x00000080;
const X32_SYSCALL_BIT = 0x40000000;

/** The calls refused with EPERM, by name: the documented default profile. */
export const DENIED_CALLS = [
  "unshare",
  "setns",
  "mount",
  "umount2",
  "pivot_root",
  "move_mount",
  "open_tree",
  "fsopen",
  "fsconfig",
  "fsmount",
  "fspick",
  "mount_setattr",
  "keyctl",
  "add_key",
  "request_key",
  "ptrace",
  "process_vm_readv",
  "process_vm_writev",
  "bpf",
  "perf_event_open",
  "userfaultfd",
  "io_uring_setup",
  "io_uring_enter",
  "io_uring_register",
  "kexec_load",
  "kexec_file_load",
  "init_module",
  "finit_module",
  "delete_module",
  "reboot",
  "swapon",
  "swapoff",
  "acct",
  "quotactl",
  "syslog",
  "open_by_handle_at",
  "lookup_dcookie",
  "fanotify_init",
  "iopl",
  "ioperm",
  "uselib",
] as const;
type Call = (typeof DENIED_CALLS)[number] | "clone" | "clone3" | "socket" | "listen";

interface ArchTable {
  readonly audit: number;
  /** x86_64: x32 calls share the arch value and set this bit in the number. */
  readonly x32Bit: boolean;
  readonly calls: Partial<Record<Call, number>>;
}

// From the kernel's uapi headers (asm/unistd_64.h; asm-generic/unistd.h for arm64).
const NEW_MOUNT_API = {
  open_tree: 428,
  move_mount: 429,
  fsopen: 430,
  fsconfig: 431,
  fsmount: 432,
  fspick: 433,
  mount_setattr: 442,
};
const IO_URING = { io_uring_setup: 425, io_uring_enter: 426, io_uring_register: 427 };

export const ARCHES: Readonly<Record<string, ArchTable>> = {
  x64: {
    audit: 0xc000003e,
    x32Bit: true,
    calls: {
      unshare: 272,
      setns: 308,
      mount: 165,
      umount2: 166,
      pivot_root: 155,
      ...NEW_MOUNT_API,
      keyctl: 250,
      add_key: 248,
      request_key: 249,
      ptrace: 101,
      process_vm_readv: 310,
      process_vm_writev: 311,
      bpf: 321,
      perf_event_open: 298,
      userfaultfd: 323,
      ...IO_URING,
      kexec_load: 246,
      kexec_file_load: 320,
      init_module: 175,
      finit_module: 313,
      delete_module: 176,
      reboot: 169,
      swapon: 167,
      swapoff: 168,
      acct: 163,
      quotactl: 179,
      syslog: 103,
      open_by_handle_at: 304,
      lookup_dcookie: 212,
      fanotify_init: 300,
      iopl: 172,
      ioperm: 173,
      uselib: 134,
      clone: 56,
      clone3: 435,
      socket: 41,
      listen: 50,
    },
  },
  arm64: {
    audit: 0xc00000b7,
    x32Bit: false,
    calls: {
      unshare: 97,
      setns: 268,
      mount: 40,
      umount2: 39,
      pivot_root: 41,
      ...NEW_MOUNT_API,
      keyctl: 219,
      add_key: 217,
      request_key: 218,
      ptrace: 117,
      process_vm_readv: 270,
      process_vm_writev: 271,
      bpf: 280,
      perf_event_open: 241,
      userfaultfd: 282,
      ...IO_URING,
      kexec_load: 104,
      kexec_file_load: 294,
      init_module: 105,
      finit_module: 273,
      delete_module: 106,
      reboot: 142,
      swapon: 224,
      swapoff: 225,
      acct: 89,
      quotactl: 60,
      syslog: 116,
      open_by_handle_at: 265,
      lookup_dcookie: 18,
      fanotify_init: 262,
      clone: 220,
      clone3: 435,
      socket: 198,
      listen: 201,
    },
  },
};

// Classic BPF, as seccomp reads it (linux/filter.h, linux/seccomp.h).
export const BPF = { LD_W_ABS: 0x20, JEQ_K: 0x15, JGE_K: 0x35, JSET_K: 0x45, RET_K: 0x06 } as const;
export const RET = { ALLOW: 0x7fff0000, ERRNO: 0x00050000, KILL_PROCESS: 0x80000000 } as const;
/** Offsets in struct seccomp_data: nr, arch, and the low 32 bits of args[0..2] (little-endian hosts). */
export const DATA = { NR: 0, ARCH: 4, ARG0_LO: 16, ARG1_LO: 24, ARG2_LO: 32 } as const;

/** One instruction; a jump names its targets by label (null: the next instruction). */
export type Insn =
  | { op: "ld"; offset: number }
  | { op: "jeq" | "jge" | "jset"; k: number; yes: string | null; no: string | null }
  | { op: "ret"; k: number }
  | { op: "label"; name: string };

/** The program as bwrap wants it on its fd: struct sock_filter[] (u16 code, u8 jt, u8 jf, u32 k), little-endian. */
export function assemble(program: readonly Insn[]): Buffer {
  const code = program.filter((i): i is Exclude<Insn, { op: "label" }> => i.op !== "label");
  const at = new Map<string, number>();
  let pc = 0;
  for (const i of program) {
    if (i.op === "label") {
      if (at.has(i.name)) throw new Error(`label ${i.name} defined twice`);
      at.set(i.name, pc);
    } else pc++;
  }
  const out = Buffer.alloc(code.length * 8);
  code.forEach((i, n) => {
    const jump = (target: string | null) => {
      if (target === null) return 0;
      const to = at.get(target);
      if (to === undefined) throw new Error(`no label ${target}`);
      const off = to - (n + 1);
      if (off < 0 || off > 255) throw new Error(`jump to ${target} out of range (${off})`);
      return off;
    };
    const [op, jt, jf, k] =
      i.op === "ld"
        ? [BPF.LD_W_ABS, 0, 0, i.offset]
        : i.op === "ret"
          ? [BPF.RET_K, 0, 0, i.k]
          : i.op === "jeq"
            ? [BPF.JEQ_K, jump(i.yes), jump(i.no), i.k]
            : i.op === "jge"
              ? [BPF.JGE_K, jump(i.yes), jump(i.no), i.k]
              : [BPF.JSET_K, jump(i.yes), jump(i.no), i.k];
    out.writeUInt16LE(op, n * 8);
    out.writeUInt8(jt, n * 8 + 2);
    out.writeUInt8(jf, n * 8 + 3);
    out.writeUInt32LE(k >>> 0, n * 8 + 4);
  });
  return out;
}

/** The default profile as instructions for `arch` (a process.arch value), or null without a table for it. */
export function seccompProgram(arch: string, o: SeccompOptions): Insn[] | null {
  const t = ARCHES[arch];
  if (!t) return null;
  const nr = (c: Call) => t.calls[c];
  const denied = DENIED_CALLS.map((c) => nr(c)).filter((n): n is number => n !== undefined);
  const p: Insn[] = [
    { op: "ld", offset: DATA.ARCH },
    { op: "jeq", k: t.audit, yes: null, no: "foreign" },
    { op: "ld", offset: DATA.NR },
    ...(t.x32Bit ? [{ op: "jge", k: X32_SYSCALL_BIT, yes: "foreign", no: null } as Insn] : []),
    ...denied.map((n): Insn => ({ op: "jeq", k: n, yes: "eperm", no: null })),
    { op: "jeq", k: nr("clone")!, yes: "clone", no: null },
    { op: "jeq", k: nr("clone3")!, yes: "enosys", no: null },
    ...(o.inet && !o.inet.listen ? [{ op: "jeq", k: nr("listen")!, yes: "eperm", no: null } as Insn] : []),
    ...(o.unixSockets && !o.inet ? [] : [{ op: "jeq", k: nr("socket")!, yes: "socket", no: null } as Insn]),
    { op: "ret", k: RET.ALLOW },
    { op: "label", name: "clone" },
    { op: "ld", offset: DATA.ARG0_LO },
    { op: "jset", k: CLONE_NEW_MASK, yes: "eperm", no: null },
    { op: "ret", k: RET.ALLOW },
    ...(o.inet
      ? inetSockets(o.unixSockets, o.inet.udp)
      : o.unixSockets
        ? []
        : [
            { op: "label", name: "socket" } as Insn,
            { op: "ld", offset: DATA.ARG0_LO } as Insn,
            { op: "jeq", k: AF_UNIX, yes: "eafnosupport", no: null } as Insn,
            { op: "ret", k: RET.ALLOW } as Insn,
            { op: "label", name: "eafnosupport" } as Insn,
            { op: "ret", k: RET.ERRNO | EAFNOSUPPORT } as Insn,
          ]),
    { op: "label", name: "eperm" },
    { op: "ret", k: RET.ERRNO | EPERM },
    { op: "label", name: "enosys" },
    { op: "ret", k: RET.ERRNO | ENOSYS },
    { op: "label", name: "foreign" },
    { op: "ret", k: RET.ERRNO | ENOSYS },
  ];
  return p;
}

/**
 * socket() with `ports`: an allow-list by family, then for AF_INET/AF_INET6 by type (the flags
 * SOCK_NONBLOCK and SOCK_CLOEXEC lie above SOCK_TYPE_MASK) and protocol. Jumps only go forward.
 */
function inetSockets(unix: boolean, udp: boolean): Insn[] {
  const notStream = SOCK_TYPE_MASK & ~SOCK_STREAM;
  const notDgram = SOCK_TYPE_MASK & ~SOCK_DGRAM;
  return [
    { op: "label", name: "socket" },
    { op: "ld", offset: DATA.ARG0_LO },
    { op: "jeq", k: AF_UNIX, yes: unix ? "allow" : "eafnosupport", no: null },
    { op: "jeq", k: AF_INET, yes: "inet", no: null },
    { op: "jeq", k: AF_INET6, yes: "inet", no: null },
    { op: "jeq", k: AF_NETLINK, yes: null, no: "eafnosupport" },
    { op: "ld", offset: DATA.ARG2_LO },
    { op: "jeq", k: NETLINK_ROUTE, yes: "allow", no: "eafnosupport" },
    { op: "label", name: "inet" },
    { op: "ld", offset: DATA.ARG1_LO },
    { op: "jset", k: notStream, yes: udp ? "dgram" : "eperm", no: null },
    { op: "jset", k: SOCK_STREAM, yes: null, no: "eperm" },
    { op: "ld", offset: DATA.ARG2_LO },
    { op: "jeq", k: 0, yes: "allow", no: null },
    { op: "jeq", k: IPPROTO_TCP, yes: "allow", no: "eperm" },
    ...(udp
      ? ([
          { op: "label", name: "dgram" },
          { op: "jset", k: notDgram, yes: "eperm", no: null },
          { op: "jset", k: SOCK_DGRAM, yes: null, no: "eperm" },
          { op: "ld", offset: DATA.ARG2_LO },
          { op: "jeq", k: 0, yes: "allow", no: null },
          { op: "jeq", k: IPPROTO_UDP, yes: "allow", no: "eperm" },
        ] satisfies Insn[])
      : []),
    { op: "label", name: "allow" },
    { op: "ret", k: RET.ALLOW },
    { op: "label", name: "eafnosupport" },
    { op: "ret", k: RET.ERRNO | EAFNOSUPPORT },
  ];
}

/** The compiled default profile for `arch`, or null where there is no table for it. */
export function seccompFilter(arch: string, o: SeccompOptions): Buffer | null {
  const program = seccompProgram(arch, o);
  return program ? assemble(program) : null;
}

/**
 * Runs a compiled program over one system call, as the kernel would: for the unit tests and the
 * docs (what a call gets), not used to decide anything at run time.
 */
export function evaluate(
  filter: Buffer,
  call: { arch: number; nr: number; arg0?: number; arg1?: number; arg2?: number },
): number {
  let a = 0;
  for (let pc = 0; pc < filter.length / 8; ) {
    const op = filter.readUInt16LE(pc * 8);
    const jt = filter.readUInt8(pc * 8 + 2);
    const jf = filter.readUInt8(pc * 8 + 3);
    const k = filter.readUInt32LE(pc * 8 + 4);
    if (op === BPF.RET_K) return k;
    if (op === BPF.LD_W_ABS) {
      const args: Record<number, number | undefined> = {
        [DATA.ARG0_LO]: call.arg0,
        [DATA.ARG1_LO]: call.arg1,
        [DATA.ARG2_LO]: call.arg2,
      };
      a = k === DATA.ARCH ? call.arch : k === DATA.NR ? call.nr : (args[k] ?? 0) >>> 0;
      pc++;
      continue;
    }
    const taken =
      op === BPF.JEQ_K ? a === k : op === BPF.JGE_K ? a >>> 0 >= k : op === BPF.JSET_K ? (a & k) >>> 0 !== 0 : null;
    if (taken === null) throw new Error(`unknown instruction ${op} at ${pc}`);
    pc += 1 + (taken ? jt : jf);
  }
  throw new Error("the program ran off its end");
}
