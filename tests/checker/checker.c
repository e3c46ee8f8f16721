/*
 * checker: runs inside a container and prints, as one JSON object on one
 * line of stdout, what the process sees of its environment.  The
 * integration tests compare this view against the bundle's config.json.
 *
 * Usage: checker [--path P]... [--try SYSCALL[:ARG]]... [--exit N]
 *                [--sleep SECONDS] [--kill-self SIG] [--fork N] [--alloc MB]
 *                [--count-to FILE] [--clocks] [--children N]
 *
 * --try makes one raw system call before anything else is probed or printed
 * (so a seccomp kill leaves no output) and reports it under "tries", keyed
 * by the option's value: {"ret": R, "errno": E, "errno_name": "EPERM"}.
 * Known calls: mkdir[:PATH] (default /tmp/xrun-try-dir, removed again when
 * created), uname, getcwd, getpid, chdir[:PATH] (default /), and
 * personality[:VALUE] (hex with 0x, else decimal; default 0xffffffff, which
 * only queries). Through the compat ABIs: int80:getpid and int80:mkdir
 * (i386 numbers 20 and 39 through `int $0x80`), x32:getpid and x32:mkdir
 * (x86_64 numbers 39 and 83 with the x32 bit 0x40000000).
 *
 * --fork N forks N children that stay alive until all forks are done, then
 * kills and reaps them and forks once more; reported under "fork" as
 * {"requested": N, "ok": K, "errno_name": first failure or "ok",
 * "again": result of the last fork}.  --alloc MB allocates and touches MB
 * megabytes, then reports {"mb": MB, "ok": true} under "alloc" (a process
 * killed for it prints nothing).  Both run before the report is printed.
 *
 * --count-to FILE, after the report, writes an increasing counter to FILE
 * (rewritten in place as one fixed-width line) every 10 ms until killed.
 *
 * --clocks reports CLOCK_MONOTONIC and CLOCK_BOOTTIME (whole seconds) and
 * /proc/uptime under "clocks" (what a time namespace offsets).
 *
 * --children N forks N children that sleep until the checker dies (they get
 * SIGKILL with it) and lists their pids under "children".
 *
 * `checker exe-write ...` is another program: the moves of CVE-2019-5736
 * against a runtime's binary, see exe_write_main (it prints its own JSON:
 * mode, self_link, rounds, attempts, errors).
 *
 * Built with: gcc -static -O2 -Wall -o checker checker.c
 *
 * Robustness rules: never crash on a missing /proc or an unexpected file;
 * report problems as strings in the "errors" array instead.  Every string is
 * escaped so the output is always valid JSON (bytes >= 0x80 are emitted as
 * \u00XX, i.e. read as Latin-1).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_PATHS 64
#define MAX_ERRORS 64
#define MAX_FDS 256
#define MAX_DEPTH 32
#define CONTENT_LIMIT 256
#define MAX_DIR_ENTRIES 100
#define MAX_TRIES 32

/* ------------------------------------------------------------------ */
/* errors collected while probing, printed at the end                  */

static char *errors[MAX_ERRORS];
static int n_errors;

static void add_error(const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	if (n_errors >= MAX_ERRORS)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	errors[n_errors] = strdup(buf);
	if (errors[n_errors])
		n_errors++;
}

static const char *errno_name(int e)
{
	static char fallback[16];

	switch (e) {
	case 0: return "ok";
	case EPERM: return "EPERM";
	case ENOENT: return "ENOENT";
	case EIO: return "EIO";
	case ENXIO: return "ENXIO";
	case EBADF: return "EBADF";
	case EAGAIN: return "EAGAIN";
	case ENOMEM: return "ENOMEM";
	case EACCES: return "EACCES";
	case EBUSY: return "EBUSY";
	case EEXIST: return "EEXIST";
	case EXDEV: return "EXDEV";
	case ENODEV: return "ENODEV";
	case ENOTDIR: return "ENOTDIR";
	case EISDIR: return "EISDIR";
	case EINVAL: return "EINVAL";
	case ETXTBSY: return "ETXTBSY";
	case ENOSPC: return "ENOSPC";
	case EROFS: return "EROFS";
	case ENAMETOOLONG: return "ENAMETOOLONG";
	case ELOOP: return "ELOOP";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case EOVERFLOW: return "EOVERFLOW";
	case ESRCH: return "ESRCH";
	case EFAULT: return "EFAULT";
	case ENOTTY: return "ENOTTY";
	case ERANGE: return "ERANGE";
	case ENOSYS: return "ENOSYS";
	}
	snprintf(fallback, sizeof(fallback), "E%d", e);
	return fallback;
}

/* ------------------------------------------------------------------ */
/* minimal streaming JSON writer                                       */

static int depth;
static int item_count[MAX_DEPTH];
static int after_key;

static void separate(void)
{
	if (after_key) {
		after_key = 0;
		return;
	}
	if (item_count[depth]++)
		putchar(',');
}

static void put_escaped(const char *s, size_t len)
{
	putchar('"');
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\') {
			putchar('\\');
			putchar(c);
		} else if (c == '\n') {
			fputs("\\n", stdout);
		} else if (c == '\t') {
			fputs("\\t", stdout);
		} else if (c < 0x20 || c >= 0x7f) {
			printf("\\u%04x", c);
		} else {
			putchar(c);
		}
	}
	putchar('"');
}

static void json_key(const char *k)
{
	separate();
	put_escaped(k, strlen(k));
	putchar(':');
	after_key = 1;
}

static void json_strn(const char *s, size_t len)
{
	separate();
	put_escaped(s, len);
}

static void json_str(const char *s)
{
	if (!s) {
		separate();
		fputs("null", stdout);
		return;
	}
	json_strn(s, strlen(s));
}

