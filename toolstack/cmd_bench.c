/*
 * cmd_bench.c - bulkhead bench: the main job.  The run itself is a bash
 * script (bench.sh, with the measurements in benchlib.sh that `make bench`
 * shares): it drives fio, nbdkit, iperf3, ip and gnuplot, and is clearer
 * as the commands a user would type.  This finds it, in the source tree
 * when bulkhead runs from a build tree (so an edit needs no install), else
 * in ../share/bulkhead beside bin/ (an install moved or staged with
 * DESTDIR), else in the configured pkgdatadir, and runs it in our place,
 * saying where bulkhead and examples/ are.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "toolstack.h"

int cmd_bench(int argc, char **argv)
{
    char self[PATH_MAX], dir[PATH_MAX], probe[PATH_MAX + 32], script[PATH_MAX + 32];
    char examples[PATH_MAX + 32], share[PATH_MAX + 32];
    const char *base = BH_PKGDATADIR, *sub = "", *bindir;
    char **args;
    ssize_t n;

    if ((n = readlink("/proc/self/exe", self, sizeof(self) - 1)) < 0) {
        errorf("bench: cannot read /proc/self/exe: %s", strerror(errno));
        return 1;
    }
    self[n] = '\0';
    snprintf(dir, sizeof(dir), "%s", self);
    bindir = dirname(dir);
    /* A build tree has config.status beside toolstack/. */
    snprintf(probe, sizeof(probe), "%s/../config.status", bindir);
    snprintf(share, sizeof(share), "%s/../share/bulkhead/bench.sh", bindir);
    if (access(probe, F_OK) == 0) {
        base = BH_SRCDIR;
        sub = "/toolstack";
    } else if (access(share, R_OK) == 0) {
        snprintf(share, sizeof(share), "%s/../share/bulkhead", bindir);
        base = share;
    }
    if (snprintf(script, sizeof(script), "%s%s/bench.sh", base, sub) >= (int)sizeof(script) ||
        snprintf(examples, sizeof(examples), "%s/examples", base) >= (int)sizeof(examples)) {
        errorf("bench: the path of bench.sh under %s is too long: install Bulkhead elsewhere",
               base);
        return 1;
    }
    if (access(script, R_OK) != 0) {
        errorf("bench: %s is missing: reinstall Bulkhead, or run bulkhead from its build tree",
               script);
        return 1;
    }
    if (setenv("BULKHEAD", self, 1) != 0 || setenv("BULKHEAD_STATE_DIR", state_dir, 1) != 0 ||
        setenv("BULKHEAD_BENCH_EXAMPLES", examples, 1) != 0) {
        errorf("bench: cannot set the environment: %s", strerror(errno));
        return 1;
    }
    /* bash SCRIPT ARG...: argv[0] is "bench", its options follow. */
    if ((args = calloc((size_t)argc + 2, sizeof(*args))) == NULL) {
        errorf("bench: out of memory");
        return 1;
    }
    args[0] = "bash";
    args[1] = script;
    for (int i = 1; i < argc; i++)
        args[i + 1] = argv[i];
    execv("/bin/bash", args);
    errorf("bench: cannot run /bin/bash %s: %s", script, strerror(errno));
    free(args);
    return 1;
}
