/* SPDX-License-Identifier: MIT */
/*
 * The nftables backend's memory of its elements (see elements.h for the
 * model). Two open-addressing hash tables (linear probing, tombstones,
 * power-of-two sizes) keyed by the 32 bytes of (start, end): one for single
 * addresses, one for ranges. Range operations scan the range table: bans
 * of whole ranges are few next to bans of addresses, so O(ranges) per
 * range ban is the simple and right trade (addresses stay O(1)).
 *
 * Undo log: each change records the key and the element it replaced (its
 * strings moved into the record, or copied when only a flag changed);
 * elems_clear() moves both tables into the record. Rollback replays the
 * log backwards; commit frees the records.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "elements.h"

/* ---------------------------------------------------------------- addresses */

static const uint8_t v4_prefix[12] = { [10] = 0xff, [11] = 0xff };

bool nfaddr_is_v4(const uint8_t a[16]) {
        return memcmp(a, v4_prefix, 12) == 0;
}

int nfaddr_parse(const char *s, bool lax, nfaddr_range *ret) {
        char buf[64];
        const char *slash = strchr(s, '/');
        size_t len = slash ? (size_t) (slash - s) : strlen(s);
        uint8_t a[16];
        unsigned prefix, max;
        bool v4;

        if (len == 0 || len >= sizeof buf)
                return -EINVAL;
        memcpy(buf, s, len);
        buf[len] = 0;
        if (inet_pton(AF_INET, buf, a + 12) == 1) {
                memcpy(a, v4_prefix, 12);
                v4 = true;
        } else if (inet_pton(AF_INET6, buf, a) == 1)
                v4 = false;
        else
                return -EINVAL;
        max = v4 ? 32 : 128;
        prefix = max;
        if (slash) {
                char *end;
                unsigned long p;
                if (slash[1] < '0' || slash[1] > '9')
                        return -EINVAL;
                errno = 0;
                p = strtoul(slash + 1, &end, 10);
                if (errno || *end || p > max)
                        return -EINVAL;
                prefix = (unsigned) p;
        }
        prefix += v4 ? 96 : 0;
        memcpy(ret->start, a, 16);
        memcpy(ret->end, a, 16);
        for (unsigned bit = prefix; bit < 128; bit++) {
                uint8_t m = (uint8_t) (0x80 >> (bit % 8));
                if ((a[bit / 8] & m) && !lax)
                        return -EINVAL;
                ret->start[bit / 8] &= (uint8_t) ~m;
                ret->end[bit / 8] |= m;
        }
        return 0;
}

const char *nfaddr_format(const uint8_t a[16], char *buf, size_t size) {
        if (nfaddr_is_v4(a))
                inet_ntop(AF_INET, a + 12, buf, (socklen_t) size);
        else
                inet_ntop(AF_INET6, a, buf, (socklen_t) size);
        return buf;
}

bool nfaddr_overlap(const nfaddr_range *a, const nfaddr_range *b) {
        return memcmp(a->start, b->end, 16) <= 0 && memcmp(b->start, a->end, 16) <= 0;
}

bool nfaddr_contains(const nfaddr_range *outer, const nfaddr_range *inner) {
        return memcmp(outer->start, inner->start, 16) <= 0 && memcmp(inner->end, outer->end, 16) <= 0;
}

void nfaddr_list_free(nfaddr_list *l) {
        for (size_t i = 0; i < l->n; i++)
                free(l->text[i]);
        free(l->text);
        free(l->r);
        *l = (nfaddr_list) { 0 };
}