static void json_int(long long v)
{
	separate();
	printf("%lld", v);
}

static void json_uint(unsigned long long v)
{
	separate();
	printf("%llu", v);
}

static void json_bool(int v)
{
	separate();
	fputs(v ? "true" : "false", stdout);
}

static void json_open(char c)
{
	separate();
	putchar(c);
	if (depth < MAX_DEPTH - 1)
		depth++;
	item_count[depth] = 0;
}

static void json_close(char c)
{
	putchar(c);
	if (depth > 0)
		depth--;
}

static void kv_str(const char *k, const char *v)
{
	json_key(k);
	json_str(v);
}

static void kv_int(const char *k, long long v)
{
	json_key(k);
	json_int(v);
}

/* ------------------------------------------------------------------ */
/* small file helpers                                                  */

/* Reads up to cap-1 bytes of a file into buf; returns length or -1. */
static ssize_t read_small_file(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	size_t len = 0;

	if (fd < 0)
		return -1;
	while (len < cap - 1) {
		ssize_t n = read(fd, buf + len, cap - 1 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int saved = errno;

			close(fd);
			errno = saved;
			return -1;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	close(fd);
	return (ssize_t)len;
}

/* Emits a whole small file as a JSON string, or null plus an error. */
static void kv_file(const char *key, const char *path)
{
	static char buf[65536];

	json_key(key);
	if (read_small_file(path, buf, sizeof(buf)) < 0) {
		add_error("read %s: %s", path, errno_name(errno));
		json_str(NULL);
		return;
	}
	json_str(buf);
}

/* ------------------------------------------------------------------ */
/* sections                                                            */

static void emit_fds(const int *fds, char targets[][PATH_MAX], int n)
{
	json_key("fds");
	json_open('[');
	for (int i = 0; i < n; i++) {
		json_open('{');
		kv_int("fd", fds[i]);
		kv_str("target", targets[i]);
		json_close('}');
	}
	json_close(']');
}

/*
 * Lists /proc/self/fd, leaving out the descriptor used for the listing
 * itself.  Done first thing in main so nothing of ours is open yet.
 */
static int collect_fds(int *fds, char targets[][PATH_MAX])
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	if (!d) {
		add_error("opendir /proc/self/fd: %s", errno_name(errno));
		return 0;
	}
	while ((de = readdir(d)) && n < MAX_FDS) {
		char link[64];
		ssize_t len;
		int fd;

		if (de->d_name[0] == '.')
			continue;
		fd = atoi(de->d_name);
		if (fd == dirfd(d))
			continue;
		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		len = readlink(link, targets[n], PATH_MAX - 1);
		if (len < 0)
			len = 0;
		targets[n][len] = '\0';
		fds[n++] = fd;
	}
	closedir(d);
	return n;
}

static void emit_uts(void)
{
	struct utsname u;

	if (uname(&u) == 0) {
		kv_str("hostname", u.nodename);
		kv_str("domainname", u.domainname);
	} else {
		add_error("uname: %s", errno_name(errno));
		kv_str("hostname", NULL);
		kv_str("domainname", NULL);
	}
}

static void emit_ids(void)
{
	static gid_t groups[NGROUPS_MAX];
	int n = getgroups(NGROUPS_MAX, groups);

	kv_int("pid", getpid());
	kv_int("ppid", getppid());
	kv_int("uid", getuid());
	kv_int("euid", geteuid());
	kv_int("gid", getgid());
	kv_int("egid", getegid());
	json_key("groups");
	json_open('[');
	for (int i = 0; i < n; i++)
		json_int(groups[i]);
	json_close(']');
	if (n < 0)
		add_error("getgroups: %s", errno_name(errno));
}

static void emit_cwd(void)
{
	char cwd[PATH_MAX];

	json_key("cwd");
	if (getcwd(cwd, sizeof(cwd))) {
		json_str(cwd);
	} else {
		add_error("getcwd: %s", errno_name(errno));
		json_str(NULL);
	}
}

static void emit_string_list(const char *key, char **list, int n)
{
	json_key(key);
	json_open('[');
	for (int i = 0; list && (n < 0 ? list[i] != NULL : i < n); i++)
		json_str(list[i]);
	json_close(']');
}

/* Picks "Name:\tvalue" lines out of /proc/self/status. */
static void emit_status_fields(void)
{
	static const char *const fields[] = {
		"Umask", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb",
		"NoNewPrivs", "Seccomp", "Cpus_allowed_list",
	};
	static char buf[16384];
	size_t nfields = sizeof(fields) / sizeof(fields[0]);

	json_key("status");
	json_open('{');
	if (read_small_file("/proc/self/status", buf, sizeof(buf)) < 0) {
		add_error("read /proc/self/status: %s", errno_name(errno));
		json_close('}');
		return;
	}
	for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
		char *colon = strchr(line, ':');

		if (!colon)
			continue;
		*colon = '\0';
		for (size_t i = 0; i < nfields; i++) {
			if (strcmp(line, fields[i]) == 0) {
				char *value = colon + 1;

				value += strspn(value, " \t");
				kv_str(fields[i], value);
			}
		}
	}
	json_close('}');
}

static void emit_limit_value(rlim_t v)
{
	if (v == RLIM_INFINITY)
		json_str("unlimited");
	else
		json_uint((unsigned long long)v);
}

