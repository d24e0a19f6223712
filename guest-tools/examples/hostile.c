// SPDX-License-Identifier: GPL-2.0-only
/*
 * hostile - a workload for `kmt run --exec` that attacks the host through the 9p share, as a
 * reproducer from a bug report or a pull request's workload could. kmt must take none of it:
 * the e2e trial `e2e::<arch>::hostile_guest` runs it and checks that nothing it plants reaches
 * the output directory and that the host file it points at is never read.
 *
 * Usage: hostile HOST_PATH
 *   HOST_PATH is a file on the host; the program plants links to it on the share.
 *
 * It plants, under /mnt/kmt (the share):
 *   trace/suid-demo   a set-uid-root executable (mode 04755)
 *   trace/cpu7.out    a symbolic link to HOST_PATH (a CPU the guest does not have)
 *   trace/cpu6.out    a FIFO
 *   trace/cpu5.out    a character device (1,3: /dev/null)
 *   trace/cpu4.out    a hard link to the job file
 *   trace/sub/f       a directory the contract does not name, with a file
 *   run-me            an executable (mode 0755)
 *   guest.log         replaced by a symbolic link to HOST_PATH (a name kmt takes)
 *
 * Exit status: 0 when everything was planted, 1 when a step failed (it says which on stderr),
 * 2 on bad usage.
 *
 * Build it static for the guest's architecture, e.g.:
 *   powerpc64-linux-gnu-gcc -static -O2 -o hostile guest-tools/examples/hostile.c
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define SHARE "/mnt/kmt"

static int failed;

static void check(int r, const char *what)
{
	if (r) {
		fprintf(stderr, "hostile: %s: %s\n", what, strerror(errno));
		failed = 1;
	} else {
		printf("hostile: planted %s\n", what);
	}
}

static int make_file(const char *path, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (fd < 0)
		return -1;
	if (write(fd, "#!/bin/sh\nid\n", 13) != 13) {
		close(fd);
		return -1;
	}
	close(fd);
	/* chmod after creation: the umask does not apply. */
	return chmod(path, mode);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: hostile HOST_PATH\n");
		return 2;
	}
	check(make_file(SHARE "/trace/suid-demo", 04755), "trace/suid-demo (04755)");
	check(symlink(argv[1], SHARE "/trace/cpu7.out"), "trace/cpu7.out (symlink)");
	check(mkfifo(SHARE "/trace/cpu6.out", 0644), "trace/cpu6.out (FIFO)");
	check(mknod(SHARE "/trace/cpu5.out", S_IFCHR | 0644, makedev(1, 3)),
	      "trace/cpu5.out (character device)");
	check(link(SHARE "/job", SHARE "/trace/cpu4.out"), "trace/cpu4.out (hard link)");
	check(mkdir(SHARE "/trace/sub", 0755), "trace/sub (directory)");
	check(make_file(SHARE "/trace/sub/f", 0644), "trace/sub/f");
	check(make_file(SHARE "/run-me", 0755), "run-me (0755)");
	/* Last: what it prints goes to guest.log, which init holds open (and keeps writing to). */
	fflush(stdout);
	check(unlink(SHARE "/guest.log") || symlink(argv[1], SHARE "/guest.log"),
	      "guest.log (symlink)");
	fflush(stdout);
	return failed;
}
