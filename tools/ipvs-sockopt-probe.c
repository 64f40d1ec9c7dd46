// SPDX-License-Identifier: GPL-2.0
/*
 * ipvs-sockopt-probe: poke the IPVS setsockopt/getsockopt interface with
 * valid, short, long, NULL and garbage arguments and unknown command ids,
 * and print one deterministic line per call (return value, errno, returned
 * length and a hash of what the kernel wrote). Run it under the C IPVS and
 * under ours and diff the output (selftests/bad_input.sh).
 *
 *   ipvs-sockopt-probe [--sock raw|udp] [--tag NAME] [--seed N]
 *
 * Build: cc -O2 -Wall -o ipvs-sockopt-probe tools/ipvs-sockopt-probe.c
 *
 * The sequence is fixed and the garbage comes from a seeded PRNG, so two
 * conforming implementations print the same lines. GET_SERVICES entries are
 * sorted before hashing: their order follows a hash that mixes in the netns
 * address, which differs between runs even for the C implementation.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <unistd.h>
#include <linux/ip_vs.h>

#define BASE IP_VS_BASE_CTL

static const char *tag = "root";
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static int fd;

static uint64_t rng(void)
{
	/* xorshift64* */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

static void fill_random(void *p, size_t n)
{
	unsigned char *c = p;

	for (size_t i = 0; i < n; i++)
		c[i] = (unsigned char)rng();
}

static uint32_t fnv1a(const void *p, size_t n)
{
	const unsigned char *c = p;
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < n; i++) {
		h ^= c[i];
		h *= 16777619u;
	}
	return h;
}

static const char *errname(int e)
{
	const char *n = strerrorname_np(e);
	static char buf[16];

	if (n)
		return n;
	snprintf(buf, sizeof(buf), "E%d", e);
	return buf;
}

static const char *set_name(int cmd)
{
	static const char *names[] = {
		"SET_NONE", "SET_INSERT", "SET_ADD", "SET_EDIT", "SET_DEL",
		"SET_FLUSH", "SET_LIST", "SET_ADDDEST", "SET_DELDEST",
		"SET_EDITDEST", "SET_TIMEOUT", "SET_STARTDAEMON",
		"SET_STOPDAEMON", "SET_RESTORE", "SET_SAVE", "SET_ZERO",
	};
	static char buf[16];

	if (cmd >= BASE && cmd <= IP_VS_SO_SET_MAX)
		return names[cmd - BASE];
	snprintf(buf, sizeof(buf), "set%d", cmd);
	return buf;
}

static const char *get_name(int cmd)
{
	static const char *names[] = {
		"GET_VERSION", "GET_INFO", "GET_SERVICES", "GET_SERVICE",
		"GET_DESTS", "GET_DEST", "GET_TIMEOUT", "GET_DAEMON",
	};
	static char buf[16];

	if (cmd >= BASE && cmd <= IP_VS_SO_GET_MAX)
		return names[cmd - BASE];
	snprintf(buf, sizeof(buf), "get%d", cmd);
	return buf;
}

struct svcdest {
	struct ip_vs_service_user s;
	struct ip_vs_dest_user d;
};

/* The argument length the C implementation requires (SET: exactly). */
static int set_len(int cmd)
{
	switch (cmd) {
	case IP_VS_SO_SET_ADD:
	case IP_VS_SO_SET_EDIT:
	case IP_VS_SO_SET_DEL:
	case IP_VS_SO_SET_ZERO:
		return sizeof(struct ip_vs_service_user);
	case IP_VS_SO_SET_ADDDEST:
	case IP_VS_SO_SET_DELDEST:
	case IP_VS_SO_SET_EDITDEST:
		return sizeof(struct svcdest);
	case IP_VS_SO_SET_TIMEOUT:
		return sizeof(struct ip_vs_timeout_user);
	case IP_VS_SO_SET_STARTDAEMON:
	case IP_VS_SO_SET_STOPDAEMON:
		return sizeof(struct ip_vs_daemon_user);
	default:
		return 0;
	}
}