static void emit_rlimits(void)
{
	static const struct {
		const char *name;
		int resource;
	} limits[] = {
		{ "RLIMIT_AS", RLIMIT_AS },
		{ "RLIMIT_CORE", RLIMIT_CORE },
		{ "RLIMIT_CPU", RLIMIT_CPU },
		{ "RLIMIT_DATA", RLIMIT_DATA },
		{ "RLIMIT_FSIZE", RLIMIT_FSIZE },
		{ "RLIMIT_LOCKS", RLIMIT_LOCKS },
		{ "RLIMIT_MEMLOCK", RLIMIT_MEMLOCK },
		{ "RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE },
		{ "RLIMIT_NICE", RLIMIT_NICE },
		{ "RLIMIT_NOFILE", RLIMIT_NOFILE },
		{ "RLIMIT_NPROC", RLIMIT_NPROC },
		{ "RLIMIT_RSS", RLIMIT_RSS },
		{ "RLIMIT_RTPRIO", RLIMIT_RTPRIO },
		{ "RLIMIT_RTTIME", RLIMIT_RTTIME },
		{ "RLIMIT_SIGPENDING", RLIMIT_SIGPENDING },
		{ "RLIMIT_STACK", RLIMIT_STACK },
	};

	json_key("rlimits");
	json_open('{');
	for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
		struct rlimit rl;

		if (getrlimit(limits[i].resource, &rl) != 0) {
			add_error("getrlimit %s: %s", limits[i].name,
				  errno_name(errno));
			continue;
		}
		json_key(limits[i].name);
		json_open('[');
		emit_limit_value(rl.rlim_cur);
		emit_limit_value(rl.rlim_max);
		json_close(']');
	}
	json_close('}');
}

static void emit_oom_score_adj(void)
{
	char buf[32];

	json_key("oom_score_adj");
	if (read_small_file("/proc/self/oom_score_adj", buf, sizeof(buf)) < 0) {
		add_error("read /proc/self/oom_score_adj: %s", errno_name(errno));
		json_str(NULL);
		return;
	}
	json_int(strtoll(buf, NULL, 10));
}

static void emit_namespaces(void)
{
	static const char *const names[] = {
		"cgroup", "ipc", "mnt", "net", "pid", "pid_for_children",
		"time", "user", "uts",
	};

	json_key("namespaces");
	json_open('{');
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char path[64], target[128];
		ssize_t len;

		snprintf(path, sizeof(path), "/proc/self/ns/%s", names[i]);
		len = readlink(path, target, sizeof(target) - 1);
		json_key(names[i]);
		if (len < 0) {
			add_error("readlink %s: %s", path, errno_name(errno));
			json_str(NULL);
			continue;
		}
		target[len] = '\0';
		json_str(target);
	}
	json_close('}');
}

/* Undoes the octal escapes (\040 etc.) used in /proc/self/mountinfo. */
static void unescape_octal(char *s)
{
	char *out = s;

	while (*s) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '7' && s[2] >= '0' &&
		    s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
			*out++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 +
					(s[3] - '0'));
			s += 4;
		} else {
			*out++ = *s++;
		}
	}
	*out = '\0';
}

/* One mountinfo line: ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPER */
static void emit_mount_line(char *line)
{
	char *fields[64];
	int n = 0, dash = -1;

	for (char *tok = strtok(line, " "); tok && n < 64; tok = strtok(NULL, " ")) {
		if (dash < 0 && n >= 6 && strcmp(tok, "-") == 0)
			dash = n;
		fields[n++] = tok;
	}
	if (dash < 0 || n < dash + 4) {
		add_error("unparsable mountinfo line");
		return;
	}
	for (int i = 0; i < n; i++)
		unescape_octal(fields[i]);

	json_open('{');
	kv_int("id", atoi(fields[0]));
	kv_int("parent", atoi(fields[1]));
	kv_str("dev", fields[2]);
	kv_str("root", fields[3]);
	kv_str("mount_point", fields[4]);
	kv_str("options", fields[5]);
	json_key("optional");
	json_open('[');
	for (int i = 6; i < dash; i++)
		json_str(fields[i]);
	json_close(']');
	kv_str("fstype", fields[dash + 1]);
	kv_str("source", fields[dash + 2]);
	kv_str("super_options", fields[dash + 3]);
	json_close('}');
}

static void emit_mounts(void)
{
	static char buf[1 << 20];

	json_key("mounts");
	json_open('[');
	if (read_small_file("/proc/self/mountinfo", buf, sizeof(buf)) < 0) {
		add_error("read /proc/self/mountinfo: %s", errno_name(errno));
		json_close(']');
		return;
	}
	for (char *line = buf; line && *line;) {
		char *next = strchr(line, '\n');

		if (next)
			*next++ = '\0';
		emit_mount_line(line);
		line = next;
	}
	json_close(']');
}

/* ------------------------------------------------------------------ */
/* --path probes                                                       */

static const char *file_type(mode_t m)
{
	if (S_ISREG(m)) return "file";
	if (S_ISDIR(m)) return "dir";
	if (S_ISCHR(m)) return "chr";
	if (S_ISBLK(m)) return "blk";
	if (S_ISLNK(m)) return "link";
	if (S_ISFIFO(m)) return "fifo";
	if (S_ISSOCK(m)) return "sock";
	return "unknown";
}

/* Tries to open for writing (files, devices) or create an entry (dirs). */
static int write_probe(const char *path, mode_t m)
{
	if (S_ISDIR(m)) {
		char probe[PATH_MAX];

		snprintf(probe, sizeof(probe), "%s/.checker-probe-%d",
			 strcmp(path, "/") == 0 ? "" : path, getpid());
		if (mkdir(probe, 0700) != 0)
			return errno;
		rmdir(probe);
		return 0;
	}
	if (S_ISREG(m) || S_ISCHR(m) || S_ISBLK(m)) {
		/* No O_TRUNC and no write(2): the file is never modified. */
		int fd = open(path, O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);

		if (fd < 0)
			return errno;
		close(fd);
		return 0;
	}
	return EINVAL;
}

