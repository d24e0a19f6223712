// SPDX-License-Identifier: GPL-2.0-only
/*
 * kmt-bench: the cost of tracing, measured in the guest (run by init for the `bench` workload).
 *
 *   kmt-bench OPS [ROUNDS]
 *   kmt-bench load SECONDS OUTDIR     (the `load` workload: see "load" below)
 *
 * One operation is a fixed, allocation-heavy sequence of system calls: pipe + close + close;
 * open(O_CREAT) + write 1 KiB + close + unlink on tmpfs; fork + _exit + waitpid. Each round
 * times OPS operations (clock_gettime, CLOCK_MONOTONIC) once in every mode, the modes' order
 * rotated from round to round so that none always runs first:
 *
 *   off        no tracing
 *   kmemtrace  debugfs kmemtrace/enabled = 1, init's collector draining the relay buffers to
 *              the 9p share as in every run
 *   kmemtrace-stacks  the same with kmemtrace/stack_depth = 8 (STACK_DEPTH): every record
 *              carries 8 return addresses, 68 bytes more, and every slab event walks the stack
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
#include <sched.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
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
/* The depth of the kmemtrace-stacks mode: kmt's e2e trials trace pipes with it. */
#define STACK_DEPTH "8"

/* allocprof last: it exists only on kernels built with memory allocation profiling. */
enum mode { OFF, KMEMTRACE, KMEMTRACE_STACKS, FTRACE, FTRACE_NULL, ALLOCPROF, NMODES };
static const char *const mode_name[NMODES] = {
	"off", "kmemtrace", "kmemtrace-stacks", "ftrace", "ftrace-null", "allocprof",
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

/* One operation: the system calls whose allocations every mode sees. `w`: the worker. */
static void operation(int w, long i)
{
	static char data[1024];
	char path[64];
	int p[2], fd, status;
	pid_t pid;

	if (pipe(p))
		die("pipe: %s", strerror(errno));
	close(p[0]);
	close(p[1]);
	snprintf(path, sizeof(path), "/tmp/kmt-bench-%d-%ld", w, i % 16);
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
	if (m == KMEMTRACE_STACKS)
		put(KMT_DIR "/stack_depth", STACK_DEPTH);
	if (m == KMEMTRACE || m == KMEMTRACE_STACKS)
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
		operation(0, i);
	t = now_ns() - t0;
	if (m == KMEMTRACE || m == KMEMTRACE_STACKS)
		put(KMT_DIR "/enabled", "0");
	if (m == KMEMTRACE_STACKS)
		put(KMT_DIR "/stack_depth", "0");
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

/*
 * --- load: the highest event rate the collector drains ---
 *
 * kmt-bench load SECONDS OUTDIR: tracing is on and init's collector drains the relay buffers
 * into OUTDIR (the `load` workload). One worker per online CPU, pinned to it, repeats the
 * operation above at a pace the parent sets, step after step: first as fast as the workers can
 * (step 0), then at 1/8, 2/8 ... 7/8 of that rate. After each step of SECONDS the workers idle
 * until the collector has caught up (the trace files on the share stop growing for 2 s, at most
 * 120 s). A step's line:
 *
 *   kmt-bench: load step=K rate=R ops=N ns=T produced=P written=W settle_ns=S overrun=O
 *
 * R: operations per second per worker (0: as fast as they can); N: operations done in T ns;
 * P: bytes the step added to OUTDIR/cpu<N>.out once the collector caught up, W: of them, bytes
 * written by the step's end (P - W was still in the relay buffers or the collector's own 1 MiB
 * buffers); S: how long catching up took; O: bytes the kernel dropped meanwhile
 * (total_overruns). The host judges which steps were sustained (harness/src/bench.rs).
 */
#define LOAD_STEPS 8
#define SETTLE_QUIET_NS 2000000000LL
#define SETTLE_MAX_NS 120000000000LL

struct pace {
	long step;		/* bumped by the parent for every step: a worker restarts its clock */
	long rate;		/* operations per second per worker; 0 as fast as it can; -1 idle */
	int quit;
	long ops[MAX_CPUS];	/* operations each worker finished in the current step */
};

static struct pace *pace;

static void sleep_ns(long long ns)
{
	struct timespec ts = { ns / 1000000000LL, ns % 1000000000LL };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static void worker(int w, int cpu)
{
	long step = -1, done = 0, i = 0;
	long long t0 = 0;
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set))
		die("pin worker %d to cpu%d: %s", w, cpu, strerror(errno));
	while (!__atomic_load_n(&pace->quit, __ATOMIC_ACQUIRE)) {
		long s = __atomic_load_n(&pace->step, __ATOMIC_ACQUIRE);
		long rate = __atomic_load_n(&pace->rate, __ATOMIC_ACQUIRE);

		if (s != step) {
			step = s;
			done = 0;
			t0 = now_ns();
		}
		if (rate < 0) {
			sleep_ns(10000000);
			continue;
		}
		if (rate > 0) {
			long long early = t0 + done * 1000000000LL / rate - now_ns();

			if (early > 0) {
				sleep_ns(early < 10000000 ? early : 10000000);
				continue;
			}
		}
		operation(w, i++);
		__atomic_store_n(&pace->ops[w], ++done, __ATOMIC_RELEASE);
	}
	_exit(0);
}

/* Bytes the collector has written to OUTDIR/cpu<N>.out so far. */
static long long share_bytes(const char *dir, int cpus)
{
	long long sum = 0;

	for (int cpu = 0; cpu < cpus; cpu++) {
		char path[256];
		struct stat st;

		snprintf(path, sizeof(path), "%s/cpu%d.out", dir, cpu);
		if (!stat(path, &st))
			sum += st.st_size;
	}
	return sum;
}

static long long read_overruns(void)
{
	char buf[32] = "";
	int fd = open(KMT_DIR "/total_overruns", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);

	if (n < 1)
		die("read %s/total_overruns: %s", KMT_DIR, n < 0 ? strerror(errno) : "empty");
	close(fd);
	return atoll(buf);
}

static void check_workers(const pid_t *pids, int n)
{
	for (int w = 0; w < n; w++) {
		int status;

		if (waitpid(pids[w], &status, WNOHANG) == pids[w])
			die("load worker %d ended with status %#x", w, status);
	}
}

/* Waits until the share stops growing; returns its size, and how long it took in *ns. */
static long long settle(const char *dir, int cpus, const pid_t *pids, int n, long long *ns)
{
	long long t0 = now_ns(), last_change = t0, size = share_bytes(dir, cpus);

	while (now_ns() - last_change < SETTLE_QUIET_NS && now_ns() - t0 < SETTLE_MAX_NS) {
		long long s;

		sleep_ns(100000000);
		check_workers(pids, n);
		s = share_bytes(dir, cpus);
		if (s != size) {
			size = s;
			last_change = now_ns();
		}
	}
	*ns = last_change - t0;
	return size;
}

static int load(long seconds, const char *dir)
{
	int cpus = online_cpus();
	long max_rate = 0;
	pid_t pids[MAX_CPUS];

	if (seconds < 1)
		die("usage: kmt-bench load SECONDS OUTDIR (SECONDS at least 1)");
	pace = mmap(NULL, sizeof(*pace), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (pace == MAP_FAILED)
		die("mmap: %s", strerror(errno));
	pace->rate = -1;
	for (int w = 0; w < cpus; w++) {
		pids[w] = fork();
		if (pids[w] < 0)
			die("fork a load worker: %s", strerror(errno));
		if (pids[w] == 0)
			worker(w, w);
	}
	printf("kmt-bench: load cpus=%d workers=%d seconds=%ld\n", cpus, cpus, seconds);
	for (int k = 0; k < LOAD_STEPS; k++) {
		long rate = k == 0 ? 0 : max_rate * k / LOAD_STEPS;
		long long o0 = read_overruns(), b0 = share_bytes(dir, cpus), b1, b2, t0, ns, settle_ns;
		long ops = 0;

		if (k > 0 && rate < 1)
			rate = 1;
		for (int w = 0; w < cpus; w++)
			pace->ops[w] = 0;
		__atomic_store_n(&pace->rate, rate, __ATOMIC_RELEASE);
		__atomic_add_fetch(&pace->step, 1, __ATOMIC_RELEASE);
		t0 = now_ns();
		while (now_ns() - t0 < seconds * 1000000000LL) {
			sleep_ns(100000000);
			check_workers(pids, cpus);
		}
		__atomic_store_n(&pace->rate, -1, __ATOMIC_RELEASE);
		ns = now_ns() - t0;
		b1 = share_bytes(dir, cpus);
		b2 = settle(dir, cpus, pids, cpus, &settle_ns);
		for (int w = 0; w < cpus; w++)
			ops += __atomic_load_n(&pace->ops[w], __ATOMIC_ACQUIRE);
		if (k == 0)
			max_rate = (long)((double)ops / cpus * 1e9 / (double)ns);
		printf("kmt-bench: load step=%d rate=%ld ops=%ld ns=%lld produced=%lld written=%lld settle_ns=%lld overrun=%lld\n",
		       k, rate, ops, ns, b2 - b0, b1 - b0, settle_ns, read_overruns() - o0);
	}
	__atomic_store_n(&pace->quit, 1, __ATOMIC_RELEASE);
	for (int w = 0; w < cpus; w++)
		waitpid(pids[w], NULL, 0);
	printf("kmt-bench: done\n");
	return 0;
}

int main(int argc, char **argv)
{
	long ops = argc > 1 ? atol(argv[1]) : 200;
	long rounds = argc > 2 ? atol(argv[2]) : 5;
	int nmodes = access(MEM_PROFILING, W_OK) ? ALLOCPROF : NMODES;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 4 && !strcmp(argv[1], "load"))
		return load(atol(argv[2]), argv[3]);
	if (ops < 1 || rounds < 1)
		die("usage: kmt-bench OPS [ROUNDS] (both at least 1)");
	/* init switched kmemtrace on before starting its collector: every mode starts off. */
	put(KMT_DIR "/enabled", "0");
	if (nmodes == NMODES)
		put(MEM_PROFILING, "0");
	setup_ftrace();
	/* A warm-up, untimed: the first fork and tmpfs file of a boot cost more than the rest. */
	for (long i = 0; i < 16; i++)
		operation(0, i);
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
