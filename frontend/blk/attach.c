/*
 * attach.c - the whole device for a process that owns it (the nbdkit
 * plugin): XenStore and platform handles, the frontend's XenBus machine
 * and one event thread for watches and the event channel.
 */
#define _GNU_SOURCE
#include "private.h"
