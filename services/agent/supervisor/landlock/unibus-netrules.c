// unibus-netrules: confines the TCP ports a sandboxed service may bind and connect to with Landlock
// (kernel ABI 4+), then execs the service. sandbox.ts puts it last before the command:
//   bwrap → prlimit → setpriv → unibus-netrules [--bind-tcp PORT]... [--no-connect] -- CMD ARGS...
// A Landlock domain survives execve and cannot be lifted, so everything CMD and its children do is
// held to it. Without Landlock's network rules it refuses to run (exit 126) rather than run CMD
// unconfined. `unibus-netrules --probe` prints the ABI version and exits 0 when network rules work.
//
// The structs and constants are declared here, not taken from <linux/landlock.h>: Debian 12's
// linux-libc-dev (6.1) predates the network rules (6.7); the kernel's ABI is stable.
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef __NR_landlock_create_ruleset // the same numbers on every architecture since 5.13
#define __NR_landlock_create_ruleset 444
#define __NR_landlock_add_rule 445
#define __NR_landlock_restrict_self 446
#endif

#define CREATE_RULESET_VERSION (1U << 0)
#define ACCESS_NET_BIND_TCP (1ULL << 0)
#define ACCESS_NET_CONNECT_TCP (1ULL << 1)
#define SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0)
#define RULE_NET_PORT 2

// struct landlock_ruleset_attr as of ABI 6; an older kernel accepts it while `scoped` is 0.
struct ruleset_attr {
  uint64_t handled_access_fs;
  uint64_t handled_access_net;
  uint64_t scoped;
};
struct net_port_attr {
  uint64_t allowed_access;
  uint64_t port;
} __attribute__((packed));

#define REFUSED 126 // the command was not run (as a shell reports a command it cannot execute)

// One line on stderr, with the system call's error when `err` is not 0.
static int refuse(const char *what, int err) {
  if (err)
    fprintf(stderr, "unibus-netrules: %s: %s\n", what, strerror(err));
  else
    fprintf(stderr, "unibus-netrules: %s\n", what);
  return REFUSED;
}

static long abi_version(void) {
  return syscall(__NR_landlock_create_ruleset, NULL, 0, CREATE_RULESET_VERSION);
}

// A TCP port 1-65535, or -1.
static long parse_port(const char *s) {
  char *end;
  errno = 0;
  unsigned long p = strtoul(s, &end, 10);
  return (errno || *s < '0' || *s > '9' || *end || p < 1 || p > 65535) ? -1 : (long)p;
}

int main(int argc, char **argv) {
  long abi = abi_version();
  if (argc == 2 && strcmp(argv[1], "--probe") == 0) {
    printf("%ld\n", abi < 0 ? 0 : abi);
    return abi >= 4 ? 0 : 1;
  }
  // Check every option before anything is applied; `--` ends them.
  int no_connect = 0, cmd = 0;
  for (int i = 1; i < argc && !cmd; i++) {
    if (strcmp(argv[i], "--") == 0)
      cmd = i + 1;
    else if (strcmp(argv[i], "--no-connect") == 0)
      no_connect = 1;
    else if (strcmp(argv[i], "--bind-tcp") == 0 && i + 1 < argc && parse_port(argv[i + 1]) > 0)
      i++;
    else
      return refuse("usage: unibus-netrules [--bind-tcp PORT]... [--no-connect] -- CMD [ARGS...]", 0);
  }
  if (!cmd || cmd >= argc)
    return refuse("usage: unibus-netrules [--bind-tcp PORT]... [--no-connect] -- CMD [ARGS...]", 0);
  if (abi < 4)
    return refuse("the kernel has no Landlock network rules (ABI 4, Linux 6.7): not running unconfined", 0);

  struct ruleset_attr attr = {
      .handled_access_net = ACCESS_NET_BIND_TCP | (no_connect ? ACCESS_NET_CONNECT_TCP : 0),
      // Sharing the host's network namespace also shares its abstract unix sockets: ABI 6 scopes them.
      .scoped = abi >= 6 ? SCOPE_ABSTRACT_UNIX_SOCKET : 0,
  };
  int fd = (int)syscall(__NR_landlock_create_ruleset, &attr, sizeof attr, 0);
  if (fd < 0)
    return refuse("landlock_create_ruleset", errno);
  for (int i = 1; i < cmd - 1; i++) {
    if (strcmp(argv[i], "--bind-tcp") != 0)
      continue;
    struct net_port_attr rule = {.allowed_access = ACCESS_NET_BIND_TCP, .port = (uint64_t)parse_port(argv[++i])};
    if (syscall(__NR_landlock_add_rule, fd, RULE_NET_PORT, &rule, 0) != 0)
      return refuse("landlock_add_rule", errno);
  }
  // setpriv has set it already; without it an unprivileged process may not restrict itself.
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
    return refuse("PR_SET_NO_NEW_PRIVS", errno);
  if (syscall(__NR_landlock_restrict_self, fd, 0) != 0)
    return refuse("landlock_restrict_self", errno);
  close(fd);
  execv(argv[cmd], &argv[cmd]);
  fprintf(stderr, "unibus-netrules: %s: %s\n", argv[cmd], strerror(errno));
  return 127;
}
