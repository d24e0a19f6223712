// SPDX-License-Identifier: GPL-2.0-only
/*
 * kmt-bench: the cost of tracing, measured in the guest (run by init for the `bench` workload).
 *
 *   kmt-bench OPS [ROUNDS]
 *
 * One operation is a fixed, allocation-heavy sequence of system calls: pipe + close + close;
 * open(O_CREAT) + write 1 KiB + close + unlink on tmpfs; fork + _exit + waitpid. Each round
 * times OPS operations (clock_gettime, CLOCK_MONOTONIC) once in every mode, the modes' order
 * rotated from round to round so that none always runs first:
 *
 *   off        no tracing
 *   kmemtrace  debugfs kmemtrace/enabled = 1, init's collector draining the relay buffers to
 *              the 9p share as in every run
 *   ftrace     the six kmem trace events (kmalloc, kmem_cache_alloc, kfree, kmem_cache_free,
 *              mm_page_alloc, mm_page_free) into tracefs's ring buffer, one reader per CPU
 *              draining per_cpu/cpuN/trace_pipe_raw as `trace-cmd record` does, into
 *              /mnt/kmt/ftrace-cpuN: the same 9p share kmemtrace's collector writes to, so that
 *              both pay the same way out (the harness reports the files as not its own and
 *              deletes them); the ring buffer is sized like kmemtrace's relay buffers (10 MiB
 *              per CPU)
 *   ftrace-null  the same, drained to /dev/null: the tracer without the cost of its way out
 *   allocprof  memory allocation profiling (/proc/sys/vm/mem_profiling = 1, 0 in every other
 *              mode), only on a kernel built with it (kernel/config/extra/mem-alloc-profiling.config)
 *
 * It prints one line per round and mode, which the host reads from guest.log:
 *
 *   kmt-bench: round=R mode=M ops=N ns=T lost=L
 *
 * (L: events ftrace's ring buffer overwrote or dropped in that window; 0 for the other modes,
 * whose losses the trace itself reports), then `kmt-bench: done`. Exit 0, or 1 with a reason.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KMT_DIR "/sys/kernel/debug/kmemtrace"
#define TRACEFS "/sys/kernel/tracing"
#define SHARE "/mnt/kmt"
#define MAX_CPUS 64

static const char *const events[] = {
	"kmalloc", "kmem_cache_alloc", "kfree", "kmem_cache_free", "mm_page_alloc", "mm_page_free",
};

#define MEM_PROFILING "/proc/sys/vm/mem_profiling"

enum mode { OFF, KMEMTRACE, FTRACE, FTRACE_NULL, ALLOCPROF, NMODES };
static const char *const mode_name[NMODES] = {
	"off", "kmemtrace", "ftrace", "ftrace-null", "allocprof",
};

static pid_t readers[MAX_CPUS];
static int nreaders;

static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stdout, "kmt-bench: error: ");
	va_start(ap, fmt);
	vfprintf(stdout, fmt, ap);
	va_end(ap);
	fprintf(stdout, "\n");
	fflush(stdout);
	for (int i = 0; i < nreaders; i++)
		kill(readers[i], SIGKILL);
	exit(1);
}

static void put(const char *path, const char *value)
{
	int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	size_t len = strlen(value);

	if (fd < 0 || write(fd, value, len) != (ssize_t)len)
		die("write %s to %s: %s", value, path, strerror(errno));
	close(fd);
}

static long long now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* One operation: the system calls whose allocations every mode sees. */
static void operation(long i)
{
	static char data[1024];
	char path[64];
	int p[2], fd, status;
	pid_t pid;

	if (pipe(p))
		die("pipe: %s", strerror(errno));
	close(p[0]);
	close(p[1]);
	snprintf(path, sizeof(path), "/tmp/kmt-bench-%ld", i % 16);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, data, sizeof(data)) != (ssize_t)sizeof(data) || close(fd) ||
	    unlink(path))
		die("%s: %s", path, strerror(errno));
	pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0)
		_exit(0);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			die("waitpid: %s", strerror(errno));
}

static int online_cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : n > MAX_CPUS ? MAX_CPUS : (int)n;
}

static volatile sig_atomic_t reader_stop;

static void on_term(int sig)
{
	(void)sig;
	reader_stop = 1;
}

/*
 * A reader per CPU: trace_pipe_raw's pages copied to the share (or /dev/null), until SIGTERM;
 * it then says how many bytes it read.
 */
