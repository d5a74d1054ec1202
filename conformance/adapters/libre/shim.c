/*
 * ice-conformance stdio shim for baresip's libre ICE (the icem API), adapter contract 1.0
 * (docs/adapter-contract.md). Built by conformance/adapters/libre/__init__.py against the system libre.
 *
 * Theory of operation: one JSON-RPC 2.0 object per line on stdin (parsed with libre's own JSON decoder),
 * responses and notifications on stdout, logs on stderr; libre's main loop (re_main) polls stdin and the
 * agents' UDP sockets. One agent = one icem with one component and one UDP socket bound to the first IPv4
 * loopback address of `interfaces` (libre's ICE is UDP only; the shim gathers that one host candidate itself).
 * `set_remote` feeds ice-ufrag/ice-pwd/candidates through icem_sdp_decode (ice-lite through ice_sdp_decode),
 * `connect` starts the checks (icem_conncheck_start); the check handler reports the selected pair from
 * icem_selected_lcand/rcand, mapped back to the strings the harness sent (ice_cand_encode prints "???" as the
 * transport). Non-STUN datagrams on the socket are `data`; `send` writes to the selected remote.
 * Not wired (-32601 or -32602): trickle, restart, consent, STUN/TURN servers, more than one component, IPv6.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <re.h>

#ifndef SHIM_LIBRE_VERSION
#define SHIM_LIBRE_VERSION "unknown"
#endif
#ifndef SHIM_CAPABILITIES_JSON
#define SHIM_CAPABILITIES_JSON "[]"
#endif

#define MAX_AGENTS 256
#define MAX_RCANDS 1024

struct agent {
	char id[16];
	bool used, closed, connected, remote_set, started;
	enum ice_role role;
	struct icem *icem;
	struct udp_sock *us;
	struct sa laddr;
	char lufrag[64], lpwd[128];
	char lcand[256];
	char *rcands[MAX_RCANDS];
	unsigned n_rcands;
	char last_pair[600];
};

static struct agent agents[MAX_AGENTS];
static unsigned next_agent = 1;
static char inbuf[1 << 20];
static size_t inlen;

/* ------------------------------------------------------------------ output */

static void out_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static void out_id(const struct odict_entry *id)
{
	if (!id || id->type == ODICT_NULL)
		fputs("null", stdout);
	else if (id->type == ODICT_INT)
		printf("%lld", (long long)id->u.integer);
	else if (id->type == ODICT_STRING)
		out_str(stdout, id->u.str);
	else
		fputs("null", stdout);
}

static void reply_raw(const struct odict_entry *id, const char *result_json)
{
	if (!id)
		return;
	fputs("{\"jsonrpc\":\"2.0\",\"id\":", stdout);
	out_id(id);
	printf(",\"result\":%s}\n", result_json);
	fflush(stdout);
}

static void reply_error(const struct odict_entry *id, int code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fputs("{\"jsonrpc\":\"2.0\",\"id\":", stdout);
	out_id(id);
	printf(",\"error\":{\"code\":%d,\"message\":", code);
	out_str(stdout, msg);
	fputs("}}\n", stdout);
	fflush(stdout);
}

static void notify_state(struct agent *a, const char *state)
{
	fputs("{\"jsonrpc\":\"2.0\",\"method\":\"state\",\"params\":{\"agent\":", stdout);
	out_str(stdout, a->id);
	fputs(",\"state\":", stdout);
	out_str(stdout, state);
	fputs("}}\n", stdout);
	fflush(stdout);
}

/* ------------------------------------------------------------------ candidates */

static bool is_loopback(const struct sa *sa)
{
	if (sa_af(sa) == AF_INET)
		return (ntohl(sa->u.in.sin_addr.s_addr) >> 24) == 127;
	return false;
}

