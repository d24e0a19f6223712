// SPDX-License-Identifier: GPL-2.0-only
/*
 * pipes - an example workload for `kmt run --exec`: creates and closes N pipes (the first
 * argument, default 64) and says so on stdout (which init sends to the share's guest.log).
 * Each pipe is two allocations in the kernel's alloc_pipe_info(), freed when it is closed.
 *
 * Build it static for the guest's architecture, e.g. for arm64:
 *   aarch64-linux-gnu-gcc -static -O2 -o pipes guest-tools/examples/pipes.c
 *   kmt run --arch arm64 --exec ./pipes --exec-arg 100 --param 2
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	long n = argc > 1 ? strtol(argv[1], NULL, 10) : 64;

	for (long i = 0; i < n; i++) {
		int fd[2];

		if (pipe(fd)) {
			perror("pipes: pipe");
			return 1;
		}
		close(fd[0]);
		close(fd[1]);
	}
	printf("pipes: created and closed %ld pipes\n", n);
	return 0;
}
