/*
 * sandbox.h - what Bulkhead's confined processes share: the driver
 * domain's workers and keepers (driverdom/confine.c) and a driver domain's
 * init (hv/dominit.c).  Each keeps its own allowlist; the steps that give
 * privileges up and the line a denied call leaves are the same, here.
 */
#ifndef BULKHEAD_SANDBOX_H
#define BULKHEAD_SANDBOX_H

#include <stddef.h>

/*
 * no_new_privs, then every capability given up: the bounding set
 * (PR_CAPBSET_DROP needs CAP_SETPCAP, so first), then effective,
 * permitted and inheritable with capset, then the ambient set.  -1 with
 * the reason, one line, in why.
 */
int bhsb_drop_privileges(char *why, size_t len);

/*
 * Readies the SIGSYS report for a seccomp filter with SCMP_ACT_TRAP: a
 * call outside the list leaves one line on stderr,
 *   WHO[PID]: seccomp: denied system call NAME (NR): killed; if the code
 *   needs it, add it to ALLOWLIST's allowlist
 * and the process exits with 128 + SIGSYS.  The names are resolved now
 * (the handler cannot allocate).  pid > 0 is printed as given, for a
 * process whose filter does not allow getpid (an init); 0: getpid at the
 * time of the trap (processes forked after confinement).  who and
 * allowlist must outlive the process (string literals).
 */
void bhsb_sigsys_prepare(const char *who, const char *allowlist, int pid);

/* Installs the handler readied above (again, in a process that reset it). */
void bhsb_sigsys_install(void);

#endif
