// SPDX-License-Identifier: GPL-2.0-only
/*
 * toggle - an example workload for `kmt run --exec` that switches tracing off and on again N
 * times (the first argument, default 100) while both CPUs allocate and the collector reads.
 *
 * It reproduces an open defect: on 6.12/SLUB x86_64 under TCG, with N = 300, 2 boots of 3 came
 * back with a damaged trace (`kmemtrace check`: records out of sequence in one CPU's file, a run
 * of a few hundred bytes of older records read again and again). Holding the relay file's inode
 * lock around relay_flush()'s switch (the read side's lock) did not cure it (2 boots of 5 still
 * damaged), so the cause is elsewhere; see the README's "Known defects". A run that switches
 * tracing off once (every other workload) shows it rarely: once in this project's history, as
 * 1 MiB of zeros after 13 KiB of records.
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
