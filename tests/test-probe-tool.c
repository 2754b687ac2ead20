// SPDX-License-Identifier: MIT
/*
 * The uffd-probe tool, run as a program (its path is in $UFFD_PROBE): the
 * text output names every backend; the --json output is parsed with the
 * small JSON parser below and must say exactly what the library itself
 * reports (uffd_caps_get with the same features); --backend limits the
 * output, and an unknown name or option exits 2; --wp-async lets WP
 * register on a disk file; without free huge pages the hugetlb backends are
 * "unknown" with a reason that says so; with userfaultfd denied by a seccomp
 * filter it exits 1 and still prints a JSON object with an "error" key.
 *
 * The tool's output goes to temporary files and the test waits for it to
 * exit: no timing is involved.
 */
#define _GNU_SOURCE
#include "helpers.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#define NR_COMBOS 7

/* ---- a small JSON parser -------------------------------------------- */

enum jtype { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };

struct jv {
	enum jtype type;
	bool b;
	double num;
	char *str;         /* J_STR */
	size_t n;          /* J_ARR, J_OBJ: number of items */
	struct jv *items;  /* J_ARR, J_OBJ */
	char **keys;       /* J_OBJ */
};

struct jparser {
	const char *p;
	const char *error; /* first error, NULL while all is well */
};

#define JSON_MAX_DEPTH 64

static bool jfail(struct jparser *ps, const char *why)
{
	if (!ps->error)
		ps->error = why;
	return false;
}

static void jskip_ws(struct jparser *ps)
{
	while (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' ||
	       *ps->p == '\r')
		ps->p++;
}

static void *jgrow(void *p, size_t n, size_t size)
{
	void *q = realloc(p, n * size);

	ck_assert_ptr_nonnull(q);
	return q;
}

