/*
 * pseudofs_probe: what an unprivileged process inside a container can do
 * with procfs and sysfs through a user namespace of its own.
 *
 * It unshares user, mount, pid and network namespaces (mapping its uid to
 * 0), forks into the new pid namespace and prints one JSON object:
 *   "full":    mount points of every procfs/sysfs mount of a filesystem's
 *              root in the mount namespace, reachable or not (listmount +
 *              statmount from the namespace's root mount, Linux 6.8+;
 *              "listmount" is "ENOSYS" before that).
 *              Empty strings are mounts outside the process's root.
 *   "proc", "sysfs": the result of mounting a fresh one on /proc and /sys
 *              ("ok" or the errno name); the kernel allows it only if a
 *              fully visible one already exists in the mount namespace.
 * Build: gcc -static -O2 -o pseudofs_probe pseudofs_probe.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define NR_statmount 457
#define NR_listmount 458
#define LSMT_ROOT 0xffffffffffffffffULL
#define STATMOUNT_SB_BASIC 0x1U
#define STATMOUNT_MNT_BASIC 0x2U
#define STATX_MNT_ID_UNIQUE 0x4000U
#define STATMOUNT_MNT_ROOT 0x8U
#define STATMOUNT_MNT_POINT 0x10U
#define PROC_MAGIC 0x9fa0ULL
#define SYSFS_MAGIC 0x62656572ULL
#define MAX_MOUNTS 4096

struct mnt_id_req {
	uint32_t size;
	uint32_t spare;
	uint64_t mnt_id;
	uint64_t param;
};

struct statmount {
	uint32_t size;
	uint32_t mnt_opts;
	uint64_t mask;
	uint32_t sb_dev_major;
	uint32_t sb_dev_minor;
	uint64_t sb_magic;
	uint32_t sb_flags;
	uint32_t fs_type;
	uint64_t mnt_id;
	uint64_t mnt_parent_id;
	uint32_t mnt_id_old;
	uint32_t mnt_parent_id_old;
	uint64_t mnt_attr;
	uint64_t mnt_propagation;
	uint64_t mnt_peer_group;
	uint64_t mnt_master;
	uint64_t propagate_from;
	uint32_t mnt_root;
	uint32_t mnt_point;
	uint64_t spare2[50];
	char str[];
};

static const char *err_name(int e)
{
	const char *n = strerrorname_np(e);

	return n ? n : "unknown";
}

static void write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY);

	if (fd < 0 || write(fd, text, strlen(text)) < 0) {
		printf("{\"error\":\"%s: %s\"}\n", path, err_name(errno));
		exit(1);
	}
	close(fd);
}

static long list_children(uint64_t id, uint64_t *out, size_t n)
{
	struct mnt_id_req req = { .size = 24, .mnt_id = id };

	return syscall(NR_listmount, &req, out, n, 0);
}

static uint64_t buf[8192];

/*
 * The mount namespace's root mount: listmount(LSMT_ROOT) starts at the
 * process's root and would miss what lies outside it.
 */
static int ns_root(uint64_t *id)
{
	struct statmount *sm = (struct statmount *)buf;
	struct statx stx;

	if (statx(AT_FDCWD, "/", 0, STATX_MNT_ID_UNIQUE, &stx) < 0)
		return -errno;
	if (!(stx.stx_mask & STATX_MNT_ID_UNIQUE))
		return -ENOSYS;
	*id = stx.stx_mnt_id;
	for (int depth = 0; depth < 64; depth++) {
		struct mnt_id_req req = {
			.size = 24, .mnt_id = *id, .param = STATMOUNT_MNT_BASIC
		};

		if (syscall(NR_statmount, &req, sm, sizeof(buf), 0) < 0)
			return -errno;
		if (sm->mnt_parent_id == *id || sm->mnt_parent_id == 0)
			return 0;
		*id = sm->mnt_parent_id;
	}
	return -ELOOP;
}

/* Prints "full":[...] and returns 0, or -errno when listmount fails. */
static int print_full_mounts(void)
{
	static uint64_t ids[MAX_MOUNTS];
	struct statmount *sm = (struct statmount *)buf;
	size_t n = 1, done = 0;
	int first = 1;
	int err = ns_root(&ids[0]);

	if (err)
		return err;
	if (list_children(ids[0], NULL, 0) < 0 && errno == ENOSYS)
		return -ENOSYS;
	/* Breadth first, in case listmount lists direct children only. */
	for (done = 0; done < n && n < MAX_MOUNTS; done++) {
		uint64_t kids[512];
		long k = list_children(ids[done], kids, 512);

		for (long i = 0; i < k && n < MAX_MOUNTS; i++) {
			int seen = 0;

			for (size_t j = 0; j < n && !seen; j++)
				seen = ids[j] == kids[i];
			if (!seen)
				ids[n++] = kids[i];
		}
	}
	printf("\"full\":[");
	for (size_t i = 0; i < n; i++) {
		struct mnt_id_req req = {
			.size = 24,
			.mnt_id = ids[i],
			.param = STATMOUNT_SB_BASIC | STATMOUNT_MNT_ROOT |
				 STATMOUNT_MNT_POINT,
		};

		if (syscall(NR_statmount, &req, sm, sizeof(buf), 0) < 0) {
			printf("%s\"statmount %s\"", first ? "" : ",",
			       err_name(errno));
			first = 0;
			continue;
		}
		if (sm->sb_magic != PROC_MAGIC && sm->sb_magic != SYSFS_MAGIC)
			continue;
		if (!(sm->mask & STATMOUNT_MNT_ROOT) ||
		    strcmp(sm->str + sm->mnt_root, "/") != 0)
			continue;
		printf("%s\"%s %s\"", first ? "" : ",",
		       sm->sb_magic == PROC_MAGIC ? "proc" : "sysfs",
		       (sm->mask & STATMOUNT_MNT_POINT) ? sm->str + sm->mnt_point : "");
		first = 0;
	}
	printf("],");
	return 0;
}

static const char *try_mount(const char *type, const char *target)
{
	return mount(type, target, type, 0, NULL) == 0 ? "ok" : err_name(errno);
}

int main(void)
{
	char map[64];
	uid_t uid = getuid();
	gid_t gid = getgid();
	pid_t pid;
	int status;

	setvbuf(stdout, NULL, _IOFBF, 0);
	if (unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET) < 0) {
		printf("{\"error\":\"unshare: %s\"}\n", err_name(errno));
		return 1;
	}
	write_file("/proc/self/setgroups", "deny");
	snprintf(map, sizeof(map), "0 %u 1", uid);
	write_file("/proc/self/uid_map", map);
	snprintf(map, sizeof(map), "0 %u 1", gid);
	write_file("/proc/self/gid_map", map);

	pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0) {
		int err;

		printf("{");
		err = print_full_mounts();
		printf("\"listmount\":\"%s\",", err ? err_name(-err) : "ok");
		printf("\"proc\":\"%s\",", try_mount("proc", "/proc"));
		printf("\"sysfs\":\"%s\"}\n", try_mount("sysfs", "/sys"));
		fflush(stdout);
		return 0;
	}
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status))
		return 1;
	return WEXITSTATUS(status);
}