int nfaddr_list_parse(nfaddr_list *l, const char *s, char *bad, size_t badsize) {
        nfaddr_list n = { 0 };
        const char *p = s;

        while (*p) {
                size_t len;
                char word[64];
                nfaddr_range r;
                if (*p == ',' || *p == ' ' || *p == '\t' || *p == '\n') {
                        p++;
                        continue;
                }
                len = strcspn(p, ", \t\n");
                snprintf(word, sizeof word, "%.*s", (int) (len < 63 ? len : 63), p);
                if (len >= sizeof word || nfaddr_parse(word, false, &r) < 0) {
                        snprintf(bad, badsize, "%.*s", (int) len, p);
                        nfaddr_list_free(&n);
                        return -EINVAL;
                }
                nfaddr_range *nr = realloc(n.r, (n.n + 1) * sizeof *nr);
                if (!nr) {
                        nfaddr_list_free(&n);
                        return -ENOMEM;
                }
                n.r = nr;
                char **nt = realloc(n.text, (n.n + 1) * sizeof *nt);
                if (!nt || !(nt[n.n] = strdup(word))) {
                        if (nt)
                                n.text = nt;
                        nfaddr_list_free(&n);
                        return -ENOMEM;
                }
                n.text = nt;
                n.r[n.n++] = r;
                p += len;
        }
        nfaddr_list_free(l);
        *l = n;
        return 0;
}

int nfaddr_list_overlap(const nfaddr_list *l, const nfaddr_range *r) {
        for (size_t i = 0; i < l->n; i++)
                if (nfaddr_overlap(&l->r[i], r))
                        return (int) i;
        return -1;
}

/* ---------------------------------------------------------------- hash tables */

enum { S_FREE = 0, S_USED = 1, S_TOMB = 2 };

typedef struct table {
        elem *slot;
        size_t cap, used, tombs;
} table;

static uint64_t key_hash(const nfaddr_range *r) {
        const uint8_t *p = (const uint8_t *) r;
        uint64_t h = UINT64_C(0xcbf29ce484222325);
        for (size_t i = 0; i < sizeof *r; i++) {
                h ^= p[i];
                h *= UINT64_C(0x100000001b3);
        }
        return h ^ (h >> 29);
}

static void elem_strings_free(elem *e) {
        free(e->text);
        free(e->reason);
        free(e->source);
        e->text = e->reason = e->source = NULL;
}

static void table_deinit(table *t) {
        for (size_t i = 0; i < t->cap; i++)
                if (t->slot[i].state == S_USED)
                        elem_strings_free(&t->slot[i]);
        free(t->slot);
        *t = (table) { 0 };
}

static elem *table_find(const table *t, const nfaddr_range *r) {
        if (!t->cap)
                return NULL;
        for (size_t i = key_hash(r) & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
                elem *e = &t->slot[i];
                if (e->state == S_FREE)
                        return NULL;
                if (e->state == S_USED && memcmp(&e->r, r, sizeof *r) == 0)
                        return e;
        }
}

static void table_place(table *t, const elem *src) {
        for (size_t i = key_hash(&src->r) & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
                if (t->slot[i].state != S_USED) {
                        if (t->slot[i].state == S_TOMB)
                                t->tombs--;
                        t->slot[i] = *src;
                        t->slot[i].state = S_USED;
                        t->used++;
                        return;
                }
        }
}

static int table_reserve(table *t) {
        size_t cap;
        table n;

        if ((t->used + t->tombs + 1) * 10 <= t->cap * 7)
                return 0;
        cap = t->cap ? t->cap : 64;
        while ((t->used + 1) * 10 > cap * 5)
                cap *= 2;
        n = (table) { .slot = calloc(cap, sizeof(elem)), .cap = cap };
        if (!n.slot)
                return -ENOMEM;
        for (size_t i = 0; i < t->cap; i++)
                if (t->slot[i].state == S_USED)
                        table_place(&n, &t->slot[i]);
        free(t->slot);
        *t = n;
        return 0;
}

/* Insert a new element (absent before; table reserved). Takes its strings. */
static elem *table_insert(table *t, const elem *src) {
        table_place(t, src);
        return table_find(t, &src->r);
}

static void table_erase(table *t, elem *e) {
        e->state = S_TOMB;
        e->text = e->reason = e->source = NULL;
        t->used--;
        t->tombs++;
}

/* ---------------------------------------------------------------- undo log */

enum { U_ELEM, U_CLEAR };

typedef struct undo {
        int kind;
        bool range;
        nfaddr_range key;
        bool had_prev;
        elem prev;              /* owns its strings */
        table saved[2];         /* U_CLEAR */
} undo;

struct elems {
        table t[2];             /* [0] addresses, [1] ranges */
        elems_emit_fn emit;
        void *userdata;
        undo *log;
        size_t n_log, cap_log;
};