/* GET: the minimum length. */
static int get_len(int cmd)
{
	switch (cmd) {
	case IP_VS_SO_GET_VERSION:
		return 64;
	case IP_VS_SO_GET_INFO:
		return sizeof(struct ip_vs_getinfo);
	case IP_VS_SO_GET_SERVICES:
		return sizeof(struct ip_vs_get_services);
	case IP_VS_SO_GET_SERVICE:
		return sizeof(struct ip_vs_service_entry);
	case IP_VS_SO_GET_DESTS:
		return sizeof(struct ip_vs_get_dests);
	case IP_VS_SO_GET_TIMEOUT:
		return sizeof(struct ip_vs_timeout_user);
	case IP_VS_SO_GET_DAEMON:
		return 2 * sizeof(struct ip_vs_daemon_user);
	default:
		return 0;
	}
}

static int do_set(const char *what, int cmd, const void *arg, unsigned int len)
{
	int r = setsockopt(fd, IPPROTO_IP, cmd, arg, len);
	int e = r < 0 ? errno : 0;

	printf("%s set %s %s len=%u -> %d %s\n", tag, set_name(cmd), what, len,
	       r, r < 0 ? errname(e) : "OK");
	return r < 0 ? -e : r;
}

/* Sort GET_SERVICES entries so that the hash does not depend on order. */
static int cmp_entry(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(struct ip_vs_service_entry));
}

static int do_get(const char *what, int cmd, void *buf, socklen_t len,
		  int null_buf, int null_len)
{
	socklen_t l = len;
	int r = getsockopt(fd, IPPROTO_IP, cmd, null_buf ? NULL : buf,
			   null_len ? NULL : &l);
	int e = r < 0 ? errno : 0;

	printf("%s get %s %s len=%u -> %d %s", tag, get_name(cmd), what,
	       (unsigned int)len, r, r < 0 ? errname(e) : "OK");
	if (r == 0 && !null_buf) {
		size_t n = l <= len ? l : len;

		if (cmd == IP_VS_SO_GET_SERVICES &&
		    n >= sizeof(struct ip_vs_get_services)) {
			struct ip_vs_get_services *g = buf;
			size_t cnt = (n - sizeof(*g)) / sizeof(g->entrytable[0]);

			qsort(g->entrytable, cnt, sizeof(g->entrytable[0]), cmp_entry);
		}
		printf(" outlen=%u hash=%08x", (unsigned int)l, fnv1a(buf, n));
		if (cmd == IP_VS_SO_GET_VERSION)
			printf(" \"%.*s\"", (int)strnlen(buf, n), (char *)buf);
	}
	printf("\n");
	return r < 0 ? -e : r;
}

static void svc(struct ip_vs_service_user *s, int proto, const char *addr,
		int port, int fwmark, const char *sched)
{
	memset(s, 0, sizeof(*s));
	s->protocol = proto;
	s->addr = inet_addr(addr);
	s->port = htons(port);
	s->fwmark = fwmark;
	snprintf(s->sched_name, sizeof(s->sched_name), "%s", sched);
	s->netmask = 0xffffffff;
}

static void dest(struct ip_vs_dest_user *d, const char *addr, int port,
		 unsigned int fwd, int weight)
{
	memset(d, 0, sizeof(*d));
	d->addr = inet_addr(addr);
	d->port = htons(port);
	d->conn_flags = fwd;
	d->weight = weight;
}

