/*
 * domparse.c - a DOM_CREATE request, checked.  Apart from domain.c so that
 * the parsing of what dom0's channel sends can be fuzzed on its own.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "hv.h"

#define DOM_MAX_STRINGS 256 /* arguments + environment entries of a create */

static bool name_ok(const char *name, size_t max)
{
    size_t n = strnlen(name, max);

    if (n == 0 || n == max)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = name[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '-' || ch == '.'))
            return false;
    }
    return true;
}

/*
 * Splits the request's string block into argv and envp (NULL-terminated
 * arrays pointing into a private copy).  Every string must end inside the
 * block, and the counts must match exactly.
 */
static int split_strings(const struct hvw_dom_create_req *r, const char *strings, size_t avail,
                         char **copy, char ***argv, char ***envp)
{
    uint32_t n = r->argc + r->envc, i = 0;
    char **v, *s;
    size_t off = 0;

    *copy = NULL;
    if (r->argc > DOM_MAX_STRINGS || r->envc > DOM_MAX_STRINGS || r->strings_len != avail)
        return EINVAL;
    if ((*copy = malloc(avail + 1)) == NULL || (v = calloc(n + 2, sizeof(*v))) == NULL) {
        free(*copy);
        *copy = NULL;
        return ENOMEM;
    }
    memcpy(*copy, strings, avail);
    (*copy)[avail] = '\0';
    s = *copy;
    for (i = 0; i < n && off < avail; i++) {
        size_t len = strnlen(s + off, avail - off);
        if (len == avail - off)
            break; /* runs past the block: no NUL inside */
        v[i + (i >= r->argc)] = s + off;
        off += len + 1;
    }
    if (i != n || off != avail) {
        free(v);
        free(*copy);
        *copy = NULL;
        return EINVAL;
    }
    *argv = v;            /* v[0 .. argc-1], NULL at argc */
    *envp = v + r->argc + 1; /* then envc entries, NULL */
    return 0;
}

int domain_parse_create(const uint8_t *p, size_t len, struct hvw_dom_create_req *r, char **copy,
                        char ***argv, char ***envp)
{
    if (len < sizeof(*r))
        return EINVAL;
    memcpy(r, p, sizeof(*r));
    if (!name_ok(r->name, sizeof(r->name)))
        return EINVAL;
    if (r->max_grant_frames > 4096 || r->max_evtchn_ports > 131072 || r->vcpus > 512 ||
        (r->flags & ~HVW_DOM_DRIVER) != 0)
        return EINVAL;
    return split_strings(r, (const char *)p + sizeof(*r), len - sizeof(*r), copy, argv, envp);
}
