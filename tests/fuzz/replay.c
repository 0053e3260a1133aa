/*
 * replay.c - runs a fuzz target over its seed corpus without libFuzzer.
 *
 * Usage: replay_NAME [FILE|DIR]...  With no argument, replays
 * $srcdir/tests/fuzz/corpus/NAME, which is what `make check` does.  Exits 0
 * if every input ran; a finding aborts the process, as under libFuzzer.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

#ifndef FUZZ_NAME
#error "FUZZ_NAME must name the target"
#endif

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    long len;

    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 ||
        fseek(f, 0, SEEK_SET) != 0) {
        fprintf(stderr, "replay: cannot read %s: %s\n", path, strerror(errno));
        if (f)
            fclose(f);
        return -1;
    }
    /* Exactly len bytes, so that ASan catches a target reading past the input. */
    buf = malloc(len ? (size_t)len : 1);
    if (buf == NULL || fread(buf, 1, (size_t)len, f) != (size_t)len) {
        fprintf(stderr, "replay: cannot read %s\n", path);
        free(buf);
        fclose(f);
        return -1;
    }
    fclose(f);
    LLVMFuzzerTestOneInput(buf, (size_t)len);
    free(buf);
    return 0;
}

static int replay_path(const char *path, int *count)
{
    struct stat st;
    struct dirent **names;
    int n, rc = 0;

    if (stat(path, &st) != 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        (*count)++;
        return replay_file(path);
    }
    if ((n = scandir(path, &names, NULL, alphasort)) < 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    for (int i = 0; i < n; i++) {
        char sub[4096];
        if (names[i]->d_name[0] != '.') {
            snprintf(sub, sizeof(sub), "%s/%s", path, names[i]->d_name);
            if (replay_path(sub, count) != 0)
                rc = -1;
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv)
{
    char def[4096];
    const char *srcdir = getenv("srcdir");
    int count = 0, rc = 0;

    if (argc < 2) {
        snprintf(def, sizeof(def), "%s/tests/fuzz/corpus/%s", srcdir ? srcdir : ".", FUZZ_NAME);
        rc = replay_path(def, &count);
    }
    for (int i = 1; i < argc; i++)
        if (replay_path(argv[i], &count) != 0)
            rc = -1;
    if (rc == 0 && count == 0) {
        fprintf(stderr, "replay: no inputs for %s: the corpus is missing\n", FUZZ_NAME);
        return 1;
    }
    printf("%s: replayed %d inputs%s\n", FUZZ_NAME, count, rc ? " (some unreadable)" : "");
    return rc == 0 ? 0 : 1;
}