static void valid_sequence(void)
{
	char buf[8192];
	struct svcdest sd;
	struct ip_vs_timeout_user t;
	struct ip_vs_daemon_user dm;
	struct ip_vs_getinfo info;

	memset(buf, 0, sizeof(buf));
	do_get("valid", IP_VS_SO_GET_VERSION, buf, 64, 0, 0);
	memset(buf, 0, sizeof(buf));
	do_get("valid", IP_VS_SO_GET_INFO, buf, sizeof(info), 0, 0);

	svc(&sd.s, IPPROTO_TCP, "10.9.0.1", 80, 0, "rr");
	do_set("valid-tcp", IP_VS_SO_SET_ADD, &sd.s, sizeof(sd.s));
	do_set("duplicate", IP_VS_SO_SET_ADD, &sd.s, sizeof(sd.s));
	svc(&sd.s, IPPROTO_UDP, "10.9.0.1", 53, 0, "rr");
	do_set("valid-udp", IP_VS_SO_SET_ADD, &sd.s, sizeof(sd.s));
	svc(&sd.s, IPPROTO_TCP, "10.9.0.2", 443, 0, "rr");
	sd.s.flags = IP_VS_SVC_F_PERSISTENT;
	sd.s.timeout = 300;
	do_set("persistent", IP_VS_SO_SET_ADD, &sd.s, sizeof(sd.s));
	svc(&sd.s, IPPROTO_TCP, "0.0.0.0", 0, 7, "rr");
	do_set("fwmark", IP_VS_SO_SET_ADD, &sd.s, sizeof(sd.s));
	/* The mark is taken: EEXIST under another protocol too. */
	svc(&sd.s, IPPROTO_UDP, "0.0.0.0", 0, 7, "rr");
	do_set("fwmark-other-proto", IP_VS_SO_SET_ADD, &sd.s, sizeof(sd.s));
	do_set("fwmark-other-proto", IP_VS_SO_SET_EDIT, &sd.s, sizeof(sd.s));
	do_set("fwmark-other-proto", IP_VS_SO_SET_ZERO, &sd.s, sizeof(sd.s));
	svc(&sd.s, IPPROTO_TCP, "10.9.0.3", 80, 0, "nosuchsched");
	do_set("unknown-sched", IP_VS_SO_SET_ADD, &sd.s, sizeof(sd.s));
	svc(&sd.s, IPPROTO_TCP, "10.9.0.3", 80, 0, "rr");
	memset(sd.s.sched_name, 'r', sizeof(sd.s.sched_name));
	do_set("unterminated-sched", IP_VS_SO_SET_ADD, &sd.s, sizeof(sd.s));
	svc(&sd.s, 99, "10.9.0.3", 80, 0, "rr");
	do_set("bad-proto", IP_VS_SO_SET_ADD, &sd.s, sizeof(sd.s));

	svc(&sd.s, IPPROTO_TCP, "10.9.0.1", 80, 0, "rr");
	dest(&sd.d, "10.9.1.1", 80, IP_VS_CONN_F_MASQ, 1);
	do_set("masq", IP_VS_SO_SET_ADDDEST, &sd, sizeof(sd));
	do_set("duplicate", IP_VS_SO_SET_ADDDEST, &sd, sizeof(sd));
	dest(&sd.d, "10.9.1.2", 80, IP_VS_CONN_F_DROUTE, 5);
	do_set("droute", IP_VS_SO_SET_ADDDEST, &sd, sizeof(sd));
	dest(&sd.d, "10.9.1.3", 80, IP_VS_CONN_F_TUNNEL, 2);
	do_set("tunnel", IP_VS_SO_SET_ADDDEST, &sd, sizeof(sd));
	dest(&sd.d, "10.9.1.4", 80, IP_VS_CONN_F_MASQ, -1);
	do_set("negative-weight", IP_VS_SO_SET_ADDDEST, &sd, sizeof(sd));
	dest(&sd.d, "10.9.1.4", 80, IP_VS_CONN_F_MASQ, 1);
	sd.d.u_threshold = 10;
	sd.d.l_threshold = 20;
	do_set("l>u-threshold", IP_VS_SO_SET_ADDDEST, &sd, sizeof(sd));
	svc(&sd.s, IPPROTO_TCP, "10.9.0.99", 80, 0, "rr");
	dest(&sd.d, "10.9.1.1", 80, IP_VS_CONN_F_MASQ, 1);
	do_set("no-service", IP_VS_SO_SET_ADDDEST, &sd, sizeof(sd));

	svc(&sd.s, IPPROTO_TCP, "10.9.0.1", 80, 0, "rr");
	do_set("valid", IP_VS_SO_SET_EDIT, &sd.s, sizeof(sd.s));
	svc(&sd.s, IPPROTO_TCP, "10.9.0.1", 80, 0, "nosuchsched");
	do_set("unknown-sched", IP_VS_SO_SET_EDIT, &sd.s, sizeof(sd.s));
	svc(&sd.s, IPPROTO_UDP, "10.9.0.1", 80, 0, "rr");
	do_set("no-service", IP_VS_SO_SET_EDIT, &sd.s, sizeof(sd.s));
	svc(&sd.s, IPPROTO_TCP, "10.9.0.1", 80, 0, "rr");
	dest(&sd.d, "10.9.1.1", 80, IP_VS_CONN_F_MASQ, 3);
	do_set("valid", IP_VS_SO_SET_EDITDEST, &sd, sizeof(sd));
	dest(&sd.d, "10.9.1.9", 80, IP_VS_CONN_F_MASQ, 3);
	do_set("no-dest", IP_VS_SO_SET_EDITDEST, &sd, sizeof(sd));

	/* Listing. */
	memset(buf, 0, sizeof(buf));
	svc((struct ip_vs_service_user *)&sd.s, IPPROTO_TCP, "10.9.0.1", 80, 0, "");
	{
		struct ip_vs_service_entry *e = (void *)buf;

		e->protocol = IPPROTO_TCP;
		e->addr = inet_addr("10.9.0.1");
		e->port = htons(80);
		do_get("valid", IP_VS_SO_GET_SERVICE, buf, sizeof(*e), 0, 0);
		memset(buf, 0, sizeof(buf));
		e->protocol = IPPROTO_TCP;
		e->addr = inet_addr("10.9.0.77");
		e->port = htons(80);
		do_get("no-service", IP_VS_SO_GET_SERVICE, buf, sizeof(*e), 0, 0);
		memset(buf, 0, sizeof(buf));
		e->fwmark = 7;
		do_get("fwmark", IP_VS_SO_GET_SERVICE, buf, sizeof(*e), 0, 0);
	}
	memset(buf, 0, sizeof(buf));
	if (do_get("for-count", IP_VS_SO_GET_INFO, buf, sizeof(info), 0, 0) == 0) {
		struct ip_vs_get_services *g = (void *)buf;
		unsigned int n = ((struct ip_vs_getinfo *)buf)->num_services;
		size_t size = sizeof(*g) + n * sizeof(g->entrytable[0]);

		if (size <= sizeof(buf)) {
			memset(buf, 0, sizeof(buf));
			g->num_services = n;
			do_get("valid", IP_VS_SO_GET_SERVICES, buf, size, 0, 0);
			memset(buf, 0, sizeof(buf));
			g->num_services = n + 1;
			do_get("count+1", IP_VS_SO_GET_SERVICES, buf, size, 0, 0);
			memset(buf, 0, sizeof(buf));
			g->num_services = n ? n - 1 : 0;
			do_get("len-too-big", IP_VS_SO_GET_SERVICES, buf, size + 1, 0, 0);
		}
	}
	{
		struct ip_vs_get_dests *g = (void *)buf;
		size_t size;

		memset(buf, 0, sizeof(buf));
		g->protocol = IPPROTO_TCP;
		g->addr = inet_addr("10.9.0.1");
		g->port = htons(80);
		g->num_dests = 3;
		size = sizeof(*g) + 3 * sizeof(g->entrytable[0]);
		do_get("valid", IP_VS_SO_GET_DESTS, buf, size, 0, 0);
		memset(buf, 0, sizeof(buf));
		g->protocol = IPPROTO_TCP;
		g->addr = inet_addr("10.9.0.1");
		g->port = htons(80);
		g->num_dests = 1;
		size = sizeof(*g) + 1 * sizeof(g->entrytable[0]);
		do_get("fewer", IP_VS_SO_GET_DESTS, buf, size, 0, 0);
		memset(buf, 0, sizeof(buf));
		g->protocol = IPPROTO_TCP;
		g->addr = inet_addr("10.9.0.77");
		g->port = htons(80);
		g->num_dests = 0;
		do_get("no-service", IP_VS_SO_GET_DESTS, buf, sizeof(*g), 0, 0);
	}

	memset(&t, 0, sizeof(t));
	t.tcp_timeout = 600;
	t.tcp_fin_timeout = 60;
	t.udp_timeout = 200;
	do_set("valid", IP_VS_SO_SET_TIMEOUT, &t, sizeof(t));
	memset(buf, 0, sizeof(buf));
	do_get("valid", IP_VS_SO_GET_TIMEOUT, buf, sizeof(t), 0, 0);
	memset(&t, 0, sizeof(t));
	do_set("zero-keeps", IP_VS_SO_SET_TIMEOUT, &t, sizeof(t));
	memset(buf, 0, sizeof(buf));
	do_get("after-zero", IP_VS_SO_GET_TIMEOUT, buf, sizeof(t), 0, 0);

	svc(&sd.s, IPPROTO_TCP, "10.9.0.1", 80, 0, "rr");
	do_set("service", IP_VS_SO_SET_ZERO, &sd.s, sizeof(sd.s));
	memset(&sd.s, 0, sizeof(sd.s));
	do_set("all", IP_VS_SO_SET_ZERO, &sd.s, sizeof(sd.s));
	svc(&sd.s, IPPROTO_TCP, "10.9.0.77", 80, 0, "rr");
	do_set("no-service", IP_VS_SO_SET_ZERO, &sd.s, sizeof(sd.s));

	memset(buf, 0, sizeof(buf));
	do_get("valid", IP_VS_SO_GET_DAEMON, buf, 2 * sizeof(dm), 0, 0);
	memset(&dm, 0, sizeof(dm));
	dm.state = IP_VS_STATE_MASTER;
	do_set("not-running", IP_VS_SO_SET_STOPDAEMON, &dm, sizeof(dm));
	snprintf(dm.mcast_ifn, sizeof(dm.mcast_ifn), "nosuchdev0");
	do_set("no-device", IP_VS_SO_SET_STARTDAEMON, &dm, sizeof(dm));
	memset(&dm, 0, sizeof(dm));
	do_set("empty-ifname", IP_VS_SO_SET_STARTDAEMON, &dm, sizeof(dm));

	svc(&sd.s, IPPROTO_TCP, "10.9.0.1", 80, 0, "rr");
	dest(&sd.d, "10.9.1.2", 80, 0, 0);
	do_set("valid", IP_VS_SO_SET_DELDEST, &sd, sizeof(sd));
	do_set("again", IP_VS_SO_SET_DELDEST, &sd, sizeof(sd));
	svc(&sd.s, IPPROTO_UDP, "10.9.0.1", 53, 0, "rr");
	do_set("valid", IP_VS_SO_SET_DEL, &sd.s, sizeof(sd.s));
	do_set("again", IP_VS_SO_SET_DEL, &sd.s, sizeof(sd.s));
	svc(&sd.s, IPPROTO_UDP, "0.0.0.0", 0, 7, "rr");
	do_set("fwmark-other-proto", IP_VS_SO_SET_DEL, &sd.s, sizeof(sd.s));
	svc(&sd.s, IPPROTO_TCP, "0.0.0.0", 0, 7, "rr");
	do_set("fwmark", IP_VS_SO_SET_DEL, &sd.s, sizeof(sd.s));
	do_set("valid", IP_VS_SO_SET_FLUSH, NULL, 0);
	memset(buf, 0, sizeof(buf));
	do_get("after-flush", IP_VS_SO_GET_INFO, buf, sizeof(info), 0, 0);
}

