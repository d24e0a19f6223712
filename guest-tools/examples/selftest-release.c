// SPDX-License-Identifier: GPL-2.0-only
/*
 * selftest-release - an example workload for `kmt run --exec`: runs the kernel's known-answer
 * selftest once and then frees its deliberate leak, by writing "run" and then "release" to
 * debugfs kmemtrace/selftest (init has mounted debugfs). The trace then holds the figures of
 * `after_release` in kernel/selftest-expected/<kernel>-<allocator>.json: every allocation of the run freed.
 *
 * Build it static for the guest's architecture, e.g. for ppc64:
 *   powerpc64-linux-gnu-gcc -static -O2 -o selftest-release guest-tools/examples/selftest-release.c
 *   kmt run --arch ppc64 --exec ./selftest-release
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define SELFTEST "/sys/kernel/debug/kmemtrace/selftest"

/* One write of `cmd`: the kernel logs the whole sequence before write() returns. */
static int command(const char *cmd)
{
	int fd = open(SELFTEST, O_WRONLY);
	ssize_t n;

	if (fd < 0) {
		fprintf(stderr, "selftest-release: open %s: %s\n", SELFTEST, strerror(errno));
		return -1;
	}
	n = write(fd, cmd, strlen(cmd));
	if (n != (ssize_t)strlen(cmd)) {
		fprintf(stderr, "selftest-release: write %s to %s: %s\n", cmd, SELFTEST,
			n < 0 ? strerror(errno) : "short write");
		close(fd);
		return -1;
	}
	return close(fd);
}

int main(void)
{
	if (command("run") || command("release"))
		return 1;
	printf("selftest-release: run and release written\n");
	return 0;
}