static void start_readers(int to_share)
{
	int cpus = online_cpus();

	for (int cpu = 0; cpu < cpus; cpu++) {
		pid_t pid = fork();

		if (pid < 0)
			die("fork a reader: %s", strerror(errno));
		if (pid == 0) {
			struct sigaction sa = { .sa_handler = on_term };
			static char page[65536];
			long long total = 0;
			char in[96];
			int fi, fo;
			ssize_t n;

			sigaction(SIGTERM, &sa, NULL);
			snprintf(in, sizeof(in), TRACEFS "/per_cpu/cpu%d/trace_pipe_raw", cpu);
			fi = open(in, O_RDONLY | O_CLOEXEC);
			char out[64] = "/dev/null";

			if (to_share)
				snprintf(out, sizeof(out), SHARE "/ftrace-cpu%d", cpu);
			fo = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
			if (fi < 0 || fo < 0)
				_exit(2);
			while (!reader_stop) {
				n = read(fi, page, sizeof(page));
				if (n > 0) {
					total += n;
					if (write(fo, page, n) != n)
						_exit(3);
				} else if (n == 0 || errno != EINTR) {
					break;
				}
			}
			printf("kmt-bench: ftrace reader cpu%d read %lld bytes\n", cpu, total);
			_exit(0);
		}
		readers[nreaders++] = pid;
	}
}

static void stop_readers(void)
{
	for (int i = 0; i < nreaders; i++) {
		kill(readers[i], SIGTERM);
		waitpid(readers[i], NULL, 0);
	}
	nreaders = 0;
}

/* Events the ring buffer lost since its last reset: the sum of "overrun" and "dropped events". */
static long ftrace_lost(void)
{
	long lost = 0;

	for (int cpu = 0; cpu < online_cpus(); cpu++) {
		char path[96], line[128];
		FILE *f;

		snprintf(path, sizeof(path), TRACEFS "/per_cpu/cpu%d/stats", cpu);
		f = fopen(path, "re");
		if (!f)
			die("open %s: %s", path, strerror(errno));
		while (fgets(line, sizeof(line), f)) {
			long v;

			if (sscanf(line, "overrun: %ld", &v) == 1 ||
			    sscanf(line, "dropped events: %ld", &v) == 1)
				lost += v;
		}
		fclose(f);
	}
	return lost;
}

static void ftrace_events(const char *on)
{
	for (size_t i = 0; i < sizeof(events) / sizeof(events[0]); i++) {
		char path[128];

		snprintf(path, sizeof(path), TRACEFS "/events/kmem/%s/enable", events[i]);
		put(path, on);
	}
}

static void setup_ftrace(void)
{
	struct stat st;

	if (stat(TRACEFS "/events", &st) &&
	    mount("tracefs", TRACEFS, "tracefs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL))
		die("mount tracefs on %s: %s (no CONFIG_FTRACE?)", TRACEFS, strerror(errno));
	put(TRACEFS "/tracing_on", "0");
	put(TRACEFS "/buffer_size_kb", "10240");
	put(TRACEFS "/trace", "");
}

/* Runs one timed window in `m`; returns nanoseconds, and the events ftrace lost in *lost. */
static long long window(enum mode m, long ops, long *lost)
{
	long long t0, t;

	*lost = 0;
	if (m == KMEMTRACE)
		put(KMT_DIR "/enabled", "1");
	if (m == ALLOCPROF)
		put(MEM_PROFILING, "1");
	if (m == FTRACE || m == FTRACE_NULL) {
		put(TRACEFS "/trace", "");
		ftrace_events("1");
		start_readers(m == FTRACE);
		put(TRACEFS "/tracing_on", "1");
	}
	t0 = now_ns();
	for (long i = 0; i < ops; i++)
		operation(i);
	t = now_ns() - t0;
	if (m == KMEMTRACE)
		put(KMT_DIR "/enabled", "0");
	if (m == ALLOCPROF)
		put(MEM_PROFILING, "0");
	if (m == FTRACE || m == FTRACE_NULL) {
		put(TRACEFS "/tracing_on", "0");
		ftrace_events("0");
		*lost = ftrace_lost();
		/* Let the readers take what is left, then stop them. */
		usleep(100000);
		stop_readers();
		for (int cpu = 0; m == FTRACE && cpu < online_cpus(); cpu++) {
			char path[64];

			snprintf(path, sizeof(path), SHARE "/ftrace-cpu%d", cpu);
			unlink(path);
		}
	}
	return t;
}

int main(int argc, char **argv)
{
	long ops = argc > 1 ? atol(argv[1]) : 200;
	long rounds = argc > 2 ? atol(argv[2]) : 5;
	int nmodes = access(MEM_PROFILING, W_OK) ? ALLOCPROF : NMODES;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (ops < 1 || rounds < 1)
		die("usage: kmt-bench OPS [ROUNDS] (both at least 1)");
	/* init switched kmemtrace on before starting its collector: every mode starts off. */
	put(KMT_DIR "/enabled", "0");
	if (nmodes == NMODES)
		put(MEM_PROFILING, "0");
	setup_ftrace();
	/* A warm-up, untimed: the first fork and tmpfs file of a boot cost more than the rest. */
	for (long i = 0; i < 16; i++)
		operation(i);
	for (long r = 0; r < rounds; r++) {
		for (int k = 0; k < nmodes; k++) {
			enum mode m = (enum mode)((k + r) % nmodes);
			long lost;
			long long ns = window(m, ops, &lost);

			printf("kmt-bench: round=%ld mode=%s ops=%ld ns=%lld lost=%ld\n", r + 1,
			       mode_name[m], ops, ns, lost);
		}
	}
	printf("kmt-bench: done\n");
	return 0;
}
