/* SPDX-License-Identifier: MIT */
/*
 * Runs a libFuzzer target over files and folders without libFuzzer, so the
 * seed corpora are regression tests in every build (ASan/UBSan included).
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "macro.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path) {
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        _cleanup_free_ uint8_t *buf = NULL;
        size_t len = 0, cap = 0, n;

        if (!f) {
                fprintf(stderr, "%s: cannot open\n", path);
                return -1;
        }
        do {
                if (len == cap) {
                        cap = cap ? cap * 2 : 4096;
                        uint8_t *p = realloc(buf, cap);
                        if (!p)
                                return -1;
                        buf = p;
                }
                n = fread(buf + len, 1, cap - len, f);
                len += n;
        } while (n > 0);
        LLVMFuzzerTestOneInput(buf, len);
        return 0;
}

int main(int argc, char **argv) {
        size_t files = 0;

        for (int i = 1; i < argc; i++) {
                struct stat st;
                if (stat(argv[i], &st) < 0) {
                        fprintf(stderr, "%s: not found\n", argv[i]);
                        return EXIT_FAILURE;
                }
                if (!S_ISDIR(st.st_mode)) {
                        if (run_file(argv[i]) < 0)
                                return EXIT_FAILURE;
                        files++;
                        continue;
                }
                DIR *d = opendir(argv[i]);
                struct dirent *de;
                if (!d)
                        return EXIT_FAILURE;
                while ((de = readdir(d))) {
                        char path[4096];
                        if (de->d_name[0] == '.')
                                continue;
                        snprintf(path, sizeof path, "%s/%s", argv[i], de->d_name);
                        if (run_file(path) < 0) {
                                closedir(d);
                                return EXIT_FAILURE;
                        }
                        files++;
                }
                closedir(d);
        }
        printf("ran %zu inputs\n", files);
        return files > 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
