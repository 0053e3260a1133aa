/*
 * fe_table.c - the frontend table of the guest runtime: the vbd frontend
 * (fe_vbd.c, nbdkit with the blkfront plugin) and the vif frontend
 * (fe_vif.c, libbhnetfront over the guest's eth TAP).
 */
#include <string.h>

#include "front.h"

const struct bhfrontdrv *bhfrontdrv_find(const char *kind)
{
    static const struct bhfrontdrv *const table[] = {&blkfront_nbdkit, &netfront_tap};

    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
        if (strcmp(table[i]->kind, kind) == 0)
            return table[i];
    return NULL;
}