/* "candidate:<value>" -> fields; false when it does not parse */
static bool cand_addr(const char *value, char *transport, size_t tlen, struct sa *addr, char *type, size_t ylen)
{
	char found[64], tr[16], ip[64], typ[16];
	unsigned comp, port;
	unsigned long prio;
	const char *v = value;
	if (!strncmp(v, "a=", 2))
		v += 2;
	if (!strncmp(v, "candidate:", 10))
		v += 10;
	if (sscanf(v, "%63s %u %15s %lu %63s %u typ %15s", found, &comp, tr, &prio, ip, &port, typ) != 7)
		return false;
	if (transport)
		snprintf(transport, tlen, "%s", tr);
	if (type)
		snprintf(type, ylen, "%s", typ);
	if (sa_set_str(addr, ip, (uint16_t)port))
		sa_init(addr, AF_UNSPEC); /* an FQDN or mDNS name: parses, but libre cannot use it */
	return true;
}

static void encode_cand(const struct ice_cand *c, char *buf, size_t len)
{
	char tmp[256];
	char *q;
	re_snprintf(tmp, sizeof(tmp), "%H", ice_cand_encode, c);
	q = strstr(tmp, " ??? ");
	if (q) {
		/* libre is UDP only: its encoder has no name for the transport */
		*q = '\0';
		snprintf(buf, len, "candidate:%s udp %s", tmp, q + 5);
	}
	else {
		snprintf(buf, len, "candidate:%s", tmp);
	}
}

static void remote_string(struct agent *a, const struct ice_cand *rc, char *buf, size_t len)
{
	const struct sa *addr = icem_lcand_addr(rc);
	for (unsigned i = 0; i < a->n_rcands; i++) {
		struct sa sa;
		char tr[16];
		if (cand_addr(a->rcands[i], tr, sizeof(tr), &sa, NULL, 0) && sa_cmp(&sa, addr, SA_ALL)) {
			snprintf(buf, len, "%s", a->rcands[i]);
			return;
		}
	}
	encode_cand(rc, buf, len);
}

/* ------------------------------------------------------------------ agents */

static struct agent *get_agent(const struct odict *p, const struct odict_entry *id)
{
	const char *name = odict_string(p, "agent");
	for (unsigned i = 0; name && i < MAX_AGENTS; i++) {
		if (agents[i].used && !strcmp(agents[i].id, name))
			return &agents[i];
	}
	reply_error(id, -32001, "unknown agent %s", name ? name : "(none)");
	return NULL;
}

static void report_selected(struct agent *a)
{
	const struct ice_cand *lc = icem_selected_lcand(a->icem, 1);
	const struct ice_cand *rc = icem_selected_rcand(a->icem, 1);
	char l[256], r[256], key[600];
	if (!lc || !rc)
		return;
	encode_cand(lc, l, sizeof(l));
	if (sa_cmp(icem_lcand_addr(lc), &a->laddr, SA_ALL))
		snprintf(l, sizeof(l), "%s", a->lcand);
	remote_string(a, rc, r, sizeof(r));
	snprintf(key, sizeof(key), "%s|%s", l, r);
	if (!strcmp(key, a->last_pair))
		return;
	snprintf(a->last_pair, sizeof(a->last_pair), "%s", key);
	fputs("{\"jsonrpc\":\"2.0\",\"method\":\"selected_pair\",\"params\":{\"agent\":", stdout);
	out_str(stdout, a->id);
	fputs(",\"component\":1,\"local\":", stdout);
	out_str(stdout, l);
	fputs(",\"remote\":", stdout);
	out_str(stdout, r);
	fputs("}}\n", stdout);
	fflush(stdout);
}

static void connchk_handler(int err, bool update, void *arg)
{
	struct agent *a = arg;
	fprintf(stderr, "[libre-shim] %s: check handler err=%d (%s) update=%d\n", a->id, err, err ? strerror(err) : "ok",
		update);
	if (a->closed)
		return;
	if (err) {
		notify_state(a, "failed");
		return;
	}
	report_selected(a);
	if (!a->connected) {
		a->connected = true;
		notify_state(a, "connected");
	}
}