static int log_push(elems *s, const undo *u) {
        if (s->n_log == s->cap_log) {
                size_t cap = s->cap_log ? s->cap_log * 2 : 64;
                undo *n = realloc(s->log, cap * sizeof *n);
                if (!n)
                        return -ENOMEM;
                s->log = n;
                s->cap_log = cap;
        }
        s->log[s->n_log++] = *u;
        return 0;
}

static int elem_copy(elem *dst, const elem *src) {
        *dst = *src;
        dst->text = src->text ? strdup(src->text) : NULL;
        dst->reason = src->reason ? strdup(src->reason) : NULL;
        dst->source = src->source ? strdup(src->source) : NULL;
        if ((src->text && !dst->text) || (src->reason && !dst->reason) || (src->source && !dst->source)) {
                elem_strings_free(dst);
                return -ENOMEM;
        }
        return 0;
}

elems *elems_new(elems_emit_fn emit, void *userdata) {
        elems *s = calloc(1, sizeof *s);
        if (!s)
                return NULL;
        s->emit = emit;
        s->userdata = userdata;
        return s;
}

elems *elems_free(elems *s) {
        if (!s)
                return NULL;
        elems_commit(s);
        table_deinit(&s->t[0]);
        table_deinit(&s->t[1]);
        free(s->log);
        free(s);
        return NULL;
}

bool elems_dirty(const elems *s) {
        return s->n_log > 0;
}

void elems_commit(elems *s) {
        for (size_t i = 0; i < s->n_log; i++) {
                undo *u = &s->log[i];
                if (u->kind == U_CLEAR) {
                        table_deinit(&u->saved[0]);
                        table_deinit(&u->saved[1]);
                } else if (u->had_prev)
                        elem_strings_free(&u->prev);
        }
        s->n_log = 0;
}

void elems_rollback(elems *s) {
        while (s->n_log > 0) {
                undo *u = &s->log[--s->n_log];
                if (u->kind == U_CLEAR) {
                        table_deinit(&s->t[0]);
                        table_deinit(&s->t[1]);
                        s->t[0] = u->saved[0];
                        s->t[1] = u->saved[1];
                        continue;
                }
                table *t = &s->t[u->range];
                elem *cur = table_find(t, &u->key);
                if (cur) {
                        elem_strings_free(cur);
                        table_erase(t, cur);
                }
                /* the slot freed above (or a tombstone) takes it back: no
                 * allocation, so a rollback cannot fail */
                if (u->had_prev)
                        table_place(t, &u->prev);
        }
}

/* Record the state of key before a change. */
static int log_elem(elems *s, bool range, const nfaddr_range *key, elem *prev, bool move) {
        undo u = { .kind = U_ELEM, .range = range, .key = *key, .had_prev = prev != NULL };
        int r;

        if (prev) {
                if (move) {
                        u.prev = *prev;
                        prev->text = prev->reason = prev->source = NULL;
                } else if ((r = elem_copy(&u.prev, prev)) < 0)
                        return r;
        }
        r = log_push(s, &u);
        if (r < 0 && prev) {
                if (move) {     /* give the strings back */
                        prev->text = u.prev.text;
                        prev->reason = u.prev.reason;
                        prev->source = u.prev.source;
                } else
                        elem_strings_free(&u.prev);
        }
        return r;
}

/* ---------------------------------------------------------------- operations */

static bool active(const elem *e, elems_usec_t now) {
        return e->until > now;
}

static int emit(elems *s, int op, elem *e, elems_usec_t in_kernel_until) {
        if (in_kernel_until && e->uncertain)
                in_kernel_until = ELEMS_UNCERTAIN;
        return s->emit ? s->emit(s->userdata, op, e, in_kernel_until) : 0;
}

/* The in-kernel active range containing r (other than r itself), or NULL. */
static elem *kernel_container(elems *s, const nfaddr_range *r, elems_usec_t now) {
        table *t = &s->t[1];
        for (size_t i = 0; i < t->cap; i++) {
                elem *e = &t->slot[i];
                if (e->state == S_USED && !e->covered && active(e, now) && memcmp(&e->r, r, sizeof *r) != 0 &&
                    nfaddr_contains(&e->r, r))
                        return e;
        }
        return NULL;
}