static void emit_content(const char *path)
{
	char buf[CONTENT_LIMIT + 1];
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0) {
		kv_str("read", errno_name(errno));
		return;
	}
	do {
		n = read(fd, buf, CONTENT_LIMIT);
	} while (n < 0 && errno == EINTR);
	kv_str("read", n < 0 ? errno_name(errno) : "ok");
	json_key("content");
	if (n < 0)
		json_str(NULL);
	else
		json_strn(buf, (size_t)n);
	close(fd);
}

static void emit_dir_entries(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	int n = 0;

	kv_str("read", d ? "ok" : errno_name(errno));
	json_key("entries");
	json_open('[');
	while (d && (de = readdir(d)) && n < MAX_DIR_ENTRIES) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		json_str(de->d_name);
		n++;
	}
	json_close(']');
	if (d)
		closedir(d);
}

static void emit_path(const char *path)
{
	struct stat st;

	json_open('{');
	kv_str("path", path);
	if (lstat(path, &st) != 0) {
		kv_str("error", errno_name(errno));
		json_key("exists");
		json_bool(0);
		json_close('}');
		return;
	}
	json_key("exists");
	json_bool(1);
	kv_str("type", file_type(st.st_mode));
	kv_int("mode", st.st_mode & 07777);
	kv_int("uid", st.st_uid);
	kv_int("gid", st.st_gid);
	if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
		kv_int("major", major(st.st_rdev));
		kv_int("minor", minor(st.st_rdev));
	}
	if (S_ISLNK(st.st_mode)) {
		char target[PATH_MAX];
		ssize_t len = readlink(path, target, sizeof(target) - 1);

		target[len < 0 ? 0 : len] = '\0';
		kv_str("link_target", target);
	} else {
		kv_str("access_w", errno_name(access(path, W_OK) == 0 ? 0 : errno));
		kv_str("write", errno_name(write_probe(path, st.st_mode)));
	}
	if (S_ISDIR(st.st_mode))
		emit_dir_entries(path);
	else if (S_ISREG(st.st_mode) || S_ISCHR(st.st_mode))
		emit_content(path);
	json_close('}');
}

/* ------------------------------------------------------------------ */
/* --try: single raw system calls                                      */

struct try_result {
	const char *spec;
	long ret;
	int err;
};

/* Parses "0x..." as hex, anything else as decimal. */
static unsigned long parse_number(const char *s)
{
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
		return strtoul(s + 2, NULL, 16);
	return strtoul(s, NULL, 10);
}

/*
 * An i386 system call from this 64-bit process: `int $0x80` takes the
 * i386 number and 32-bit arguments (a static non-PIE binary's data lies
 * below 4 GiB). Returns the raw result, -errno on failure.
 */
static long int80(long nr)
{
	static const char dir[] = "/tmp/xrun-try-dir";
	long ret = nr;

	__asm__ volatile("int $0x80"
			 : "+a"(ret)
			 : "b"(dir), "c"(0755)
			 : "memory", "r8", "r9", "r10", "r11");
	return ret;
}

/*
 * Makes the call named by spec ("name" or "name:arg") with syscall(2), so
 * exactly that system call reaches the kernel whatever libc would use.
 */
static void try_syscall(struct try_result *r)
{
	static char buf[PATH_MAX];
	const char *colon = strchr(r->spec, ':');
	const char *arg = colon ? colon + 1 : NULL;
	size_t name_len = colon ? (size_t)(colon - r->spec) : strlen(r->spec);
	char name[32];

	snprintf(name, sizeof(name), "%.*s", (int)name_len, r->spec);
	if (strcmp(name, "mkdir") == 0) {
		r->ret = syscall(SYS_mkdir, arg ? arg : "/tmp/xrun-try-dir", 0755);
	} else if (strcmp(name, "uname") == 0) {
		struct utsname u;

		r->ret = syscall(SYS_uname, &u);
	} else if (strcmp(name, "getcwd") == 0) {
		r->ret = syscall(SYS_getcwd, buf, sizeof(buf));
	} else if (strcmp(name, "getpid") == 0) {
		r->ret = syscall(SYS_getpid);
	} else if (strcmp(name, "chdir") == 0) {
		r->ret = syscall(SYS_chdir, arg ? arg : "/");
	} else if (strcmp(name, "personality") == 0) {
		r->ret = syscall(SYS_personality,
				 arg ? parse_number(arg) : 0xffffffffUL);
	} else if (strcmp(name, "nr") == 0 && arg) {
		/* A raw syscall number, e.g. one no kernel has yet. */
		r->ret = syscall(parse_number(arg), 0, 0, 0);
	} else if (strcmp(name, "int80") == 0 && arg &&
		   (strcmp(arg, "getpid") == 0 || strcmp(arg, "mkdir") == 0)) {
		r->ret = int80(strcmp(arg, "getpid") == 0 ? 20 : 39);
		r->err = r->ret < 0 && r->ret > -4096 ? (int)-r->ret : 0;
		if (r->err)
			r->ret = -1;
		if (r->ret == 0 && strcmp(arg, "mkdir") == 0)
			syscall(SYS_rmdir, "/tmp/xrun-try-dir");
		return;
	} else if (strcmp(name, "x32") == 0 && arg && strcmp(arg, "getpid") == 0) {
		r->ret = syscall(0x40000000L | SYS_getpid);
	} else if (strcmp(name, "x32") == 0 && arg && strcmp(arg, "mkdir") == 0) {
		r->ret = syscall(0x40000000L | SYS_mkdir, "/tmp/xrun-try-dir", 0755);
	} else {
		add_error("unknown --try: %s", r->spec);
		r->ret = -1;
		r->err = EINVAL;
		return;
	}
	r->err = r->ret < 0 ? errno : 0;
	/* Leave nothing behind, so the same --try can succeed again. */
	if (r->ret == 0 && strcmp(name, "mkdir") == 0)
		syscall(SYS_rmdir, arg ? arg : "/tmp/xrun-try-dir");
}

