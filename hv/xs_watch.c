/*
 * xs_watch.c - watches and their events.
 *
 * A watch fires once when it is set, then on every change at or below its
 * path; when a subtree above it is removed it fires with its own path.  A
 * watcher hears of a change only if it may read the node as the change
 * left it (as it was, for a removal): XSA-115, so that a watch is no
 * window into nodes one may not read.  @introduceDomain and @releaseDomain
 * go to dom0, and to whoever the special node's ACL lets read it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "xenstored.h"

static void send_event(struct xsd *d, struct xs_conn *c, const struct xs_watch *w,
                       const char *epath)
{
    size_t plen, tlen = strlen(w->token) + 1;
    char *buf;

    /* A relative watch hears relative paths; every event path is below its own. */
    if (w->strip > 0 && strlen(epath) >= w->strip)
        epath += w->strip;
    plen = strlen(epath) + 1;
    if ((buf = malloc(plen + tlen)) == NULL) {
        xsd_conn_kill(d, c, "out of memory for a watch event");
        return;
    }
    memcpy(buf, epath, plen);
    memcpy(buf + plen, w->token, tlen);
    xsd_queue(d, c, XS_WATCH_EVENT, 0, 0, buf, plen + tlen, false);
    free(buf);
}

static struct xs_watch *find(struct xs_conn *c, const char *path, const char *token,
                             struct xs_watch ***link)
{
    for (struct xs_watch **pp = &c->watches; *pp != NULL; pp = &(*pp)->next)
        if (strcmp((*pp)->path, path) == 0 && strcmp((*pp)->token, token) == 0) {
            if (link != NULL)
                *link = pp;
            return *pp;
        }
    return NULL;
}

int xs_watch_add(struct xsd *d, struct xs_conn *c, const char *path, const char *token,
                 bool relative)
{
    struct xs_watch *w;

    if (find(c, path, token, NULL) != NULL)
        return EEXIST;
    if (c->dom->domid != 0 && c->dom->watches >= d->quota[XSQ_WATCHES])
        return E2BIG;
    if ((w = calloc(1, sizeof(*w))) == NULL || (w->path = strdup(path)) == NULL ||
        (w->token = strdup(token)) == NULL) {
        if (w != NULL)
            free(w->path);
        free(w);
        return ENOMEM;
    }
    if (relative) {
        char home[32];
        w->strip = (size_t)snprintf(home, sizeof(home), XS_LOCAL_DOMAIN "%u/", c->dom->domid);
    }
    w->next = c->watches;
    c->watches = w;
    c->dom->watches++;
    c->dom->watch_mem += strlen(w->path) + strlen(w->token);
    /* Fired once up front, after the caller's OK: xenstore.txt. */
    return 0;
}

void xs_watch_initial(struct xsd *d, struct xs_conn *c, const char *path, const char *token)
{
    struct xs_watch *w = find(c, path, token, NULL);

    if (w != NULL)
        send_event(d, c, w, w->path);
}

static void watch_free(struct xs_conn *c, struct xs_watch *w)
{
    c->dom->watches--;
    c->dom->watch_mem -= strlen(w->path) + strlen(w->token);
    free(w->path);
    free(w->token);
    free(w);
}

int xs_watch_del(struct xsd *d, struct xs_conn *c, const char *path, const char *token)
{
    struct xs_watch **link, *w = find(c, path, token, &link);

    (void)d;
    if (w == NULL)
        return ENOENT;
    *link = w->next;
    watch_free(c, w);
    return 0;
}

void xs_watch_reset(struct xsd *d, struct xs_conn *c)
{
    struct xs_watch *w;

    (void)d;
    while ((w = c->watches) != NULL) {
        c->watches = w->next;
        watch_free(c, w);
    }
}

/* The path a watch hears for change ch, or NULL if the change is not its business. */
static const char *matches(const struct xs_watch *w, const struct xs_change *ch)
{
    if (ch->path[0] == '@')
        return strcmp(w->path, ch->path) == 0 ? ch->path : NULL;
    if (w->path[0] == '@')
        return NULL;
    if (xs_path_is_child(ch->path, w->path))
        return ch->path;
    if (ch->recurse && xs_path_is_child(w->path, ch->path))
        return w->path;
    return NULL;
}

void xs_watch_fire(struct xsd *d, const struct xs_change *ch)
{
    for (struct xs_conn *c = d->conns; c != NULL; c = c->next) {
        struct xs_who who;
        bool may = false, asked = false;

        if (c->dead)
            continue;
        xsd_who(c, d->quota, &who);
        for (struct xs_watch *w = c->watches; w != NULL; w = w->next) {
            const char *epath = matches(w, ch);
            if (epath == NULL)
                continue;
            if (!asked) {
                may = (xs_perm_for(&who, ch->perms, ch->nperms) & XS_P_READ) != 0;
                asked = true;
            }
            if (may)
                send_event(d, c, w, epath);
        }
    }
}

void xs_watch_fire_special(struct xsd *d, const char *special)
{
    int s = xs_special_index(special);
    struct xs_change ch = {special, d->st->special_acl[s], d->st->special_n[s], false};

    xs_watch_fire(d, &ch);
}

void xs_watch_changed(void *d, const struct xs_change *ch)
{
    xs_watch_fire(d, ch);
}