/* Take the in-kernel ranges inside r out of the kernel (they become covered). */
static int demote_inside(elems *s, const nfaddr_range *r, elems_usec_t now) {
        table *t = &s->t[1];
        for (size_t i = 0; i < t->cap; i++) {
                elem *e = &t->slot[i];
                int k;
                if (e->state != S_USED || e->covered || memcmp(&e->r, r, sizeof *r) == 0 || !nfaddr_contains(r, &e->r))
                        continue;
                if ((k = log_elem(s, true, &e->r, e, false)) < 0)
                        return k;
                e->covered = true;
                /* an expired one already left the kernel by itself */
                if (active(e, now) && (k = emit(s, ELEMS_DEL, e, e->until)) < 0)
                        return k;
                e->uncertain = false;
        }
        return 0;
}

/* 128-bit width of a range, compared as two words: wider first. */
static int width_cmp(const nfaddr_range *a, const nfaddr_range *b) {
        uint8_t wa[16], wb[16];
        int borrow_a = 0, borrow_b = 0;
        for (int i = 15; i >= 0; i--) {
                int da = a->end[i] - a->start[i] - borrow_a, db = b->end[i] - b->start[i] - borrow_b;
                borrow_a = da < 0;
                borrow_b = db < 0;
                wa[i] = (uint8_t) (da + (borrow_a ? 256 : 0));
                wb[i] = (uint8_t) (db + (borrow_b ? 256 : 0));
        }
        return memcmp(wa, wb, 16);
}

/* Put covered ranges whose wider range left back into the kernel, widest
 * first (so a promoted range covers the narrower candidates inside it). */
static int promote(elems *s, elems_usec_t now) {
        table *t = &s->t[1];
        for (;;) {
                elem *best = NULL;
                int k;
                for (size_t i = 0; i < t->cap; i++) {
                        elem *e = &t->slot[i];
                        if (e->state != S_USED || !e->covered || !active(e, now) || kernel_container(s, &e->r, now))
                                continue;
                        if (!best || width_cmp(&e->r, &best->r) > 0)
                                best = e;
                }
                if (!best)
                        return 0;
                if ((k = demote_inside(s, &best->r, now)) < 0)
                        return k;
                if ((k = log_elem(s, true, &best->r, best, false)) < 0)
                        return k;
                best->covered = false;
                if ((k = emit(s, ELEMS_ADD, best, 0)) < 0)
                        return k;
        }
}

static int strdup3(elem *e, const char *text, const char *reason, const char *source) {
        e->text = text ? strdup(text) : NULL;
        e->reason = reason ? strdup(reason) : NULL;
        e->source = source ? strdup(source) : NULL;
        if ((text && !e->text) || (reason && !e->reason) || (source && !e->source)) {
                elem_strings_free(e);
                return -ENOMEM;
        }
        return 0;
}

int elems_put(elems *s, const nfaddr_range *r, elems_usec_t until, const char *text, const char *reason,
              const char *source, elems_usec_t now) {
        bool range = memcmp(r->start, r->end, 16) != 0;
        table *t = &s->t[range];
        elem n = { .r = *r, .until = until }, *e;
        int k;

        if ((k = strdup3(&n, text, reason, source)) < 0)
                return k;
        e = table_find(t, r);
        if (e) {
                if ((k = log_elem(s, range, r, e, true)) < 0) {
                        elem_strings_free(&n);
                        return k;
                }
                elems_usec_t old = e->until;
                bool uncertain = e->uncertain;
                n.covered = e->covered;
                n.state = S_USED;
                n.mark = e->mark;
                *e = n;
                /* replaced in one transaction (ELEMS_ADD replaces), never duplicated */
                if (e->covered)
                        return 0;
                e->uncertain = uncertain;       /* for this emit only */
                k = emit(s, ELEMS_ADD, e, old);
                e->uncertain = false;
                return k;
        }
        if (range) {
                if (kernel_container(s, r, now))
                        n.covered = true;
                else if ((k = demote_inside(s, r, now)) < 0) {
                        elem_strings_free(&n);
                        return k;
                }
        }
        if ((k = table_reserve(t)) < 0 || (k = log_elem(s, range, r, NULL, false)) < 0) {
                elem_strings_free(&n);
                return k;
        }
        e = table_insert(t, &n);
        return e->covered ? 0 : emit(s, ELEMS_ADD, e, 0);
}

