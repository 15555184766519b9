/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * IPv4 and IPv6 addresses and CIDR ranges as inclusive [start, end] pairs
 * of 16-byte addresses in network order; IPv4 is mapped to ::ffff:a.b.c.d
 * so one memcmp() orders every address.
 */

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

typedef struct ip_range {
        uint8_t start[16];
        uint8_t end[16];
        bool is_v4;
        unsigned prefix;       /* prefix length in the address's own family */
} ip_range;

/* An address ("192.0.2.1", "2001:db8::1") as a /32 or /128 range. */
int ip_parse_addr(const char *s, ip_range *ret);
/* A CIDR ("192.0.2.0/24", "2001:db8::/32"); host bits must be zero unless
 * `strict` is false. A bare address is accepted as a single-host range. */
int ip_parse_cidr(const char *s, bool strict, ip_range *ret);
bool ip_range_contains(const ip_range *outer, const ip_range *inner);
bool ip_addr_in(const uint8_t addr[16], const uint8_t start[16], const uint8_t end[16]);
/* Text of a 16-byte address (IPv4-mapped shown as dotted quad). */
#define IP_TEXT_MAX 46
char *ip_format(char *buf, size_t size, const uint8_t addr[16]);
/* The canonical text of a ban target: the address (IPv4-mapped as a dotted
 * quad), and "/prefix" for a range. ban.add, ban.delete and the producers'
 * IpText all go through it, so the same target is the same text. */
#define IP_RANGE_TEXT_MAX (IP_TEXT_MAX + 4)
char *ip_range_text(char *buf, size_t size, const ip_range *r, bool range);
/* Hex text of 16 bytes, 32 characters: sortable as a string. */
#define IP_HEX_MAX 33
char *ip_hex(char *buf, const uint8_t addr[16]);

/* A CrowdSec decision scope's name: the known ones (Ip, Range, Country,
 * AS) in their canonical spelling whatever the case, any other name of
 * letters, digits, '_', '-' and '.' (at most SCOPE_NAME_MAX) as given,
 * NULL for anything else. */
#define SCOPE_NAME_MAX 64u
const char *scope_canonical(const char *scope);
/* A non-address decision's value: 1..SCOPE_VALUE_MAX bytes, no control
 * characters ("Scope:value" then fits a varchar(255)). */
#define SCOPE_VALUE_MAX 200u
struct spw_error;
int scope_value_check(const char *value, struct spw_error *err);