static void emit_tries(const struct try_result *tries, int n)
{
	json_key("tries");
	json_open('{');
	for (int i = 0; i < n; i++) {
		json_key(tries[i].spec);
		json_open('{');
		kv_int("ret", tries[i].ret);
		kv_int("errno", tries[i].err);
		kv_str("errno_name", errno_name(tries[i].err));
		json_close('}');
	}
	json_close('}');
}

/* ------------------------------------------------------------------ */
/* --fork, --alloc, --count-to: resource limit probes                  */

struct fork_result {
	int requested;
	int ok;
	int err;
	int again_err;
};

static void fork_probe(struct fork_result *r)
{
	pid_t *kids = calloc((size_t)r->requested + 1, sizeof(pid_t));

	if (!kids) {
		r->err = errno;
		return;
	}
	for (int i = 0; i < r->requested; i++) {
		pid_t pid = fork();

		if (pid == 0) {
			for (;;)
				pause();
		}
		if (pid < 0) {
			if (!r->err)
				r->err = errno;
			continue;
		}
		kids[r->ok++] = pid;
	}
	for (int i = 0; i < r->ok; i++)
		kill(kids[i], SIGKILL);
	for (int i = 0; i < r->ok; i++)
		while (waitpid(kids[i], NULL, 0) < 0 && errno == EINTR)
			;
	free(kids);

	/* With the children gone the limit must allow a fork again. */
	pid_t pid = fork();

	if (pid == 0)
		_exit(0);
	if (pid < 0) {
		r->again_err = errno;
		return;
	}
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

static void emit_fork(const struct fork_result *r)
{
	json_key("fork");
	json_open('{');
	kv_int("requested", r->requested);
	kv_int("ok", r->ok);
	kv_str("errno_name", errno_name(r->err));
	kv_str("again", errno_name(r->again_err));
	json_close('}');
}

/* Allocates and writes every page of mb megabytes. */
static int alloc_probe(long mb)
{
	size_t len = (size_t)mb << 20;
	volatile char *p = malloc(len);

	if (!p)
		return 0;
	for (size_t i = 0; i < len; i += 4096)
		p[i] = 1;
	return 1;
}

/* Never returns: rewrites an increasing counter every 10 ms. */
static void count_to(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	struct timespec tick = { 0, 10 * 1000 * 1000 };
	char line[32];

	if (fd < 0) {
		fprintf(stderr, "checker: open %s: %s\n", path, errno_name(errno));
		_exit(126);
	}
	for (unsigned long n = 1;; n++) {
		int len = snprintf(line, sizeof(line), "%020lu\n", n);

		if (pwrite(fd, line, (size_t)len, 0) != len) {
			fprintf(stderr, "checker: write %s: %s\n", path, errno_name(errno));
			_exit(126);
		}
		nanosleep(&tick, NULL);
	}
}

/* ------------------------------------------------------------------ */
/* command line and exit behaviour                                     */

static int parse_signal(const char *s)
{
	static const struct {
		const char *name;
		int sig;
	} sigs[] = {
		{ "HUP", SIGHUP }, { "INT", SIGINT }, { "QUIT", SIGQUIT },
		{ "ILL", SIGILL }, { "TRAP", SIGTRAP }, { "ABRT", SIGABRT },
		{ "BUS", SIGBUS }, { "FPE", SIGFPE }, { "KILL", SIGKILL },
		{ "USR1", SIGUSR1 }, { "SEGV", SIGSEGV }, { "USR2", SIGUSR2 },
		{ "PIPE", SIGPIPE }, { "ALRM", SIGALRM }, { "TERM", SIGTERM },
	};

	if (strncmp(s, "SIG", 3) == 0)
		s += 3;
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		if (strcmp(s, sigs[i].name) == 0)
			return sigs[i].sig;
	return atoi(s);
}

static void exit_on_signal(int sig)
{
	_exit(128 + sig);
}

/*
 * As PID 1 of a pid namespace, signals without a handler are discarded
 * (even our own raise()), so a sleeping checker would ignore the runtime's
 * default SIGTERM.  Exiting with the shell convention keeps `kill` usable.
 */
static void install_exit_handlers(void)
{
	static const int sigs[] = { SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2 };

	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		signal(sigs[i], exit_on_signal);
}

static void sleep_seconds(double seconds)
{
	struct timespec ts;

	if (seconds <= 0)
		return;
	ts.tv_sec = (time_t)seconds;
	ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/*
 * Dies by the given signal.  PID 1 ignores even self-sent signals, but
 * signals forced by a real CPU fault still kill it, so SEGV/BUS/FPE/ILL are
 * produced that way (with core dumps disabled).
 */
static void kill_self(int sig)
{
	struct rlimit no_core = { 0, 0 };
	volatile int zero = 0;

	setrlimit(RLIMIT_CORE, &no_core);
	signal(sig, SIG_DFL);
	raise(sig);
	switch (sig) {
	case SIGSEGV:
		*(volatile int *)(uintptr_t)zero = 1;
		break;
	case SIGFPE:
		zero = 1 / zero;
		break;
	case SIGILL:
		__asm__ volatile("ud2");
		break;
	}
	fprintf(stderr, "checker: signal %d did not kill pid %d\n", sig, getpid());
	_exit(125);
}

/* --sched: scheduler policy/nice/priority, I/O priority, personality. */
struct checker_sched_attr {
	uint32_t size, policy;
	uint64_t flags;
	int32_t nice;
	uint32_t priority;
	uint64_t runtime, deadline, period;
	uint32_t util_min, util_max;
};

static void emit_sched(void)
{
	struct checker_sched_attr a;
	long ret;

	memset(&a, 0, sizeof(a));
	json_key("sched");
	json_open('{');
	ret = syscall(SYS_sched_getattr, 0, &a, sizeof(a), 0);
	if (ret == 0) {
		kv_int("policy", a.policy);
		kv_int("nice", a.nice);
		kv_int("priority", a.priority);
		kv_int("flags", (long long)a.flags);
	} else {
		add_error("sched_getattr: %s", strerror(errno));
	}
	/* IOPRIO_WHO_PROCESS, self */
	ret = syscall(SYS_ioprio_get, 1, 0);
	kv_int("ioprio", ret < 0 ? -errno : ret);
	ret = syscall(SYS_personality, 0xffffffffUL);
	kv_int("personality", ret < 0 ? -errno : ret);
	json_close('}');
}

/* --clocks: the clocks a time namespace offsets. */
static void emit_clocks(void)
{
	static const struct {
		const char *name;
		clockid_t id;
	} clocks[] = { { "monotonic", CLOCK_MONOTONIC }, { "boottime", CLOCK_BOOTTIME } };

	json_key("clocks");
	json_open('{');
	for (size_t i = 0; i < sizeof(clocks) / sizeof(clocks[0]); i++) {
		struct timespec ts;

		if (clock_gettime(clocks[i].id, &ts) == 0) {
			kv_int(clocks[i].name, ts.tv_sec);
		} else {
			add_error("clock_gettime %s: %s", clocks[i].name, errno_name(errno));
			json_key(clocks[i].name);
			json_str(NULL);
		}
	}
	kv_file("uptime", "/proc/uptime");
	json_close('}');
}

/* --children N: children that live as long as the checker does. */
static int spawn_children(int n, pid_t *pids, int max)
{
	int made = 0;
	pid_t parent = getpid();

	for (int i = 0; i < n && made < max; i++) {
		pid_t pid = fork();

		if (pid == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (getppid() != parent)
				_exit(0); /* the checker was already gone */
			for (;;)
				pause();
		}
		if (pid < 0) {
			add_error("fork: %s", errno_name(errno));
			break;
		}
		pids[made++] = pid;
	}
	return made;
}

/* ------------------------------------------------------------------ */
/* exe-write: CVE-2019-5736's moves, made from inside the container    */

/*
 * Every way a container process had to get write access to a runtime's
 * binary through /proc/PID/exe: open it O_WRONLY, or open it O_PATH or
 * O_RDONLY and re-open /proc/self/fd/N O_WRONLY, at once and again once
 * the target has exec'd something else or exited (the fd kept meanwhile).
 * An open that succeeds is followed by pwrite of 0x7f at offset 0, the
 * first byte of every ELF file: proof of write access that changes no
 * byte (though it does touch the file's mtime).
 */

#define MAX_TARGETS 256
#define MAX_ATTEMPTS 2048
#define LINK_MAX_LEN 512
#define N_HELD 2

struct exe_target {
	int pid;
	char link[LINK_MAX_LEN];	/* readlink of /proc/PID/exe, or "" */
	int link_err;			/* its errno, 0 if it worked */
	int held[N_HELD];		/* the O_PATH and O_RDONLY fds, or -1 */
};

struct exe_attempt {
	int pid;
	char link[LINK_MAX_LEN];
	int link_err;
	const char *how;	/* open-wronly, path-reopen, rdonly-reopen */
	const char *when;	/* live, after-exec, final */
	const char *stage;	/* open, reopen, write */
	int err;		/* 0: the write went through */
};

static const char *const held_how[N_HELD] = { "path-reopen", "rdonly-reopen" };
static const int held_flags[N_HELD] = { O_PATH, O_RDONLY };
static struct exe_target targets[MAX_TARGETS];
static int n_targets;
static struct exe_attempt attempts[MAX_ATTEMPTS];
static int n_attempts;
static long scan_rounds;

static void exe_identity(int pid, char *link, int *err)
{
	char path[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/exe", pid);
	n = readlink(path, link, LINK_MAX_LEN - 1);
	*err = n < 0 ? errno : 0;
	link[n < 0 ? 0 : n] = '\0';
}

static void record(const struct exe_target *t, const char *how, const char *when,
		   const char *stage, int err)
{
	struct exe_attempt *a;

	if (n_attempts >= MAX_ATTEMPTS) {
		add_error("too many attempts");
		return;
	}
	a = &attempts[n_attempts++];
	a->pid = t->pid;
	memcpy(a->link, t->link, sizeof(a->link));
	a->link_err = t->link_err;
	a->how = how;
	a->when = when;
	a->stage = stage;
	a->err = err;
}

/* open(path, O_WRONLY) and the harmless write: 0, or the errno and stage. */
static int open_and_write(const char *path, const char *open_stage, const char **stage)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	int err = 0;

	if (fd < 0) {
		*stage = open_stage;
		return errno;
	}
	*stage = "write";
	if (pwrite(fd, "\x7f", 1, 0) != 1)
		err = errno ? errno : EIO;
	close(fd);
	return err;
}

/* Re-opens each held fd of t for writing. */
static void retry_held(struct exe_target *t, const char *when)
{
	for (int i = 0; i < N_HELD; i++) {
		char path[64];
		const char *stage;
		int err;

		if (t->held[i] < 0)
			continue;
		snprintf(path, sizeof(path), "/proc/self/fd/%d", t->held[i]);
		err = open_and_write(path, "reopen", &stage);
		record(t, held_how[i], when, stage, err);
	}
}

/* The attempts on a running target; its fds are kept in t->held. */
static void attack_live(struct exe_target *t)
{
	char path[64];
	const char *stage;
	int err;

	snprintf(path, sizeof(path), "/proc/%d/exe", t->pid);
	err = open_and_write(path, "open", &stage);
	record(t, "open-wronly", "live", stage, err);
	for (int i = 0; i < N_HELD; i++) {
		t->held[i] = open(path, held_flags[i] | O_CLOEXEC);
		if (t->held[i] < 0)
			record(t, held_how[i], "live", "open", errno);
	}
	retry_held(t, "live");
}

static void emit_exe_report(const char *mode)
{
	char own[LINK_MAX_LEN];
	int own_err;

	exe_identity(getpid(), own, &own_err);
	json_open('{');
	kv_str("mode", mode);
	kv_str("self_link", own);
	kv_int("rounds", scan_rounds);
	json_key("attempts");
	json_open('[');
	for (int i = 0; i < n_attempts; i++) {
		const struct exe_attempt *a = &attempts[i];

		json_open('{');
		kv_int("pid", a->pid);
		kv_str("link", a->link);
		kv_str("link_errno", errno_name(a->link_err));
		kv_str("how", a->how);
		kv_str("when", a->when);
		kv_str("stage", a->stage);
		kv_int("errno", a->err);
		kv_str("errno_name", errno_name(a->err));
		json_close('}');
	}
	json_close(']');
	emit_string_list("errors", errors, n_errors);
	json_close('}');
	putchar('\n');
	fflush(stdout);
}

static double now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * exe-write pid PID [--until FILE]: attacks PID's exe now, prints "ready",
 * waits until PID runs another image (or is gone) and FILE exists, then
 * re-opens the kept fds.
 */
static int exe_write_pid(int pid, const char *until)
{
	struct exe_target *t = &targets[n_targets++];
	char link[LINK_MAX_LEN];
	int err;
	double deadline = now_seconds() + 60;

	t->pid = pid;
	exe_identity(pid, t->link, &t->link_err);
	attack_live(t);
	puts("ready");
	fflush(stdout);
	for (;;) {
		exe_identity(pid, link, &err);
		if (err == ENOENT || err == ESRCH || err != t->link_err || strcmp(link, t->link) != 0)
			break;
		if (now_seconds() > deadline) {
			add_error("pid %d still runs the same image after 60 s", pid);
			break;
		}
		sleep_seconds(0.005);
	}
	while (until && access(until, F_OK) != 0) {
		if (now_seconds() > deadline) {
			add_error("%s did not appear within 60 s", until);
			break;
		}
		sleep_seconds(0.005);
	}
	retry_held(t, "after-exec");
	emit_exe_report("pid");
	return 0;
}

/* exe-write self PROG: keeps /proc/self/exe open O_PATH across exec of PROG. */
static int exe_write_self(const char *prog)
{
	char num[16];
	int fd = open("/proc/self/exe", O_PATH);

	if (fd < 0) {
		add_error("open /proc/self/exe O_PATH: %s", errno_name(errno));
	} else {
		snprintf(num, sizeof(num), "%d", fd);
		execl(prog, "checker", "exe-write", "fd", num, (char *)NULL);
		add_error("exec %s: %s", prog, errno_name(errno));
	}
	emit_exe_report("self");
	return 1;
}

/* exe-write fd N: the second half of `self`, in the image exec'd. */
static int exe_write_fd(int fd)
{
	struct exe_target *t = &targets[n_targets++];
	char path[64];
	ssize_t n;

	t->pid = getpid();
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, t->link, sizeof(t->link) - 1);
	t->link_err = n < 0 ? errno : 0;
	t->link[n < 0 ? 0 : n] = '\0';
	t->held[0] = fd;
	t->held[1] = -1;
	retry_held(t, "after-exec");
	emit_exe_report("self");
	return 0;
}

static struct exe_target *find_target(int pid, const char *link, int err)
{
	for (int i = 0; i < n_targets; i++)
		if (targets[i].pid == pid && targets[i].link_err == err && strcmp(targets[i].link, link) == 0)
			return &targets[i];
	return NULL;
}

/*
 * One pass over /proc: attacks each process image not seen before (a pid
 * that execs is a new one), but not our own kind, and says so on stdout
 * ("attacked PID LINK_ERRNO LINK").
 */
static void scan_once(const char *own_link)
{
	DIR *d = opendir("/proc");
	struct dirent *de;

	if (!d) {
		add_error("opendir /proc: %s", errno_name(errno));
		return;
	}
	while ((de = readdir(d))) {
		char link[LINK_MAX_LEN];
		int pid = atoi(de->d_name), err;
		struct exe_target *t;

		if (pid <= 0 || pid == getpid())
			continue;
		exe_identity(pid, link, &err);
		if (err == ENOENT || err == ESRCH || (err == 0 && strcmp(link, own_link) == 0))
			continue;
		if (find_target(pid, link, err))
			continue;
		if (n_targets >= MAX_TARGETS) {
			add_error("too many targets");
			break;
		}
		t = &targets[n_targets++];
		t->pid = pid;
		memcpy(t->link, link, sizeof(t->link));
		t->link_err = err;
		attack_live(t);
		printf("attacked %d %s %s\n", pid, errno_name(err), link);
		fflush(stdout);
	}
	closedir(d);
	scan_rounds++;
}

/*
 * exe-write scan [--until FILE]: attacks every new process image in our
 * pid namespace until FILE exists, then re-opens all kept fds.
 */
static int exe_write_scan(int argc, char **argv)
{
	const char *until = NULL;
	char own[LINK_MAX_LEN];
	int own_err;
	double deadline = now_seconds() + 120;

	for (int i = 0; i < argc; i++) {
		const char *next = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(argv[i], "--until") == 0 && next) {
			until = argv[++i];
		} else {
			add_error("unknown argument: %s", argv[i]);
		}
	}
	install_exit_handlers();
	exe_identity(getpid(), own, &own_err);
	while (!until || access(until, F_OK) != 0) {
		if (now_seconds() > deadline) {
			add_error("%s did not appear within 120 s", until ? until : "(nothing)");
			break;
		}
		scan_once(own);
		sleep_seconds(0.0002);
	}
	for (int i = 0; i < n_targets; i++)
		retry_held(&targets[i], "final");
	emit_exe_report("scan");
	/* As pid 1, exiting would kill the other attackers before they report. */
	while (getpid() == 1)
		pause();
	return 0;
}