int elems_adopt(elems *s, const nfaddr_range *r, elems_usec_t until, bool covered, const char *text,
                const char *reason, const char *source) {
        bool range = memcmp(r->start, r->end, 16) != 0;
        table *t = &s->t[range];
        elem n = { .r = *r, .until = until, .covered = covered && range, .uncertain = true };
        int k;

        if (table_find(t, r))
                return 0;
        if ((k = strdup3(&n, text, reason, source)) < 0)
                return k;
        if ((k = table_reserve(t)) < 0) {
                elem_strings_free(&n);
                return k;
        }
        table_insert(t, &n);
        return 0;
}

int elems_remove(elems *s, const nfaddr_range *r, bool *found, elems_usec_t now) {
        bool range = memcmp(r->start, r->end, 16) != 0;
        table *t = &s->t[range];
        elem *e = table_find(t, r);
        int k;

        *found = e != NULL;
        if (!e)
                return 0;
        if (!e->covered && (k = emit(s, ELEMS_DEL, e, e->until)) < 0)
                return k;
        if ((k = log_elem(s, range, r, e, true)) < 0)
                return k;
        table_erase(t, e);
        return range ? promote(s, now) : 0;
}

int elems_clear(elems *s, uint64_t *count, elems_usec_t now) {
        elems_counts c = elems_count(s, now);
        undo u = { .kind = U_CLEAR, .saved = { s->t[0], s->t[1] } };
        int k = log_push(s, &u);
        if (k < 0)
                return k;
        s->t[0] = s->t[1] = (table) { 0 };
        *count = c.addr4 + c.addr6 + c.range4 + c.range6 + c.covered;
        return 0;
}

int elems_expire(elems *s, elems_usec_t now) {
        int n = 0;
        if (elems_dirty(s))
                return 0;
        for (int k = 0; k < 2; k++) {
                table *t = &s->t[k];
                for (size_t i = 0; i < t->cap; i++) {
                        elem *e = &t->slot[i];
                        if (e->state == S_USED && !active(e, now)) {
                                elem_strings_free(e);
                                table_erase(t, e);
                                n++;
                        }
                }
        }
        int r = promote(s, now);
        /* promotions are kernel changes the caller commits or rolls back */
        return r < 0 ? r : n;
}

int elems_foreach(elems *s, elems_usec_t at, int (*fn)(const elem *e, void *userdata), void *userdata) {
        for (int k = 0; k < 2; k++) {
                table *t = &s->t[k];
                for (size_t i = 0; i < t->cap; i++) {
                        int r;
                        if (t->slot[i].state == S_USED && active(&t->slot[i], at) && (r = fn(&t->slot[i], userdata)))
                                return r;
                }
        }
        return 0;
}

int elems_replay(elems *s, elems_usec_t now) {
        for (int k = 0; k < 2; k++) {
                table *t = &s->t[k];
                for (size_t i = 0; i < t->cap; i++) {
                        elem *e = &t->slot[i];
                        int r;
                        if (e->state == S_USED && !e->covered && active(e, now) && (r = emit(s, ELEMS_ADD, e, 0)) < 0)
                                return r;
                }
        }
        return 0;
}

elems_counts elems_count(const elems *s, elems_usec_t now) {
        elems_counts c = { 0 };
        for (int k = 0; k < 2; k++) {
                const table *t = &s->t[k];
                for (size_t i = 0; i < t->cap; i++) {
                        const elem *e = &t->slot[i];
                        if (e->state != S_USED || !active(e, now))
                                continue;
                        bool v4 = nfaddr_is_v4(e->r.start);
                        if (e->covered)
                                c.covered++;
                        else if (k == 0)
                                *(v4 ? &c.addr4 : &c.addr6) += 1;
                        else
                                *(v4 ? &c.range4 : &c.range6) += 1;
                }
        }
        return c;
}