static void put_utf8(char **buf, size_t *len, unsigned long cp)
{
	char *b = *buf + *len;

	if (cp < 0x80) {
		b[0] = (char)cp;
		*len += 1;
	} else if (cp < 0x800) {
		b[0] = (char)(0xc0 | (cp >> 6));
		b[1] = (char)(0x80 | (cp & 0x3f));
		*len += 2;
	} else if (cp < 0x10000) {
		b[0] = (char)(0xe0 | (cp >> 12));
		b[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		b[2] = (char)(0x80 | (cp & 0x3f));
		*len += 3;
	} else {
		b[0] = (char)(0xf0 | (cp >> 18));
		b[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		b[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		b[3] = (char)(0x80 | (cp & 0x3f));
		*len += 4;
	}
}

static bool jhex4(struct jparser *ps, unsigned long *out)
{
	*out = 0;
	for (int i = 0; i < 4; i++) {
		char c = *ps->p++;

		*out <<= 4;
		if (c >= '0' && c <= '9')
			*out |= (unsigned long)(c - '0');
		else if (c >= 'a' && c <= 'f')
			*out |= (unsigned long)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			*out |= (unsigned long)(c - 'A' + 10);
		else
			return jfail(ps, "bad \\u escape");
	}
	return true;
}

/* After "\u": one code point, joining a surrogate pair. */
static bool junicode(struct jparser *ps, unsigned long *cp)
{
	unsigned long low;

	if (!jhex4(ps, cp))
		return false;
	if (*cp >= 0xdc00 && *cp <= 0xdfff)
		return jfail(ps, "lone low surrogate");
	if (*cp < 0xd800 || *cp > 0xdbff)
		return true;
	if (ps->p[0] != '\\' || ps->p[1] != 'u')
		return jfail(ps, "lone high surrogate");
	ps->p += 2;
	if (!jhex4(ps, &low) || low < 0xdc00 || low > 0xdfff)
		return jfail(ps, "bad surrogate pair");
	*cp = 0x10000 + ((*cp - 0xd800) << 10) + (low - 0xdc00);
	return true;
}

static bool jescape(struct jparser *ps, char **buf, size_t *len)
{
	static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
	const char *e = *ps->p ? strchr(from, *ps->p) : NULL;
	unsigned long cp;

	if (e) {
		(*buf)[(*len)++] = to[e - from];
		ps->p++;
		return true;
	}
	if (*ps->p++ != 'u')
		return jfail(ps, "bad escape");
	if (!junicode(ps, &cp))
		return false;
	put_utf8(buf, len, cp);
	return true;
}

/* At the opening quote; a malloc'd string. */
static bool jstring(struct jparser *ps, char **out)
{
	/* escapes never make the text longer than its source */
	const char *end = ps->p + 1;
	char *buf;
	size_t len = 0;

	while (*end && *end != '"')
		end += (*end == '\\' && end[1]) ? 2 : 1;
	buf = jgrow(NULL, (size_t)(end - ps->p) + 4, 1);
	ps->p++;
	while (*ps->p != '"') {
		unsigned char c = (unsigned char)*ps->p;

		if (!c || c < 0x20) {
			free(buf);
			return jfail(ps, c ? "control character in a string"
					   : "unterminated string");
		}
		if (c != '\\') {
			buf[len++] = *ps->p++;
			continue;
		}
		ps->p++;
		if (!jescape(ps, &buf, &len)) {
			free(buf);
			return false;
		}
	}
	ps->p++;
	buf[len] = '\0';
	*out = buf;
	return true;
}

static bool jdigits(struct jparser *ps)
{
	if (*ps->p < '0' || *ps->p > '9')
		return jfail(ps, "digit expected");
	while (*ps->p >= '0' && *ps->p <= '9')
		ps->p++;
	return true;
}

static bool jnumber(struct jparser *ps, struct jv *v)
{
	const char *start = ps->p;

	if (*ps->p == '-')
		ps->p++;
	if (*ps->p == '0')
		ps->p++;
	else if (!jdigits(ps))
		return false;
	if (*ps->p == '.' && (ps->p++, !jdigits(ps)))
		return false;
	if (*ps->p == 'e' || *ps->p == 'E') {
		ps->p++;
		if (*ps->p == '+' || *ps->p == '-')
			ps->p++;
		if (!jdigits(ps))
			return false;
	}
	v->type = J_NUM;
	v->num = strtod(start, NULL);
	return true;
}

static bool jliteral(struct jparser *ps, struct jv *v)
{
	static const struct { const char *word; enum jtype type; bool b; }
	words[] = { { "true", J_BOOL, true }, { "false", J_BOOL, false },
		    { "null", J_NULL, false } };

	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		size_t len = strlen(words[i].word);

		if (!strncmp(ps->p, words[i].word, len)) {
			ps->p += len;
			v->type = words[i].type;
			v->b = words[i].b;
			return true;
		}
	}
	return jfail(ps, "unexpected character");
}

static bool jvalue(struct jparser *ps, struct jv *v, int depth);

/* Items of an array or object, after its opening bracket. */
static bool jitems(struct jparser *ps, struct jv *v, char close, int depth)
{
	jskip_ws(ps);
	if (*ps->p == close) {
		ps->p++;
		return true;
	}
	for (;;) {
		struct jv item = { 0 };
		char *key = NULL;

		jskip_ws(ps);
		if (v->type == J_OBJ) {
			if (*ps->p != '"' || !jstring(ps, &key))
				return jfail(ps, "object key expected");
			jskip_ws(ps);
			if (*ps->p++ != ':') {
				free(key);
				return jfail(ps, "':' expected");
			}
		}
		v->items = jgrow(v->items, v->n + 1, sizeof(*v->items));
		if (v->type == J_OBJ)
			v->keys = jgrow(v->keys, v->n + 1, sizeof(*v->keys));
		if (v->type == J_OBJ)
			v->keys[v->n] = key;
		v->items[v->n++] = item;
		if (!jvalue(ps, &v->items[v->n - 1], depth + 1))
			return false;
		jskip_ws(ps);
		if (*ps->p == close) {
			ps->p++;
			return true;
		}
		if (*ps->p++ != ',')
			return jfail(ps, "',' or closing bracket expected");
	}
}

static bool jvalue(struct jparser *ps, struct jv *v, int depth)
{
	if (depth > JSON_MAX_DEPTH)
		return jfail(ps, "nested too deeply");
	jskip_ws(ps);
	if (*ps->p == '{' || *ps->p == '[') {
		v->type = *ps->p == '{' ? J_OBJ : J_ARR;
		ps->p++;
		return jitems(ps, v, v->type == J_OBJ ? '}' : ']', depth);
	}
	if (*ps->p == '"') {
		v->type = J_STR;
		return jstring(ps, &v->str);
	}
	if (*ps->p == '-' || (*ps->p >= '0' && *ps->p <= '9'))
		return jnumber(ps, v);
	return jliteral(ps, v);
}

static void jv_free(struct jv *v)
{
	for (size_t i = 0; i < v->n; i++) {
		jv_free(&v->items[i]);
		if (v->keys)
			free(v->keys[i]);
	}
	free(v->items);
	free(v->keys);
	free(v->str);
	memset(v, 0, sizeof(*v));
}

/* Parses a whole document; NULL on success, else why not. */
static const char *json_parse(const char *text, struct jv *out)
{
	struct jparser ps = { text, NULL };

	memset(out, 0, sizeof(*out));
	if (jvalue(&ps, out, 0)) {
		jskip_ws(&ps);
		if (*ps.p)
			jfail(&ps, "trailing garbage");
	}
	if (ps.error)
		jv_free(out);
	return ps.error;
}

static const struct jv *jget(const struct jv *obj, const char *key)
{
	ck_assert_int_eq(obj->type, J_OBJ);
	for (size_t i = 0; i < obj->n; i++)
		if (!strcmp(obj->keys[i], key))
			return &obj->items[i];
	return NULL;
}

/* A member that must exist and have the given type. */
static const struct jv *jmust(const struct jv *obj, const char *key,
			      enum jtype type)
{
	const struct jv *v = jget(obj, key);

	ck_assert_msg(v, "JSON key \"%s\" missing", key);
	ck_assert_msg(v->type == type, "JSON key \"%s\" has type %d, not %d",
		      key, (int)v->type, (int)type);
	return v;
}

static const char *jstr(const struct jv *obj, const char *key)
{
	return jmust(obj, key, J_STR)->str;
}

/* ---- the parser itself ---------------------------------------------- */

START_TEST(test_json_parser_accepts)
{
	const char *doc =
		" {\"a\": [1, -2.5e3, 0.25, true, false, null, {}, []],\n"
		"  \"s\": \"q\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00\"} ";
	struct jv v;
	const struct jv *a;

	ck_assert_ptr_null(json_parse(doc, &v));
	a = jmust(&v, "a", J_ARR);
	ck_assert_uint_eq(a->n, 8);
	ck_assert(a->items[0].type == J_NUM && a->items[0].num == 1);
	ck_assert(a->items[1].type == J_NUM && a->items[1].num == -2500);
	ck_assert(a->items[2].num == 0.25);
	ck_assert(a->items[3].type == J_BOOL && a->items[3].b);
	ck_assert(a->items[4].type == J_BOOL && !a->items[4].b);
	ck_assert_int_eq(a->items[5].type, J_NULL);
	ck_assert(a->items[6].type == J_OBJ && a->items[6].n == 0);
	ck_assert(a->items[7].type == J_ARR && a->items[7].n == 0);
	ck_assert_str_eq(jstr(&v, "s"),
			 "q\"\\/\b\f\n\r\t\xc3\xa9\xf0\x9f\x98\x80");
	jv_free(&v);
}
END_TEST

START_TEST(test_json_parser_rejects)
{
	static const char *const bad[] = {
		"", "{} x", "[1,]", "[1 2]", "{\"a\" 1}", "{\"a\":}", "\"abc",
		"01", "-", "1.", "1e", "tru", "[\"\x01\"]", "\"\\x\"",
		"\"\\ud800\"", "{1: 2}", "[", "]",
	};
	struct jv v;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(json_parse(bad[i], &v) != NULL,
			      "accepted \"%s\"", bad[i]);
}
END_TEST

/* ---- running the tool --------------------------------------------------- */

struct run {
	int status; /* exit status, 128 + signal when killed */
	char *out, *err;
};

static char *slurp(FILE *f)
{
	long size;
	char *buf;

	ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
	size = ftell(f);
	ck_assert_int_ge(size, 0);
	rewind(f);
	buf = malloc((size_t)size + 1);
	ck_assert_ptr_nonnull(buf);
	ck_assert_uint_eq(fread(buf, 1, (size_t)size, f), (size_t)size);
	buf[size] = '\0';
	fclose(f);
	return buf;
}

#define UFFD_DEV_IOC_NEW _IO(0xAA, 0x00) /* USERFAULTFD_IOC_NEW */

/* In the child: a seccomp filter that makes every way of opening a
 * userfaultfd fail (the system call with ENOSYS, /dev/userfaultfd's
 * USERFAULTFD_IOC_NEW with EPERM), as on a kernel without userfaultfd. */
static void deny_userfaultfd(void)
{
	struct sock_filter filter[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			 offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_userfaultfd, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_ioctl, 0, 3),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			 offsetof(struct seccomp_data, args[1])),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, UFFD_DEV_IOC_NEW, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { sizeof(filter) / sizeof(filter[0]), filter };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog))
		_exit(126);
}

