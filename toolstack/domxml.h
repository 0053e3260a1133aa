/*
 * domxml.h - a guest described in libvirt domain XML (<domain type='xen'>),
 * read into the same struct xlcfg an xl config gives, so that everything
 * after parsing (devplan, create, create -n) is shared.  A library: no
 * hypervisor needed.
 *
 * The file is first validated against libvirt's own domain.rng (Debian's
 * libvirt0 ships it in /usr/share/libvirt/schemas/; BULKHEAD_DOMAIN_RNG
 * names another) with libxml2's RelaxNG, then read as libvirt's libxl
 * driver reads it (src/libxl/xen_xl.c, src/libxl/xen_common.c): each
 * <disk> and <interface> becomes the disk = / vif = spec libvirt's
 * converter would write for it, and those specs go through diskspec.h and
 * vifspec.h like an xl config's.  Domain settings: name, memory (maxmem),
 * currentMemory (memory), vcpu (its current= the vcpus), os/type (linux or
 * xen: a PV guest; hvm and xenpvh are refused with the xl path's words),
 * os kernel/initrd/cmdline and bootloader (noted, as xl's kernel,
 * ramdisk, cmdline, bootloader), the xenbus controller's maxGrantFrames and
 * maxEventChannels.  Other elements are ignored, as xl ignores keys it
 * does not know.  Driver domains come from xl configs only: libvirt has no
 * element for driver_domain nor for bulkhead_storage.
 *
 * Untrusted input: no DTD (a document with one is refused), no network, no
 * entity substitution; at most XLCFG_MAX_BYTES (1 MiB).
 */
#ifndef BULKHEAD_DOMXML_H
#define BULKHEAD_DOMXML_H

#include <stdbool.h>
#include <stddef.h>

#include "xlcfg.h"

#define DOMXML_SCHEMA_DEFAULT "/usr/share/libvirt/schemas/domain.rng"

/*
 * Reads `len` bytes of `data` (file names it in messages) into cfg.
 * schema: the domain.rng to validate with; NULL for $BULKHEAD_DOMAIN_RNG,
 * else DOMXML_SCHEMA_DEFAULT.  The compiled schema is kept for the next
 * call with the same path (not thread-safe).  Returns 0 (free cfg with
 * xlcfg_free), or -1 with a one-line message in err naming the fix.
 */
int domxml_read(struct xlcfg *cfg, const char *file, const char *data, size_t len,
                const char *schema, char *err, size_t errlen);

/* Whether data looks like XML: its first byte that is not white space is '<'. */
bool domxml_is_xml(const char *data, size_t len);

/*
 * A guest's config from FILE, xl or libvirt XML (told apart by
 * domxml_is_xml).  Returns as xlcfg_read.
 */
int domcfg_read(struct xlcfg *cfg, const char *file, char *err, size_t errlen);

#endif