/* Has lens[i] been seen before it (or is it negative)? */
static int skip_len(const int *lens, size_t i)
{
	if (lens[i] < 0)
		return 1;
	for (size_t j = 0; j < i; j++)
		if (lens[j] == lens[i])
			return 1;
	return 0;
}

static void length_matrix(void)
{
	static unsigned char buf[8192];
	int cmd;

	/* SET: every id around the registered range. */
	for (cmd = BASE - 2; cmd <= IP_VS_SO_SET_MAX + 3; cmd++) {
		int exp = set_len(cmd);
		int lens[] = { 0, 1, exp - 1, exp, exp + 1, 255, 256, 4096 };

		for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
			if (skip_len(lens, i))
				continue;
			memset(buf, 0, sizeof(buf));
			do_set("zeros", cmd, buf, lens[i]);
		}
		if (exp > 0)
			do_set("null", cmd, NULL, exp);
		/* A pointer to unmapped memory. */
		do_set("badptr", cmd, (void *)16, exp ? exp : 4);
	}
	/* GET: likewise. */
	for (cmd = BASE - 2; cmd <= IP_VS_SO_GET_MAX + 3; cmd++) {
		int exp = get_len(cmd);
		int lens[] = { 0, 1, exp - 1, exp, exp + 1, 255, 256, 4096 };

		for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
			if (skip_len(lens, i))
				continue;
			memset(buf, 0, sizeof(buf));
			do_get("zeros", cmd, buf, lens[i], 0, 0);
		}
		do_get("null-buf", cmd, buf, exp ? exp : 4, 1, 0);
		do_get("null-len", cmd, buf, exp ? exp : 4, 0, 1);
		memset(buf, 0, sizeof(buf));
		do_get("negative-len", cmd, buf, (socklen_t)-1, 0, 0);
	}
}

