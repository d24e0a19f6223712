// SPDX-License-Identifier: GPL-2.0-only
/*
 * toggle - an example workload for `kmt run --exec` that switches tracing off and on again N
 * times (the first argument, default 100) while both CPUs allocate and the collector reads.
 *
 * Before the fix (kernel/README.md, "Nothing lost"), with N = 300 it damaged 1 to 2 of every 3
 * to 6 x86_64 boots: the tracer flushed relay at every stop, which closed sub-buffers holding no
 * record, and relay's reader then returned a CPU's newest records again and again. The stop no
 * longer flushes, relay consumes such sub-buffers, and every CPU file must hold exactly the
 * bytes the kernel logged (meta.json's logged_bytes): e2e::<arch>::toggle checks it.
 *
 *   gcc -static -O2 -o toggle guest-tools/examples/toggle.c
 *   kmt run --exec ./toggle --exec-arg 300
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define ENABLED "/sys/kernel/debug/kmemtrace/enabled"

static int put(const char *value)
{
	int fd = open(ENABLED, O_WRONLY | O_CLOEXEC);
	int ok = fd >= 0 && write(fd, value, strlen(value)) == (ssize_t)strlen(value);

	if (fd >= 0)
		close(fd);
	return ok ? 0 : -1;
}

static void churn(int rounds)
{
	for (int i = 0; i < rounds; i++) {
		int fd[2];

		if (pipe(fd) == 0) {
			close(fd[0]);
			close(fd[1]);
		}
	}
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? strtol(argv[1], NULL, 10) : 100;
	pid_t child = fork();

	if (child < 0) {
		perror("toggle: fork");
		return 1;
	}
	if (child == 0) {
		/* Allocations on the other CPU meanwhile, until the parent is done. */
		for (;;)
			churn(16);
	}
	for (long i = 0; i < n; i++) {
		churn(8);
		if (put("0") || put("1")) {
			perror("toggle: " ENABLED);
			kill(child, 9);
			return 1;
		}
	}
	kill(child, 9);
	waitpid(child, NULL, 0);
	printf("toggle: switched tracing off and on %ld times\n", n);
	return 0;
}
