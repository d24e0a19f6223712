// SPDX-License-Identifier: GPL-2.0-only
/*
 * empty-flush - an example workload for `kmt run --exec` that makes CPU 1's relay buffer close
 * sub-buffers that hold no record, between two reads of its collector thread, ROUNDS times (the
 * first argument, default 10). It is the deterministic reproducer of the "records read again
 * and again" damage (kernel/README.md, "Nothing lost").
 *
 * Each round, pinned to CPU 0 so that nothing it does logs on CPU 1:
 *   1. a burst of pipe() calls on CPU 1 (a child pinned there), then 300 ms for the collector's
 *      CPU 1 thread to read everything (it polls with a 250 ms timeout and reads anyway);
 *   2. tracing off, on, off, on, off, on: with the tracer of kmt <= 5a833c3 every "off" called
 *      relay_flush(), which closes even an empty sub-buffer, so CPU 1 gets two sub-buffers made of
 *      padding only, back to back, while its reader sleeps;
 *   3. a second burst on CPU 1 and 300 ms.
 * relay's reader skips a padding-only sub-buffer without consuming it and credits the next
 * sub-buffer's bytes to it, so the reader then returns the second burst's W bytes again until
 * its count passes the 512 KiB sub-buffer: floor(524288 / W) extra copies. A correct tracer and
 * relay give cpu1.out exactly the bytes the kernel logged (meta.json's logged_bytes).
 *
 *   gcc -static -O2 -o empty-flush guest-tools/examples/empty-flush.c
 *   kmt run --arch x86_64 --smp 2 --exec ./empty-flush --exec-arg 10
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
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

static int pin(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(0, sizeof(set), &set);
}

static void nap_ms(long ms)
{
	struct timespec t = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&t, &t))
		;
}

/* pipe() and close() on CPU 1, in a child pinned there. */
static int burst_on_cpu1(int pipes)
{
	pid_t child = fork();
	int status;

	if (child < 0)
		return -1;
	if (child == 0) {
		if (pin(1))
			_exit(2);
		for (int i = 0; i < pipes; i++) {
			int fd[2];

			if (pipe(fd) == 0) {
				close(fd[0]);
				close(fd[1]);
			}
		}
		_exit(0);
	}
	if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status))
		return -1;
	return 0;
}

int main(int argc, char **argv)
{
	long rounds = argc > 1 ? strtol(argv[1], NULL, 10) : 10;

	if (sysconf(_SC_NPROCESSORS_ONLN) < 2) {
		fprintf(stderr, "empty-flush: needs 2 CPUs (kmt run --smp 2)\n");
		return 1;
	}
	if (pin(0)) {
		perror("empty-flush: sched_setaffinity");
		return 1;
	}
	for (long r = 0; r < rounds; r++) {
		if (burst_on_cpu1(64)) {
			fprintf(stderr, "empty-flush: burst on CPU 1 failed\n");
			return 1;
		}
		nap_ms(300);
		for (int i = 0; i < 3; i++) {
			if (put("0") || put("1")) {
				perror("empty-flush: " ENABLED);
				return 1;
			}
		}
		if (burst_on_cpu1(10)) {
			fprintf(stderr, "empty-flush: burst on CPU 1 failed\n");
			return 1;
		}
		nap_ms(300);
	}
	printf("empty-flush: %ld rounds of two empty flushes on CPU 1\n", rounds);
	return 0;
}
