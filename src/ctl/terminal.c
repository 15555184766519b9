/* SPDX-License-Identifier: MIT */
/*
 * spillwayctl on a terminal: whether stdout/stderr is one, colour (never
 * with NO_COLOR, never when not a terminal), its size, and the pager that
 * long output goes through, as systemctl does ($SYSTEMD_PAGER, $PAGER,
 * less with LESS=FRSXMK; --no-pager, an empty value or "cat" turn it off).
 */
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cmdline.h"
#include "ctl.h"
#include "macro.h"
#include "strbuf.h"
#include "timeutil.h"

bool is_terminal(int fd) {
        const char *t = getenv("TERM");
        return isatty(fd) && !(t && !strcmp(t, "dumb"));
}

/* Colour on a terminal only, and never with NO_COLOR set (no-color.org). */
bool use_colour(void) {
        const char *nc = getenv("NO_COLOR");
        return is_terminal(STDOUT_FILENO) && !(nc && *nc);
}

void terminal_size(int fd, unsigned *rows, unsigned *cols) {
        struct winsize w = {};
        *rows = 24;
        *cols = 80;
        if (ioctl(fd, TIOCGWINSZ, &w) == 0 && w.ws_row > 0 && w.ws_col > 0) {
                *rows = w.ws_row;
                *cols = w.ws_col;
        }
}

/* Write text to stdout, through a pager when stdout is a terminal and the
 * text is taller than it (as systemctl does): $SYSTEMD_PAGER, else $PAGER,
 * else less; an empty value or "cat" means no pager, as does --no-pager. */
void page_out(const char *text, size_t len) {
        size_t lines = 0;
        unsigned rows, cols;
        for (size_t i = 0; i < len; i++)
                lines += text[i] == '\n';
        if (!arg_no_pager && is_terminal(STDOUT_FILENO)) {
                terminal_size(STDOUT_FILENO, &rows, &cols);
                const char *pager = getenv("SYSTEMD_PAGER");
                if (!pager)
                        pager = getenv("PAGER");
                if (!pager)
                        pager = "less";
                if (lines >= rows && *pager && strcmp(pager, "cat")) {
                        setenv("LESS", "FRSXMK", 0);   /* systemd's defaults: quit if one screen, keep colours */
                        fflush(stdout);
                        FILE *p = popen(pager, "w");
                        if (p) {
                                void (*old)(int) = signal(SIGPIPE, SIG_IGN);
                                fwrite(text, 1, len, p);
                                int r = pclose(p);
                                signal(SIGPIPE, old);
                                if (r != -1 && !(WIFEXITED(r) && WEXITSTATUS(r) == 127))
                                        return;
                                fprintf(stderr, "spillwayctl: pager '%s' did not run; printing without it\n", pager);
                        }
                }
        }
        fwrite(text, 1, len, stdout);
}