static void garbage(void)
{
	static unsigned char buf[8192];
	char what[32];
	int cmd, i;

	/* Random bytes of the right length. */
	for (cmd = BASE; cmd <= IP_VS_SO_SET_MAX; cmd++) {
		int exp = set_len(cmd);

		if (!exp)
			continue;
		for (i = 0; i < 8; i++) {
			fill_random(buf, exp);
			snprintf(what, sizeof(what), "random%d", i);
			do_set(what, cmd, buf, exp);
		}
	}
	/*
	 * Random services and destinations that pass the protocol check and
	 * carry a known scheduler, to get past the first checks.
	 */
	for (i = 0; i < 24; i++) {
		struct svcdest sd;
		static const int cmds[] = {
			IP_VS_SO_SET_ADD, IP_VS_SO_SET_EDIT, IP_VS_SO_SET_ADDDEST,
			IP_VS_SO_SET_EDITDEST, IP_VS_SO_SET_DELDEST,
			IP_VS_SO_SET_ZERO, IP_VS_SO_SET_DEL,
		};

		fill_random(&sd, sizeof(sd));
		sd.s.protocol = (i & 1) ? IPPROTO_UDP : IPPROTO_TCP;
		/* Few addresses, so that later commands find earlier services. */
		sd.s.addr = htonl(0x0a0a0000 | (rng() & 3));
		sd.s.port = htons(80 + (rng() & 1));
		if (rng() & 3)
			sd.s.fwmark = 0;
		else
			sd.s.fwmark &= 3;
		snprintf(sd.s.sched_name, sizeof(sd.s.sched_name), "rr");
		sd.d.addr = htonl(0x0a0b0000 | (rng() & 3));
		for (size_t c = 0; c < sizeof(cmds) / sizeof(cmds[0]); c++) {
			int len = set_len(cmds[c]);

			snprintf(what, sizeof(what), "shaped%d", i);
			do_set(what, cmds[c], &sd, len);
		}
	}
	/* Random GET arguments of the minimum length. */
	for (cmd = BASE; cmd <= IP_VS_SO_GET_MAX; cmd++) {
		int exp = get_len(cmd);

		for (i = 0; i < 4; i++) {
			fill_random(buf, exp);
			snprintf(what, sizeof(what), "random%d", i);
			do_get(what, cmd, buf, exp, 0, 0);
		}
	}
	{
		struct ip_vs_get_services *g = (void *)buf;

		memset(buf, 0, sizeof(buf));
		g->num_services = 0x7fffffff;
		do_get("huge-count", IP_VS_SO_GET_SERVICES, buf, sizeof(*g), 0, 0);
	}
	{
		struct ip_vs_get_dests *g = (void *)buf;

		memset(buf, 0, sizeof(buf));
		g->num_dests = 0xffffffff;
		do_get("huge-count", IP_VS_SO_GET_DESTS, buf, sizeof(*g), 0, 0);
	}
	/* Whatever the garbage created goes away. */
	do_set("cleanup", IP_VS_SO_SET_FLUSH, NULL, 0);
}

int main(int argc, char **argv)
{
	const char *sock = "raw";

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--sock") && i + 1 < argc)
			sock = argv[++i];
		else if (!strcmp(argv[i], "--tag") && i + 1 < argc)
			tag = argv[++i];
		else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
			rng_state = strtoull(argv[++i], NULL, 0) | 1;
		else {
			fprintf(stderr, "usage: %s [--sock raw|udp] [--tag NAME] [--seed N]\n",
				argv[0]);
			return 2;
		}
	}
	if (!strcmp(sock, "raw"))
		fd = socket(AF_INET, SOCK_RAW, IPPROTO_RAW);
	else
		fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0) {
		printf("%s socket %s -> %s\n", tag, sock, errname(errno));
		return 1;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	valid_sequence();
	length_matrix();
	garbage();
	return 0;
}