/*
 * exe-write pid PID [--until FILE] | self PROG | fd N | scan [--until FILE]
 */
static int exe_write_main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "pid") == 0)
		return exe_write_pid(atoi(argv[2]), NULL);
	if (argc == 5 && strcmp(argv[1], "pid") == 0 && strcmp(argv[3], "--until") == 0)
		return exe_write_pid(atoi(argv[2]), argv[4]);
	if (argc >= 3 && strcmp(argv[1], "self") == 0)
		return exe_write_self(argv[2]);
	if (argc >= 3 && strcmp(argv[1], "fd") == 0)
		return exe_write_fd(atoi(argv[2]));
	if (argc >= 2 && strcmp(argv[1], "scan") == 0)
		return exe_write_scan(argc - 2, argv + 2);
	add_error("usage: exe-write pid PID [--until FILE] | self PROG | fd N | scan [--until FILE]");
	emit_exe_report("usage");
	return 2;
}

int main(int argc, char **argv)
{
	static int fds[MAX_FDS];
	static char fd_targets[MAX_FDS][PATH_MAX];
	const char *paths[MAX_PATHS];
	static struct try_result tries[MAX_TRIES];
	int n_tries = 0, n_paths = 0, exit_code = 0, kill_sig = 0;
	struct fork_result fork_res = { -1, 0, 0, 0 };
	long alloc_mb = -1;
	int alloc_ok = 0;
	const char *count_file = NULL;
	int want_sched = 0, want_clocks = 0, n_children = 0, want_children = 0;
	static pid_t children[64];
	double sleep_for = 0;
	extern char **environ;
	int n_fds;

	if (argc > 1 && strcmp(argv[1], "exe-write") == 0)
		return exe_write_main(argc - 1, argv + 1);
	n_fds = collect_fds(fds, fd_targets);

	for (int i = 1; i < argc; i++) {
		const char *next = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(argv[i], "--path") == 0 && next && n_paths < MAX_PATHS) {
			paths[n_paths++] = next;
			i++;
		} else if (strcmp(argv[i], "--try") == 0 && next && n_tries < MAX_TRIES) {
			tries[n_tries++].spec = next;
			i++;
		} else if (strcmp(argv[i], "--exit") == 0 && next) {
			exit_code = atoi(next);
			i++;
		} else if (strcmp(argv[i], "--sleep") == 0 && next) {
			sleep_for = strtod(next, NULL);
			i++;
		} else if (strcmp(argv[i], "--kill-self") == 0 && next) {
			kill_sig = parse_signal(next);
			i++;
		} else if (strcmp(argv[i], "--fork") == 0 && next) {
			fork_res.requested = atoi(next);
			i++;
		} else if (strcmp(argv[i], "--alloc") == 0 && next) {
			alloc_mb = atol(next);
			i++;
		} else if (strcmp(argv[i], "--sched") == 0) {
			want_sched = 1;
		} else if (strcmp(argv[i], "--clocks") == 0) {
			want_clocks = 1;
		} else if (strcmp(argv[i], "--children") == 0 && next) {
			want_children = atoi(next);
			i++;
		} else if (strcmp(argv[i], "--count-to") == 0 && next) {
			count_file = next;
			i++;
		} else {
			add_error("unknown argument: %s", argv[i]);
		}
	}
	if (sleep_for > 0 || count_file)
		install_exit_handlers();
	for (int i = 0; i < n_tries; i++)
		try_syscall(&tries[i]);
	if (fork_res.requested >= 0)
		fork_probe(&fork_res);
	if (alloc_mb >= 0)
		alloc_ok = alloc_probe(alloc_mb);
	if (want_children > 0)
		n_children = spawn_children(want_children, children, 64);

	json_open('{');
	emit_string_list("args", argv, argc);
	emit_uts();
	emit_ids();
	emit_cwd();
	emit_string_list("env", environ, -1);
	emit_status_fields();
	emit_rlimits();
	emit_oom_score_adj();
	kv_file("uid_map", "/proc/self/uid_map");
	kv_file("gid_map", "/proc/self/gid_map");
	emit_namespaces();
	emit_fds(fds, fd_targets, n_fds);
	emit_mounts();
	json_key("paths");
	json_open('[');
	for (int i = 0; i < n_paths; i++)
		emit_path(paths[i]);
	json_close(']');
	emit_tries(tries, n_tries);
	if (want_sched)
		emit_sched();
	if (want_clocks)
		emit_clocks();
	if (want_children > 0) {
		json_key("children");
		json_open('[');
		for (int i = 0; i < n_children; i++)
			json_int(children[i]);
		json_close(']');
	}
	if (fork_res.requested >= 0)
		emit_fork(&fork_res);
	if (alloc_mb >= 0) {
		json_key("alloc");
		json_open('{');
		kv_int("mb", alloc_mb);
		json_key("ok");
		json_bool(alloc_ok);
		json_close('}');
	}
	emit_string_list("errors", errors, n_errors);
	json_close('}');
	putchar('\n');
	fflush(stdout);

	if (count_file)
		count_to(count_file);
	sleep_seconds(sleep_for);
	if (kill_sig)
		kill_self(kill_sig);
	return exit_code;
}
