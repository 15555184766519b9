/* SPDX-License-Identifier: MIT */
/*
 * The ban-history index (banhist.h): a chained hash table of targets, each
 * with its records in arrival order, and one ring of entry pointers in
 * arrival order over all targets so that the oldest record is found in
 * O(1) at the cap. An entry's records are removed only from its front (the
 * ring's order is the entries' order), so an entry whose last record goes
 * has no place left in the ring and is freed.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "banhist.h"

typedef struct hrec {
        usec_t created, until;
} hrec;

/* One allocation per target (most have one record: 64 bytes for an IPv4
 * target, against 160 in four allocations before issue 17): the target
 * inline, the first record inline until a second one comes. */
typedef struct hentry {
        struct hentry *next;  /* hash chain */
        union {
                hrec one;     /* cap == 1 */
                hrec *recs;   /* cap > 1 */
        } u;
        uint32_t first, n, cap; /* records [first, first+n) */
        char target[];
} hentry;

static hrec *entry_recs(hentry *e) {
        return e->cap == 1 ? &e->u.one : e->u.recs;
}

struct banhist {
        pthread_mutex_t lock;
        hentry **buckets;
        size_t n_buckets;
        size_t n_targets;
        hentry **ring;        /* one slot per record, arrival order */
        size_t ring_head, n_records, cap;
        uint64_t evicted, lookups, hits;
};

static uint64_t hash_str(const char *s) {
        uint64_t h = UINT64_C(1469598103934665603); /* FNV-1a */
        for (; *s; s++)
                h = (h ^ (unsigned char) *s) * UINT64_C(1099511628211);
        return h;
}

banhist *banhist_new(size_t cap) {
        banhist *h = calloc(1, sizeof *h);
        if (!h)
                return NULL;
        h->cap = cap ? cap : BANHIST_DEFAULT_CAP;
        h->n_buckets = 1024;
        h->buckets = calloc(h->n_buckets, sizeof *h->buckets);
        if (!h->buckets) {
                free(h);
                return NULL;
        }
        pthread_mutex_init(&h->lock, NULL);
        return h;
}

static void entry_free(hentry *e) {
        if (e->cap > 1)
                free(e->u.recs);
        free(e);
}

static void clear_locked(banhist *h) {
        for (size_t i = 0; i < h->n_buckets; i++) {
                hentry *e = h->buckets[i];
                while (e) {
                        hentry *n = e->next;
                        entry_free(e);
                        e = n;
                }
                h->buckets[i] = NULL;
        }
        free(h->ring);
        h->ring = NULL;
        h->ring_head = h->n_records = h->n_targets = 0;
}

banhist *banhist_free(banhist *h) {
        if (!h)
                return NULL;
        clear_locked(h);
        free(h->buckets);
        pthread_mutex_destroy(&h->lock);
        free(h);
        return NULL;
}

void banhist_clear(banhist *h) {
        pthread_mutex_lock(&h->lock);
        clear_locked(h);
        pthread_mutex_unlock(&h->lock);
}

static hentry **find_slot(banhist *h, const char *target) {
        hentry **p = &h->buckets[hash_str(target) & (h->n_buckets - 1)];
        while (*p && strcmp((*p)->target, target) != 0)
                p = &(*p)->next;
        return p;
}

static void grow_buckets(banhist *h) {
        size_t n = h->n_buckets * 2;
        hentry **b = calloc(n, sizeof *b);
        if (!b)
                return; /* longer chains, still correct */
        for (size_t i = 0; i < h->n_buckets; i++) {
                hentry *e = h->buckets[i];
                while (e) {
                        hentry *next = e->next;
                        size_t k = hash_str(e->target) & (n - 1);
                        e->next = b[k];
                        b[k] = e;
                        e = next;
                }
        }
        free(h->buckets);
        h->buckets = b;
        h->n_buckets = n;
}

/* Forget the oldest record of all (the ring's head). */
static void evict_oldest(banhist *h) {
        hentry *e = h->ring[h->ring_head];
        h->ring_head = (h->ring_head + 1) % h->cap;
        h->n_records--;
        h->evicted++;
        e->first++;
        if (--e->n == 0) {
                hentry **p = find_slot(h, e->target);
                *p = e->next;
                h->n_targets--;
                entry_free(e);
        }
}

int banhist_record(banhist *h, const char *target, usec_t created, usec_t until) {
        int r = 1;

        pthread_mutex_lock(&h->lock);
        if (!h->ring && !(h->ring = calloc(h->cap, sizeof *h->ring))) {
                r = -ENOMEM;
                goto out;
        }
        hentry **slot = find_slot(h, target), *e = *slot;
        hrec *recs;
        if (e) {
                recs = entry_recs(e);
                for (size_t i = e->first; i < (size_t) e->first + e->n; i++)
                        if (recs[i].until == until) {
                                r = 0; /* the same ban, seen again */
                                goto out;
                        }
        }
        if (h->n_records == h->cap) {
                /* first, so that the entry we append to cannot be freed
                 * under us (its only record may be the oldest) */
                evict_oldest(h);
                slot = find_slot(h, target);
                e = *slot;
        }
        if (!e) {
                size_t l = strlen(target) + 1;
                e = malloc(sizeof *e + l);
                if (!e) {
                        r = -ENOMEM;
                        goto out;
                }
                *e = (hentry) { .cap = 1 };
                memcpy(e->target, target, l);
                *slot = e;
                h->n_targets++;
        }
        recs = entry_recs(e);
        if (e->first + e->n == e->cap) {
                if (e->first > 0) { /* slide the kept records to the front */
                        memmove(recs, recs + e->first, e->n * sizeof *recs);
                        e->first = 0;
                }
                if (e->n == e->cap) {
                        hrec *nr = NULL;
                        if (e->cap < UINT32_MAX / 2)
                                nr = e->cap == 1 ? malloc(2 * sizeof *nr)
                                                 : realloc(e->u.recs, (size_t) e->cap * 2 * sizeof *nr);
                        if (!nr) {
                                r = -ENOMEM;
                                goto out;
                        }
                        if (e->cap == 1)
                                nr[0] = e->u.one;
                        e->u.recs = recs = nr;
                        e->cap *= 2;
                }
        }
        recs[e->first + e->n] = (hrec) { .created = created, .until = until };
        e->n++;
        h->ring[(h->ring_head + h->n_records) % h->cap] = e;
        h->n_records++;
        if (h->n_targets > h->n_buckets)
                grow_buckets(h);
out:
        pthread_mutex_unlock(&h->lock);
        return r;
}

int banhist_count(void *userdata, const char *value, int64_t since, uint64_t *count) {
        banhist *h = userdata;
        uint64_t n = 0;

        pthread_mutex_lock(&h->lock);
        h->lookups++;
        hentry *e = *find_slot(h, value);
        if (e) {
                h->hits++;
                hrec *recs = entry_recs(e);
                for (size_t i = e->first; i < (size_t) e->first + e->n; i++)
                        n += recs[i].created >= since;
        }
        pthread_mutex_unlock(&h->lock);
        *count = n;
        return 0;
}

void banhist_get_stats(banhist *h, banhist_stats *ret) {
        pthread_mutex_lock(&h->lock);
        *ret = (banhist_stats) { .records = h->n_records, .targets = h->n_targets, .cap = h->cap,
                                 .evicted = h->evicted, .lookups = h->lookups, .hits = h->hits };
        pthread_mutex_unlock(&h->lock);
}