/* Runs the tool with the arguments (NULL terminated), with or without
 * userfaultfd, and waits for it. */
static struct run run_tool_as(const char *const *args, bool no_uffd)
{
	const char *tool = getenv("UFFD_PROBE");
	const char *argv[16] = { tool };
	FILE *out = tmpfile(), *err = tmpfile();
	struct run r = { 0 };
	int status;
	pid_t pid;

	ck_assert_msg(tool, "UFFD_PROBE (the tool's path) is not set");
	ck_assert(out && err);
	for (size_t i = 0; args[i]; i++) {
		ck_assert_uint_lt(i + 2, sizeof(argv) / sizeof(argv[0]));
		argv[i + 1] = args[i];
	}
	fflush(NULL);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (!pid) {
		dup2(fileno(out), 1);
		dup2(fileno(err), 2);
		if (no_uffd)
			deny_userfaultfd();
		execv(tool, (char *const *)argv);
		_exit(127);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	r.status = WIFEXITED(status) ? WEXITSTATUS(status)
				     : 128 + WTERMSIG(status);
	r.out = slurp(out);
	r.err = slurp(err);
	return r;
}

static struct run run_tool(const char *const *args)
{
	return run_tool_as(args, false);
}

static void run_free(struct run *r)
{
	free(r->out);
	free(r->err);
}

/* Runs the tool with --json and more arguments; asserts exit 0 and a
 * document that parses. */
static void run_json(const char *const *args, struct jv *doc)
{
	const char *argv[16] = { "--json" };
	struct run r;
	const char *why;

	for (size_t i = 0; args[i]; i++) {
		ck_assert_uint_lt(i + 2, sizeof(argv) / sizeof(argv[0]));
		argv[i + 1] = args[i];
	}
	r = run_tool(argv);
	ck_assert_msg(r.status == 0, "uffd-probe --json exited %d: %s",
		      r.status, r.err);
	why = json_parse(r.out, doc);
	ck_assert_msg(!why, "uffd-probe --json: %s", why);
	run_free(&r);
}

/* ---- what the library says, for comparison ----------------------------- */

static uint64_t default_features(void)
{
	struct uffd_handle *h = open_handle();
	uint64_t features = uffd_handle_get_features(h);

	uffd_handle_free(h);
	return features;
}

/* One bit by name ("bitN" for a bit the library has no name for). */
static uint64_t name_bit(const char *name,
			 int (*from_name)(const char *, uint64_t *))
{
	uint64_t bit = 0;
	unsigned n;

	if (sscanf(name, "bit%u", &n) == 1 && n < 64)
		return UINT64_C(1) << n;
	ck_assert_msg(!from_name(name, &bit), "bad name %s", name);
	return bit;
}

/* A JSON array of bit names as a mask. */
static uint64_t names_mask(const struct jv *arr,
			   int (*from_name)(const char *, uint64_t *))
{
	uint64_t mask = 0, bit;

	ck_assert_int_eq(arr->type, J_ARR);
	for (size_t i = 0; i < arr->n; i++) {
		const char *name = arr->items[i].str;

		ck_assert_int_eq(arr->items[i].type, J_STR);
		bit = name_bit(name, from_name);
		ck_assert_msg(!(mask & bit), "%s listed twice", name);
		mask |= bit;
	}
	return mask;
}

static const char *status_word(enum uffd_caps_status s)
{
	return s == UFFD_CAPS_SUPPORTED	  ? "supported"
	       : s == UFFD_CAPS_UNSUPPORTED ? "unsupported"
					    : "unknown";
}

static bool is_hugetlb(enum uffd_backend b)
{
	return b == UFFD_BACKEND_HUGETLB_PRIVATE ||
	       b == UFFD_BACKEND_HUGETLB_SHARED ||
	       b == UFFD_BACKEND_MEMFD_HUGETLB_SHARED ||
	       b == UFFD_BACKEND_MEMFD_HUGETLB_PRIVATE;
}

/* "register": 0, or "-ENAME" (a negative number when it has no name). */
static void check_register(const struct jv *v, int want, const char *where)
{
	char name[64];

	if (v->type == J_NUM) {
		ck_assert_msg(v->num == want, "%s: register %g, library %d",
			      where, v->num, want);
		return;
	}
	ck_assert_int_eq(v->type, J_STR);
	ck_assert_msg(want < 0 && strerrorname_np(-want), "%s: register %s, "
		      "library %d", where, v->str, want);
	snprintf(name, sizeof(name), "-%s", strerrorname_np(-want));
	ck_assert_msg(!strcmp(v->str, name), "%s: register %s, library %s",
		      where, v->str, name);
}

static void check_op(const struct jv *op, const char *opname,
		     const struct uffd_caps *caps, uint64_t modes,
		     const char *where)
{
	uint64_t bit = name_bit(opname, uffd_op_from_name);
	const char *note;
	int err = uffd_caps_get_op_result(caps, modes, bit, &note);

	ck_assert_int_eq(op->type, J_OBJ);
	ck_assert_msg(jmust(op, "errno", J_NUM)->num == -err,
		      "%s %s: errno differs", where, opname);
	ck_assert_str_eq(jstr(op, "note"), note);
	ck_assert_str_eq(jstr(op, "result"),
			 !err ? "verified"
			 : err == -ENODATA ? "unverifiable" : "failed");
}

static void check_combo(const struct jv *c, const struct uffd_caps *caps,
			const char *name)
{
	uint64_t modes = names_mask(jmust(c, "modes", J_ARR),
				    uffd_mode_from_name);
	uint64_t adv = uffd_caps_get_advertised(caps, modes);
	const struct jv *ops = jmust(c, "ops", J_OBJ);
	char where[128];

	snprintf(where, sizeof(where), "%s modes %#llx", name,
		 (unsigned long long)modes);
	ck_assert_msg(modes && !(modes & ~UFFD_MODE_KNOWN), "%s", where);
	ck_assert_msg(jget(c, "register"), "%s: no register", where);
	check_register(jget(c, "register"), uffd_caps_get_register(caps, modes),
		       where);
	ck_assert_msg(names_mask(jmust(c, "advertised", J_ARR),
				 uffd_op_from_name) == adv,
		      "%s: advertised differs", where);
	ck_assert_msg(names_mask(jmust(c, "verified", J_ARR),
				 uffd_op_from_name) ==
			      uffd_caps_get_verified(caps, modes),
		      "%s: verified differs", where);
	ck_assert_uint_eq(ops->n, (unsigned)__builtin_popcountll(adv));
	for (size_t i = 0; i < ops->n; i++)
		check_op(&ops->items[i], ops->keys[i], caps, modes, where);
}

static void check_notes(const struct jv *notes, const char *lib)
{
	size_t i = 0;

	ck_assert_int_eq(notes->type, J_ARR);
	while (*lib) {
		size_t len = strcspn(lib, "\n");

		if (len) {
			ck_assert_uint_lt(i, notes->n);
			ck_assert_uint_eq(strlen(notes->items[i].str), len);
			ck_assert(!strncmp(notes->items[i].str, lib, len));
			i++;
		}
		lib += len + (lib[len] == '\n');
	}
	ck_assert_uint_eq(i, notes->n);
}

/* The combinations of a probed backend: all seven, each once. */
static void check_combos(const struct jv *combos, const struct uffd_caps *caps,
			 const char *name)
{
	unsigned seen = 0;

	ck_assert_int_eq(combos->type, J_ARR);
	if (uffd_caps_get_status(caps) == UFFD_CAPS_UNKNOWN) {
		ck_assert_uint_eq(combos->n, 0);
		return;
	}
	ck_assert_uint_eq(combos->n, NR_COMBOS);
	for (size_t i = 0; i < combos->n; i++) {
		uint64_t m = names_mask(jmust(&combos->items[i], "modes",
					      J_ARR), uffd_mode_from_name);

		ck_assert(m >= 1 && m <= NR_COMBOS);
		seen |= 1u << (m - 1);
		check_combo(&combos->items[i], caps, name);
	}
	ck_assert_uint_eq(seen, (1u << NR_COMBOS) - 1);
}

/* One backend object against uffd_caps_get(features, its backend). */
static void check_backend(const struct jv *b, uint64_t features)
{
	const char *name = jstr(b, "name"), *status = jstr(b, "status");
	const struct uffd_caps *caps;
	enum uffd_backend backend;

	ck_assert_msg(!uffd_backend_from_name(name, &backend), "%s", name);
	ck_assert_msg(!uffd_caps_get(features, backend, &caps), "%s: %s", name,
		      uffd_last_error());
	if (is_hugetlb(backend) &&
	    (!strcmp(status, "unknown") ||
	     uffd_caps_get_status(caps) == UFFD_CAPS_UNKNOWN)) {
		/* Whether huge pages can be had depends on other tests that
		 * reserve and use them at the same time: only agreement
		 * can be expected, not the same count in the reason. */
		if (strcmp(status, status_word(uffd_caps_get_status(caps))))
			printf("note: %s: tool says %s, library %s: huge "
			       "pages changed hands\n", name, status,
			       status_word(uffd_caps_get_status(caps)));
		return;
	}
	ck_assert_str_eq(status, status_word(uffd_caps_get_status(caps)));
	if (uffd_caps_get_status(caps) != UFFD_CAPS_SUPPORTED)
		ck_assert_str_eq(jstr(b, "reason"), uffd_caps_get_reason(caps));
	ck_assert(jmust(b, "page_size", J_NUM)->num ==
		  (double)uffd_caps_get_page_size(caps));
	ck_assert_msg(names_mask(jmust(b, "modes", J_ARR),
				 uffd_mode_from_name) ==
			      uffd_caps_get_modes(caps),
		      "%s: modes differ", name);
	check_combos(jmust(b, "combinations", J_ARR), caps, name);
	check_notes(jmust(b, "notes", J_ARR), uffd_caps_get_notes(caps));
}

/* The backend object of that name, or NULL. */
static const struct jv *find_backend(const struct jv *doc, const char *name)
{
	const struct jv *backends = jmust(doc, "backends", J_ARR);

	for (size_t i = 0; i < backends->n; i++)
		if (!strcmp(jstr(&backends->items[i], "name"), name))
			return &backends->items[i];
	return NULL;
}

static const struct jv *find_combo(const struct jv *backend, uint64_t modes)
{
	const struct jv *combos = jmust(backend, "combinations", J_ARR);

	for (size_t i = 0; i < combos->n; i++)
		if (names_mask(jmust(&combos->items[i], "modes", J_ARR),
			       uffd_mode_from_name) == modes)
			return &combos->items[i];
	return NULL;
}

/* Whether the text names the backend as a table row ("\n  name  ..."). */
static bool text_has_row(const char *text, const char *name)
{
	char key[64];

	snprintf(key, sizeof(key), "\n  %s ", name);
	return strstr(text, key) != NULL;
}

/* ---- the tool ------------------------------------------------------------ */

START_TEST(test_text_names_every_backend)
{
	struct run r = run_tool((const char *[]){ NULL });

	ck_assert_msg(r.status == 0, "exit %d: %s", r.status, r.err);
	for (int b = 1; b < UFFD_BACKEND_COUNT; b++) {
		const char *name = uffd_backend_name((enum uffd_backend)b);

		ck_assert_msg(text_has_row(r.out, name), "no row for %s", name);
	}
	ck_assert_ptr_nonnull(strstr(r.out, "Opening a userfaultfd"));
	ck_assert_ptr_nonnull(strstr(r.out, "PAGEFAULT_FLAG_WP"));
	ck_assert_ptr_nonnull(strstr(r.out, "Advertised but not verified"));
	run_free(&r);
}
END_TEST

START_TEST(test_json_matches_library)
{
	uint64_t features = default_features();
	const struct jv *backends;
	struct jv doc;

	run_json((const char *[]){ NULL }, &doc);
	ck_assert_ptr_null(jget(&doc, "error"));
	ck_assert(names_mask(jmust(&doc, "probe_features", J_ARR),
			     uffd_feature_from_name) == features);
	ck_assert(!jmust(&doc, "wp_async", J_BOOL)->b);
	ck_assert(jmust(jmust(&doc, "default", J_OBJ), "works", J_BOOL)->b);
	ck_assert_uint_eq(jmust(&doc, "open_paths", J_ARR)->n, 3);
	ck_assert_uint_ge(jmust(&doc, "features", J_ARR)->n, 17);
	backends = jmust(&doc, "backends", J_ARR);
	ck_assert_uint_eq(backends->n, UFFD_BACKEND_COUNT - 1);
	for (size_t i = 0; i < backends->n; i++)
		check_backend(&backends->items[i], features);
	jv_free(&doc);
}
END_TEST

START_TEST(test_features_match_handle)
{
	struct uffd_handle *h = open_handle();
	const struct jv *features;
	struct jv doc;

	run_json((const char *[]){ "--backend", "anon-private", NULL }, &doc);
	features = jmust(&doc, "features", J_ARR);
	for (size_t i = 0; i < features->n; i++) {
		const struct jv *f = &features->items[i];
		uint64_t bit = UINT64_C(1) << (int)jmust(f, "bit", J_NUM)->num;

		ck_assert_int_eq(jmust(f, "supported", J_BOOL)->b,
				 !!(uffd_handle_get_supported_features(h) & bit));
		ck_assert_int_eq(jmust(f, "enabled", J_BOOL)->b,
				 !!(uffd_handle_get_features(h) & bit));
	}
	uffd_handle_free(h);
	jv_free(&doc);
}
END_TEST

START_TEST(test_backend_limits_output)
{
	struct run r = run_tool((const char *[]){ "--backend", "anon-private",
						  NULL });
	struct jv doc;

	ck_assert_int_eq(r.status, 0);
	for (int b = 1; b < UFFD_BACKEND_COUNT; b++) {
		const char *name = uffd_backend_name((enum uffd_backend)b);

		ck_assert_msg(text_has_row(r.out, name) ==
				      (b == UFFD_BACKEND_ANON_PRIVATE),
			      "row for %s", name);
	}
	run_free(&r);
	run_json((const char *[]){ "--backend", "anon-private", NULL }, &doc);
	ck_assert_uint_eq(jmust(&doc, "backends", J_ARR)->n, 1);
	ck_assert_ptr_nonnull(find_backend(&doc, "anon-private"));
	jv_free(&doc);
}
END_TEST

START_TEST(test_backend_list_and_repeat)
{
	struct jv doc;

	run_json((const char *[]){ "--backend", "memfd-shared,anon-private",
				   "-b", "tmpfs-file", NULL }, &doc);
	ck_assert_uint_eq(jmust(&doc, "backends", J_ARR)->n, 3);
	ck_assert_ptr_nonnull(find_backend(&doc, "anon-private"));
	ck_assert_ptr_nonnull(find_backend(&doc, "memfd-shared"));
	ck_assert_ptr_nonnull(find_backend(&doc, "tmpfs-file"));
	jv_free(&doc);
}
END_TEST

START_TEST(test_unknown_backend_exits_2)
{
	struct run r = run_tool((const char *[]){ "--backend", "nosuch",
						  NULL });

	ck_assert_int_eq(r.status, 2);
	ck_assert_str_eq(r.out, "");
	ck_assert_ptr_nonnull(strstr(r.err, "nosuch"));
	for (int b = 1; b < UFFD_BACKEND_COUNT; b++)
		ck_assert_msg(strstr(r.err,
				     uffd_backend_name((enum uffd_backend)b)),
			      "message does not list %s: %s",
			      uffd_backend_name((enum uffd_backend)b), r.err);
	run_free(&r);
}
END_TEST

START_TEST(test_bad_usage_exits_2)
{
	const char *const *const cases[] = {
		(const char *[]){ "--no-such-option", NULL },
		(const char *[]){ "stray", NULL },
		(const char *[]){ "--backend", "unknown", NULL },
		(const char *[]){ "--backend", "anon-private,", NULL },
		(const char *[]){ "--backend", NULL },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct run r = run_tool(cases[i]);

		ck_assert_msg(r.status == 2, "case %zu: exit %d", i, r.status);
		ck_assert_str_eq(r.out, "");
		ck_assert_str_ne(r.err, "");
		run_free(&r);
	}
}
END_TEST

START_TEST(test_help_and_version)
{
	struct run r = run_tool((const char *[]){ "--help", NULL });

	ck_assert_int_eq(r.status, 0);
	ck_assert_ptr_nonnull(strstr(r.out, "Usage: uffd-probe"));
	ck_assert_ptr_nonnull(strstr(r.out, "--wp-async"));
	run_free(&r);
	r = run_tool((const char *[]){ "--version", NULL });
	ck_assert_int_eq(r.status, 0);
	ck_assert_ptr_nonnull(strstr(r.out, uffd_version()));
	run_free(&r);
}
END_TEST

/* WP registers on a disk file only when WP_ASYNC is on. */
START_TEST(test_wp_async_disk_file)
{
	const struct jv *disk, *wp;
	struct jv doc;

	run_json((const char *[]){ "--wp-async", "--backend", "disk-file",
				   NULL }, &doc);
	ck_assert(jmust(&doc, "wp_async", J_BOOL)->b);
	ck_assert(names_mask(jmust(&doc, "probe_features", J_ARR),
			     uffd_feature_from_name) & UFFD_FEAT_WP_ASYNC);
	disk = find_backend(&doc, "disk-file");
	ck_assert_ptr_nonnull(disk);
	ck_assert_msg(strcmp(jstr(disk, "status"), "unknown"),
		      "disk-file could not be probed: %s", jstr(disk, "reason"));
	wp = find_combo(disk, UFFD_MODE_WP);
	ck_assert_ptr_nonnull(wp);
	ck_assert_msg(jmust(wp, "register", J_NUM)->num == 0,
		      "WP does not register on a disk file with WP_ASYNC");
	ck_assert(names_mask(jmust(disk, "modes", J_ARR), uffd_mode_from_name)
		  & UFFD_MODE_WP);
	jv_free(&doc);

	run_json((const char *[]){ "--backend", "disk-file", NULL }, &doc);
	disk = find_backend(&doc, "disk-file");
	ck_assert_ptr_nonnull(disk);
	wp = find_combo(disk, UFFD_MODE_WP);
	ck_assert_ptr_nonnull(wp);
	ck_assert_int_eq(jget(wp, "register")->type, J_STR);
	jv_free(&doc);
}
END_TEST

/* No way to open a userfaultfd: exit 1, the reason on stderr, and still
 * a JSON object, with an "error" key, for scripts. */
START_TEST(test_no_userfaultfd_exits_1)
{
	struct run r = run_tool_as((const char *[]){ NULL }, true);
	const struct jv *paths;
	struct jv doc;

	ck_assert_msg(r.status == 1, "exit %d: %s", r.status, r.err);
	ck_assert_ptr_nonnull(strstr(r.err, "cannot open a userfaultfd"));
	ck_assert_ptr_nonnull(strstr(r.out, "Opening a userfaultfd"));
	run_free(&r);
	r = run_tool_as((const char *[]){ "--json", NULL }, true);
	ck_assert_int_eq(r.status, 1);
	ck_assert_ptr_null(json_parse(r.out, &doc));
	ck_assert_str_ne(jstr(&doc, "error"), "");
	ck_assert_ptr_null(jget(&doc, "backends"));
	paths = jmust(&doc, "open_paths", J_ARR);
	for (size_t i = 0; i < paths->n; i++)
		ck_assert(!jmust(&paths->items[i], "works", J_BOOL)->b);
	jv_free(&doc);
	run_free(&r);
}
END_TEST

static long meminfo(const char *key)
{
	char line[128];
	size_t len = strlen(key);
	long v = -1;
	FILE *f = fopen("/proc/meminfo", "re");

	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, len) && line[len] == ':')
			v = strtol(line + len + 1, NULL, 10);
	fclose(f);
	return v;
}

