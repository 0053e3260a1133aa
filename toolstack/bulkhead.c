/*
 * bulkhead.c - the bulkhead command: options common to every command, and
 * the table of commands (one file per family, as xl does).
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "toolstack.h"

const char *state_dir = "/run/bulkhead";

static const struct cmd cmds[] = {
    {"up", cmd_up, "up", "start the simulation (bulkhead-hv) in the state directory"},
    {"down", cmd_down, "down", "destroy every domain and stop the simulation"},
    {"env", cmd_env, "env", "print what a dom0 shell needs, in shell syntax"},
    {"create", cmd_create, "create [-n] FILE",
     "create a domain from an xl config, or a guest from libvirt domain XML"},
    {"destroy", cmd_destroy, "destroy NAME|ID", "destroy a domain"},
    {"list", cmd_list, "list [--json]", "list the domains"},
    {"info", cmd_info, "info [--json]",
     "show the simulated hypervisor's counters (domains, grants, ports, fds, memory)"},
    {"block-list", cmd_block_list, "block-list NAME|ID [--json]",
     "list a domain's virtual block devices and where each stands"},
    {"network-list", cmd_network_list, "network-list NAME|ID [--json]",
     "list a domain's virtual network interfaces and where each stands"},
    {"block-attach", cmd_block_attach, "block-attach NAME|ID DISKSPEC...",
     "give a running guest another disk (xl-disk-configuration(5))"},
    {"block-detach", cmd_block_detach, "block-detach NAME|ID VDEV", "take a disk from a guest"},
    {"network-attach", cmd_network_attach, "network-attach NAME|ID [VIFSPEC]...",
     "give a running guest another vif (xl-network-configuration(5))"},
    {"network-detach", cmd_network_detach, "network-detach NAME|ID MAC|DEVID",
     "take a vif from a guest"},
    {"restart", cmd_restart, "restart NAME|ID", "rebuild a driver domain; its devices follow"},
    {"pause", cmd_pause, "pause NAME|ID", "stop every process of a domain until unpaused"},
    {"unpause", cmd_unpause, "unpause NAME|ID", "let a paused domain run again"},
    {"tcb", cmd_tcb, "tcb [--json]",
     "the driver domain's and stock dom0's reach: code, libraries, syscalls, capabilities"},
    {"exec", cmd_exec, "exec NAME|ID -- COMMAND [ARG]...",
     "run a command in a guest as its root, passing stdio and its exit status through"},
    {"upgrade", cmd_upgrade, "upgrade NAME|ID [--binary PATH]",
     "a new bulkhead-drvdom takes over a driver domain's devices, unseen by the frontends"},
    {"bench", cmd_bench, "bench [OPTION]...",
     "the main job: fio and iperf3 through the driver domain, dom0 and baselines"},
};

void errorf(const char *fmt, ...)
{
    va_list ap;

    fputs("bulkhead: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void die_usage(const struct cmd *c)
{
    fprintf(stderr, "usage: bulkhead [--state-dir DIR] %s\n", c->usage);
    exit(2);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: bulkhead [--state-dir DIR] COMMAND [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
        fprintf(f, "  %-34s %s\n", cmds[i].usage, cmds[i].help);
    fprintf(f, "\nThe state directory defaults to $BULKHEAD_STATE_DIR, else /run/bulkhead.\n");
}

int main(int argc, char **argv)
{
    const char *env = getenv("BULKHEAD_STATE_DIR");
    int i = 1;

    if (env != NULL && env[0] != '\0')
        state_dir = env;
    while (i < argc && argv[i][0] == '-') {
        if (strcmp(argv[i], "--state-dir") == 0 && i + 1 < argc) {
            state_dir = argv[i + 1];
            i += 2;
        } else if (strncmp(argv[i], "--state-dir=", 12) == 0) {
            state_dir = argv[i] + 12;
            i++;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            errorf("unknown option %s: see 'bulkhead --help'", argv[i]);
            return 2;
        }
    }
    if (i == argc) {
        usage(stderr);
        return 2;
    }
    if (state_dir[0] != '/') {
        errorf("the state directory must be an absolute path, not %s", state_dir);
        return 2;
    }
    for (size_t c = 0; c < sizeof(cmds) / sizeof(cmds[0]); c++)
        if (strcmp(argv[i], cmds[c].name) == 0)
            return cmds[c].fn(argc - i, argv + i);
    errorf("unknown command '%s': see 'bulkhead --help'", argv[i]);
    return 2;
}
