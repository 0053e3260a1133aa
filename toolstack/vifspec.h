/*
 * vifspec.h - one entry of an xl config's vif = [ ... ] list, parsed as
 * xl-network-configuration(5) of Xen 4.17 describes it, but strictly.
 * libxlutil parses disks and not vifs: xl does it in xl_parse.c, which is
 * not a library.  A library: no hypervisor, no store.
 *
 * A vifspec is a comma-separated list of KEY=VALUE items and flags; spaces
 * around an item are ignored, as xl ignores them; '' is a vif with every
 * default.  Understood:
 *   mac=XX:XX:XX:XX:XX:XX   unicast, not all-zero (default: 00:16:3e:xx:xx:xx)
 *   bridge=NAME             (default xenbr0)
 *   gatewaydev=NAME         (netdev=NAME: its deprecated name, as xl)
 *   type=vif                (ioemu is refused: a simulated guest is PV)
 *   model=NAME              accepted, unused by PV guests (as libxl)
 *   vifname=NAME            the backend interface's name
 *   script=PATH             (default vif-bridge)
 *   ip=ADDR[ ADDR]...       IPv4 or IPv6 addresses, optional /PREFIX
 *   backend=DOMAIN          the backend domain's name (default dom0)
 *   rate=N{B,KB,MB,GB,b,Kb,Mb,Gb}/s[@N{s,ms,us}]  (interval default 50ms)
 *   mtu=68..65535           (default 1500)
 *   devid=0..65535          (default: its index in the vif list)
 *   trusted, untrusted      whether the frontend trusts the backend
 *   accel=...               accepted and ignored, as xl does
 * Interface names (bridge, gatewaydev, vifname) follow Linux: 1 to 15
 * bytes, none of '/', ':' or white space, not "." or "..".
 *
 * Stricter than xl, deliberately: an unknown key, a key given twice, an
 * empty item, a mac that xl would read leniently ("0:16:3e:1:2:3"), a
 * number with a leading zero (xl's strtoul reads "010" as octal in a
 * rate), an interval without a unit (xl reads "5" as seconds and "5m" as
 * milliseconds, the man page says microseconds), a rate that rounds to 0
 * bytes per interval, the COLO keys (no COLO in the simulation): refused.
 */
#ifndef BULKHEAD_VIFSPEC_H
#define BULKHEAD_VIFSPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VIFSPEC_IFNAME_MAX         16 /* IFNAMSIZ: 15 bytes and the NUL */
#define VIFSPEC_STR_MAX            256
#define VIFSPEC_MTU_DEFAULT        1500
#define VIFSPEC_RATE_USECS_DEFAULT 50000u
#define VIFSPEC_DEVID_MAX          65535

struct vifspec {
    bool has_mac;
    uint8_t mac[6];
    char bridge[VIFSPEC_IFNAME_MAX];     /* "" : the default */
    char gatewaydev[VIFSPEC_IFNAME_MAX]; /* "" : none */
    char vifname[VIFSPEC_IFNAME_MAX];    /* "" : none */
    char model[VIFSPEC_STR_MAX];         /* "" : none */
    char script[VIFSPEC_STR_MAX];        /* "" : the default */
    char ip[VIFSPEC_STR_MAX];            /* "" : none */
    char backend[64];                    /* "" : dom0 */
    bool has_rate;
    uint64_t rate_bytes; /* per interval, as libxl stores it */
    uint32_t rate_usecs;
    unsigned int mtu; /* VIFSPEC_MTU_DEFAULT unless given */
    long devid;       /* -1: not given */
    int trusted;      /* -1: not given; 0 untrusted; 1 trusted */
    bool accel;       /* accel= was given (and is ignored) */
};

/*
 * Parses one vifspec.  Returns 0, or -1 with a one-line message in err
 * that names the item and the fix.
 */
int vifspec_parse(const char *spec, struct vifspec *v, char *err, size_t errlen);

/*
 * A rate as xl reads it ("10MB/s@20ms"), into bytes per interval and the
 * interval in microseconds.  0, or -1 with a one-line reason.
 */
int vifspec_parse_rate(const char *s, uint64_t *bytes, uint32_t *usecs, char *err, size_t errlen);

/* A mac: exactly six pairs of hex digits separated by ':'; unicast, not zero. */
int vifspec_parse_mac(const char *s, uint8_t mac[6], char *err, size_t errlen);

/* "00:16:3e:0a:0b:0c" (lower case, as libxl writes it); buf of 18 bytes. */
void vifspec_format_mac(const uint8_t mac[6], char buf[18]);

/*
 * The mac libxl would make: Xen's OUI 00:16:3e, then 23 bits.  With stable,
 * the 23 bits are the low bits of FNV-1a-32 over "<domain name>/<index>"
 * (the vif's index in the list), so that golden files stay the same from
 * run to run; without, they are random (getrandom), as libxl's are.
 * Returns 0, or -1 with errno from getrandom.
 */
int vifspec_default_mac(const char *domain, unsigned int index, bool stable, uint8_t mac[6]);

/* A Linux interface name (see above). */
bool vifspec_ifname_ok(const char *s);

/*
 * script=: vif-bridge or vif-route, bare or under /etc/xen/scripts, or ""
 * (vif-bridge); anything else is refused, since bulkhead-drvdom runs no
 * scripts and only what these two do is done.  Sets *routed for
 * vif-route.  0, or -1 with a one-line message in err naming the fix.
 */
int vifspec_script(const char *script, bool *routed, char *err, size_t errlen);

/*
 * A routed vif's ip= (as written, "" when none): the IPv4 host addresses
 * vif-route routes to the vif, network order, into ip[0..*n).  Refused: no
 * address, a /PREFIX other than /32, IPv6, 0/8, 127/8, multicast or
 * broadcast, an address twice, more than VIFSPEC_ROUTED_MAX.  0, or -1
 * with a one-line message in err naming the fix.
 */
#define VIFSPEC_ROUTED_MAX 8 /* as many as netback's anti-spoofing and the broker take */
int vifspec_routed_ips(const char *ips, uint32_t ip[VIFSPEC_ROUTED_MAX], unsigned int *n,
                       char *err, size_t errlen);

#endif