START_TEST(test_hugetlb_unknown_without_huge_pages)
{
	static const char *const names[] = {
		"hugetlb-private", "hugetlb-shared", "memfd-hugetlb-shared",
		"memfd-hugetlb-private",
	};
	long before = meminfo("HugePages_Free");
	struct jv doc;

	if (before != 0) {
		printf("SKIP: %ld huge pages are free\n", before);
		return;
	}
	run_json((const char *[]){ "--backend",
				   "hugetlb-private,hugetlb-shared,"
				   "memfd-hugetlb-shared,memfd-hugetlb-private",
				   NULL }, &doc);
	if (meminfo("HugePages_Free") != 0) {
		printf("SKIP: huge pages were reserved meanwhile\n");
		jv_free(&doc);
		return;
	}
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		const struct jv *b = find_backend(&doc, names[i]);

		ck_assert_ptr_nonnull(b);
		ck_assert_str_eq(jstr(b, "status"), "unknown");
		ck_assert_msg(strstr(jstr(b, "reason"), "huge pages"),
			      "%s: reason \"%s\"", names[i],
			      jstr(b, "reason"));
		ck_assert_uint_eq(jmust(b, "combinations", J_ARR)->n, 0);
	}
	jv_free(&doc);
}
END_TEST

static Suite *probe_tool_suite(void)
{
	Suite *s = suite_create("probe-tool");
	TCase *tc = tcase_create("json-parser");

	tcase_add_test(tc, test_json_parser_accepts);
	tcase_add_test(tc, test_json_parser_rejects);
	suite_add_tcase(s, tc);

	tc = tcase_create("output");
	tcase_add_test(tc, test_text_names_every_backend);
	tcase_add_test(tc, test_json_matches_library);
	tcase_add_test(tc, test_features_match_handle);
	tcase_add_test(tc, test_wp_async_disk_file);
	tcase_add_test(tc, test_hugetlb_unknown_without_huge_pages);
	tcase_add_test(tc, test_no_userfaultfd_exits_1);
	suite_add_tcase(s, tc);

	tc = tcase_create("options");
	tcase_add_test(tc, test_backend_limits_output);
	tcase_add_test(tc, test_backend_list_and_repeat);
	tcase_add_test(tc, test_unknown_backend_exits_2);
	tcase_add_test(tc, test_bad_usage_exits_2);
	tcase_add_test(tc, test_help_and_version);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(probe_tool_suite());
}