static void udp_recv(const struct sa *src, struct mbuf *mb, void *arg)
{
	struct agent *a = arg;
	size_t n = mbuf_get_left(mb);
	size_t olen = 4 * ((n + 2) / 3) + 4;
	char *b64;
	(void)src;
	if (a->closed)
		return;
	b64 = malloc(olen + 1);
	if (!b64)
		return;
	if (base64_encode(mbuf_buf(mb), n, b64, &olen) == 0) {
		b64[olen] = '\0';
		fputs("{\"jsonrpc\":\"2.0\",\"method\":\"data\",\"params\":{\"agent\":", stdout);
		out_str(stdout, a->id);
		fputs(",\"component\":1,\"data\":", stdout);
		out_str(stdout, b64);
		fputs("}}\n", stdout);
		fflush(stdout);
	}
	free(b64);
}

static bool ice_chars(const char *s, size_t min, size_t max)
{
	size_t n = strlen(s);
	if (n < min || n > max)
		return false;
	for (; *s; s++) {
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '+' ||
		      *s == '/'))
			return false;
	}
	return true;
}

static void random_chars(char *buf, size_t n)
{
	static const char set[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/";
	for (size_t i = 0; i < n; i++)
		buf[i] = set[rand_u32() % 64];
	buf[n] = '\0';
}

static void agent_free(struct agent *a)
{
	a->closed = true;
	a->icem = mem_deref(a->icem);
	a->us = mem_deref(a->us);
	for (unsigned i = 0; i < a->n_rcands; i++)
		free(a->rcands[i]);
	a->n_rcands = 0;
}

static void do_create(const struct odict *p, const struct odict_entry *id)
{
	const char *role = odict_string(p, "role");
	const char *ufrag = odict_string(p, "ufrag");
	const char *pwd = odict_string(p, "pwd");
	const struct odict_entry *ifs = odict_lookup(p, "interfaces");
	const struct odict_entry *e;
	uint64_t components = 1;
	bool relay_only = false, trickle = false;
	struct agent *a = NULL;
	const char *iface = NULL;
	int err;

	if (!role || (strcmp(role, "controlling") && strcmp(role, "controlled"))) {
		reply_error(id, -32602, "bad role");
		return;
	}
	odict_get_number(p, &components, "components");
	if (components != 1) {
		reply_error(id, -32602, "the libre shim drives one component");
		return;
	}
	odict_get_boolean(p, &trickle, "trickle");
	if (trickle) {
		reply_error(id, -32602, "libre's icem has no trickle API");
		return;
	}
	odict_get_boolean(p, &relay_only, "relay_only");
	e = odict_lookup(p, "turn_servers");
	if (relay_only || (e && e->type == ODICT_ARRAY && e->u.odict->lst.head)) {
		reply_error(id, -32602, "the libre shim does not wire libre's TURN client");
		return;
	}
	e = odict_lookup(p, "stun_servers");
	if (e && e->type == ODICT_ARRAY && e->u.odict->lst.head)
		fprintf(stderr, "[libre-shim] ignoring stun_servers: the shim gathers host candidates only\n");
	if (ufrag && !ice_chars(ufrag, 4, 256)) {
		reply_error(id, -32602, "ufrag outside the ice-char grammar (libre needs at least 4)");
		return;
	}
	if (pwd && !ice_chars(pwd, 22, 256)) {
		reply_error(id, -32602, "pwd outside the ice-char grammar (libre needs at least 22)");
		return;
	}
	if (ifs && ifs->type == ODICT_ARRAY) {
		for (struct le *le = ifs->u.odict->lst.head; le; le = le->next) {
			const struct odict_entry *ie = le->data;
			struct sa sa;
			if (ie->type != ODICT_STRING || sa_set_str(&sa, ie->u.str, 0) || !is_loopback(&sa)) {
				if (ie->type == ODICT_STRING && !sa_set_str(&sa, ie->u.str, 0) && sa_af(&sa) == AF_INET6)
					continue; /* no IPv6 in this shim */
				reply_error(id, -32602, "interfaces must be loopback address literals");
				return;
			}
			if (!iface)
				iface = ie->u.str;
			else
				fprintf(stderr, "[libre-shim] one socket per component: ignoring interface %s\n", ie->u.str);
		}
	}
	if (!iface)
		iface = "127.0.0.1";
	for (unsigned i = 0; i < MAX_AGENTS; i++) {
		if (!agents[i].used) {
			a = &agents[i];
			break;
		}
	}
	if (!a) {
		reply_error(id, -32000, "too many agents");
		return;
	}
	memset(a, 0, sizeof(*a));
	snprintf(a->id, sizeof(a->id), "a%u", next_agent++);
	a->role = strcmp(role, "controlling") ? ICE_ROLE_CONTROLLED : ICE_ROLE_CONTROLLING;
	if (ufrag)
		snprintf(a->lufrag, sizeof(a->lufrag), "%s", ufrag);
	else
		random_chars(a->lufrag, 8);
	if (pwd)
		snprintf(a->lpwd, sizeof(a->lpwd), "%s", pwd);
	else
		random_chars(a->lpwd, 24);
	sa_set_str(&a->laddr, iface, 0);
	err = udp_listen(&a->us, &a->laddr, udp_recv, a);
	if (!err)
		err = udp_local_get(a->us, &a->laddr);
	if (!err)
		err = icem_alloc(&a->icem, ICE_MODE_FULL, a->role, IPPROTO_UDP, 0, rand_u64() | 1, a->lufrag, a->lpwd,
				 connchk_handler, a);
	if (!err) {
		icem_set_name(a->icem, a->id);
		err = icem_comp_add(a->icem, 1, a->us);
	}
	if (!err)
		err = icem_cand_add(a->icem, 1, 65535, "lo", &a->laddr);
	if (err) {
		agent_free(a);
		reply_error(id, -32000, "libre refused the agent: %s", strerror(err));
		return;
	}
	a->used = true;
	{
		struct le *le = list_head(icem_lcandl(a->icem));
		if (le)
			encode_cand(le->data, a->lcand, sizeof(a->lcand));
	}
	char res[64];
	snprintf(res, sizeof(res), "{\"agent\":\"%s\"}", a->id);
	reply_raw(id, res);
	notify_state(a, "new");
}

static void do_gather(struct agent *a, const struct odict_entry *id)
{
	fputs("{\"jsonrpc\":\"2.0\",\"id\":", stdout);
	out_id(id);
	fputs(",\"result\":{\"ufrag\":", stdout);
	out_str(stdout, a->lufrag);
	fputs(",\"pwd\":", stdout);
	out_str(stdout, a->lpwd);
	fputs(",\"candidates\":[", stdout);
	out_str(stdout, a->lcand);
	fputs("]}}\n", stdout);
	fflush(stdout);
}

/* 0 when added or skipped, else an errno */
static int add_rcand(struct agent *a, const char *value)
{
	struct sa sa;
	char tr[16], typ[16];
	const char *v = value;
	int err;
	if (!cand_addr(value, tr, sizeof(tr), &sa, typ, sizeof(typ)))
		return EINVAL;
	if (strcasecmp(tr, "udp")) {
		fprintf(stderr, "[libre-shim] %s: skipping a %s candidate (libre's ICE is UDP only): %s\n", a->id, tr, value);
		return 0;
	}
	if (!sa_isset(&sa, SA_ADDR)) {
		fprintf(stderr, "[libre-shim] %s: skipping a candidate without an IP address (libre resolves no names): %s\n",
			a->id, value);
		return 0;
	}
	if (!is_loopback(&sa)) {
		fprintf(stderr, "[libre-shim] %s: skipping a non-loopback (or IPv6) candidate: %s\n", a->id, value);
		return 0;
	}
	if (a->n_rcands >= MAX_RCANDS)
		return E2BIG;
	if (!strncmp(v, "candidate:", 10))
		v += 10;
	err = icem_sdp_decode(a->icem, "candidate", v);
	if (err)
		return err;
	{
		char *copy = malloc(strlen(v) + 11);
		if (!copy)
			return ENOMEM;
		sprintf(copy, "candidate:%s", v);
		a->rcands[a->n_rcands++] = copy;
	}
	return 0;
}

static void do_set_remote(struct agent *a, const struct odict *p, const struct odict_entry *id)
{
	const char *ufrag = odict_string(p, "ufrag");
	const char *pwd = odict_string(p, "pwd");
	const struct odict_entry *cands = odict_lookup(p, "candidates");
	bool lite = false;
	int err;
	if (!ufrag || !pwd) {
		reply_error(id, -32602, "ufrag and pwd are required");
		return;
	}
	if (a->started) {
		reply_error(id, -32000, "checks already started (ICE restart is not wired)");
		return;
	}
	if (cands && cands->type == ODICT_ARRAY) {
		for (struct le *le = cands->u.odict->lst.head; le; le = le->next) {
			const struct odict_entry *ce = le->data;
			struct sa sa;
			if (ce->type != ODICT_STRING || !cand_addr(ce->u.str, NULL, 0, &sa, NULL, 0)) {
				reply_error(id, -32602, "a candidate does not parse");
				return;
			}
		}
	}
	odict_get_boolean(p, &lite, "lite");
	err = icem_sdp_decode(a->icem, "ice-ufrag", ufrag);
	err |= icem_sdp_decode(a->icem, "ice-pwd", pwd);
	if (lite)
		err |= ice_sdp_decode(a->icem, "ice-lite", NULL);
	if (err) {
		reply_error(id, -32602, "libre refused the remote credentials");
		return;
	}
	if (cands && cands->type == ODICT_ARRAY) {
		for (struct le *le = cands->u.odict->lst.head; le; le = le->next) {
			const struct odict_entry *ce = le->data;
			err = add_rcand(a, ce->u.str);
			if (err) {
				reply_error(id, -32602, "libre refused candidate %s: %s", ce->u.str, strerror(err));
				return;
			}
		}
	}
	a->remote_set = true;
	reply_raw(id, "{}");
}

static void do_connect(struct agent *a, const struct odict_entry *id)
{
	int err;
	if (!a->remote_set) {
		reply_error(id, -32000, "set_remote first");
		return;
	}
	if (a->started) {
		reply_raw(id, "{}");
		return;
	}
	err = icem_conncheck_start(a->icem);
	a->started = true;
	if (err == ENOENT) {
		/* no candidate pair to check (no usable remote candidate): libre cannot run ICE at all */
		fprintf(stderr, "[libre-shim] %s: icem_conncheck_start: no candidate pair; ICE failed\n", a->id);
		reply_raw(id, "{}");
		notify_state(a, "failed");
		return;
	}
	if (err) {
		a->started = false;
		reply_error(id, -32000, "icem_conncheck_start failed: %s", strerror(err));
		return;
	}
	reply_raw(id, "{}");
	notify_state(a, "checking");
}

static void do_send(struct agent *a, const struct odict *p, const struct odict_entry *id)
{
	const char *data = odict_string(p, "data");
	const struct ice_cand *rc;
	struct mbuf *mb;
	size_t olen;
	int err;
	if (!data) {
		reply_error(id, -32602, "data is required");
		return;
	}
	rc = icem_selected_rcand(a->icem, 1);
	if (!a->connected || !rc) {
		reply_error(id, -32000, "no selected pair yet");
		return;
	}
	olen = strlen(data);
	mb = mbuf_alloc(olen + 4);
	if (!mb) {
		reply_error(id, -32603, "out of memory");
		return;
	}
	err = base64_decode(data, strlen(data), mb->buf, &olen);
	if (err) {
		mem_deref(mb);
		reply_error(id, -32602, "data is not base64");
		return;
	}
	mb->end = olen;
	mb->pos = 0;
	err = udp_send(a->us, icem_lcand_addr(rc), mb);
	mem_deref(mb);
	if (err) {
		reply_error(id, -32000, "udp_send failed: %s", strerror(err));
		return;
	}
	reply_raw(id, "{}");
}

static void close_agent(struct agent *a, bool notify)
{
	agent_free(a);
	a->used = false;
	if (notify)
		notify_state(a, "closed");
}

static void handle_line(const char *line, size_t len)
{
	struct odict *msg = NULL;
	const struct odict_entry *id, *pe;
	const struct odict *p = NULL;
	const char *method;
	struct agent *a;
	static struct odict *empty;

	if (json_decode_odict(&msg, 32, line, len, 16)) {
		fputs("{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700,\"message\":\"parse error\"}}\n", stdout);
		fflush(stdout);
		return;
	}
	id = odict_lookup(msg, "id");
	method = odict_string(msg, "method");
	pe = odict_lookup(msg, "params");
	if (pe && pe->type == ODICT_OBJECT)
		p = pe->u.odict;
	if (!p) {
		if (!empty)
			odict_alloc(&empty, 4);
		p = empty;
	}
	if (!method) {
		reply_error(id, -32600, "invalid request");
	}
	else if (!strcmp(method, "initialize")) {
		char res[1024];
		snprintf(res, sizeof(res),
			 "{\"name\":\"libre\",\"version\":\"%s\",\"capabilities\":%s,\"contract\":\"1.0\"}",
			 SHIM_LIBRE_VERSION, SHIM_CAPABILITIES_JSON);
		reply_raw(id, res);
	}
	else if (!strcmp(method, "create_agent")) {
		do_create(p, id);
	}
	else if (!strcmp(method, "shutdown")) {
		for (unsigned i = 0; i < MAX_AGENTS; i++)
			if (agents[i].used)
				close_agent(&agents[i], true);
		reply_raw(id, "{}");
		re_cancel();
	}
	else if (!strcmp(method, "gather") || !strcmp(method, "set_remote") || !strcmp(method, "connect") ||
		 !strcmp(method, "send") || !strcmp(method, "close") || !strcmp(method, "add_remote_candidate")) {
		a = get_agent(p, id);
		if (!a) {
			/* answered */
		}
		else if (!strcmp(method, "gather"))
			do_gather(a, id);
		else if (!strcmp(method, "set_remote"))
			do_set_remote(a, p, id);
		else if (!strcmp(method, "connect"))
			do_connect(a, id);
		else if (!strcmp(method, "send"))
			do_send(a, p, id);
		else if (!strcmp(method, "close")) {
			close_agent(a, true);
			reply_raw(id, "{}");
		}
		else
			reply_error(id, -32601, "libre's icem has no trickle API (add_remote_candidate)");
	}
	else {
		reply_error(id, -32601, "method not found: %s", method);
	}
	mem_deref(msg);
}

static void stdin_handler(int flags, void *arg)
{
	ssize_t n;
	char *nl;
	(void)flags;
	(void)arg;
	n = read(STDIN_FILENO, inbuf + inlen, sizeof(inbuf) - inlen - 1);
	if (n <= 0) {
		for (unsigned i = 0; i < MAX_AGENTS; i++)
			if (agents[i].used)
				close_agent(&agents[i], false);
		fd_close(STDIN_FILENO);
		re_cancel();
		return;
	}
	inlen += (size_t)n;
	while ((nl = memchr(inbuf, '\n', inlen)) != NULL) {
		size_t len = (size_t)(nl - inbuf);
		if (len > 0)
			handle_line(inbuf, len);
		memmove(inbuf, nl + 1, inlen - len - 1);
		inlen -= len + 1;
	}
	if (inlen >= sizeof(inbuf) - 1)
		inlen = 0; /* a line longer than the buffer: dropped */
}

int main(void)
{
	int err = libre_init();
	if (err) {
		fprintf(stderr, "[libre-shim] libre_init failed: %s\n", strerror(err));
		return 1;
	}
	fd_listen(STDIN_FILENO, FD_READ, stdin_handler, NULL);
	fprintf(stderr, "[libre-shim] ready (libre %s)\n", SHIM_LIBRE_VERSION);
	re_main(NULL);
	libre_close();
	return 0;
}
