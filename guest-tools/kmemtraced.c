// SPDX-License-Identifier: GPL-2.0-only
/*
 * kmemtraced - copy the kmemtrace relay buffers of every online CPU into a trace directory.
 *
 * Usage: kmemtraced [-o OUTDIR] [-d DEBUGFS] [-p PROC] [-s SYSFS] [-t POLL_MS] [-b BUF_KIB]
 *                   [-R FD] [-U] [-h]
 *
 *   -o OUTDIR   trace directory, created if missing (one level)   default: .
 *   -d DEBUGFS  where debugfs is mounted; reads DEBUGFS/kmemtrace/ default: /sys/kernel/debug
 *   -p PROC     where procfs is mounted (kallsyms, kptr_restrict)  default: /proc
 *   -s SYSFS    where sysfs is mounted (online CPUs, NUMA nodes)   default: /sys
 *   -t POLL_MS  longest poll() wait of a reader; also how fast an idle reader notices a stop
 *               request                                           default: 250
 *   -b BUF_KIB  write buffer per CPU in KiB: output is written in chunks this large
 *                                                                 default: 1024
 *   -R FD       readiness: when every reader runs, write "ready\n" to FD and close it
 *   -U          allow unpinned readers when a CPU cannot be pinned (tests on a fake debugfs only)
 *   -h          this help
 *
 * What it writes (docs/contracts.md section 1): OUTDIR/cpu<N>.out, the bytes read from
 * DEBUGFS/kmemtrace/cpu<N> unchanged; OUTDIR/kallsyms, a copy of PROC/kallsyms read after writing 0
 * to PROC/sys/kernel/kptr_restrict; OUTDIR/meta.json, written last (to meta.json.tmp, fsynced,
 * renamed), so its presence means the trace is complete. A stale meta.json is removed at start.
 *
 * How it reads: one thread per online CPU, pinned to that CPU, poll() before every read() of the
 * relay file (read() on a relay file never blocks and skips sub-buffer padding, so the bytes are
 * whole records back to back); the bytes go into a per-CPU buffer written out when nearly full.
 * Pinning is what makes the reads whole: the kernel reserves and fills a record with interrupts
 * off on its CPU, so a reader on that CPU never sees a reserved but unwritten record. A reader
 * that cannot be pinned is an error (exit 1) unless -U is given.
 *
 * Start: the kernel creates kmemtrace/cpu<N> when tracing is first switched on (or at boot with
 * kmemtrace.enable=yes), so switch it on first; the relay buffers keep the records until read.
 *
 * Stop protocol: SIGINT or SIGTERM requests a stop. Stop the producer first (write 0 to
 * kmemtrace/enabled), then signal. Each reader then reads until read() returns 0 (everything that
 * was logged before the request is in the file), writes its buffer out and fsyncs; then
 * total_overruns and cpu_bytes (the bytes the kernel logged per CPU: a CPU file holding any
 * other number of bytes is damaged) are read and meta.json written. Signals sent before the
 * readers run stay pending and are honoured once they do. A reader that fails stops the
 * others (the trace is then not complete: no meta.json, non-zero exit).
 *
 * Exit codes:
 *   0  the trace is complete: every byte read was written and fsynced, meta.json written
 *   1  internal error (memory, threads, signals, a reader that cannot be pinned)
 *   2  usage error
 *   3  no kmemtrace: DEBUGFS/kmemtrace, its total_overruns or a cpu<N> file of an online CPU
 *      is missing or cannot be opened
 *   4  unknown ABI: kmemtrace/abi_version is missing, unreadable or not 1 or 2
 *   5  output error: OUTDIR cannot be created or written (read-only, full, I/O error)
 *   6  input error: reading a relay file, total_overruns, cpu_bytes or PROC/kallsyms failed while
 *      collecting
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#define COLLECTOR "kmemtraced 0.1.0"
/*
 * The ABI versions whose records this collector copies. Version 2 adds the stack feature, which
 * the collector need not understand: it copies records unchanged.
 */
#define KMEMTRACE_ABI_MIN 1
#define KMEMTRACE_ABI_MAX 2
#define MAX_CPUS 8192

enum exit_code {
	EXIT_OK = 0,
	EXIT_INTERNAL = 1,
	EXIT_USAGE = 2,
	EXIT_NO_KMEMTRACE = 3,
	EXIT_ABI = 4,
	EXIT_OUTPUT = 5,
	EXIT_INPUT = 6,
};

struct options {
	const char *outdir;
	const char *debugfs;
	const char *proc;
	const char *sysfs;
	int poll_ms;
	size_t buf_size;
	int ready_fd;
	int allow_unpinned;
};

struct collector;

/* One per online CPU; owned by its thread between start and join. */
struct reader {
	struct collector *c;
	int cpu;
	int node;
	int in_fd;
	int out_fd;
	char in_path[PATH_MAX];
	char out_path[PATH_MAX];
	char *buf;
	size_t len;
	uint64_t bytes;		/* written to out_fd */
	int64_t logged;		/* kmemtrace/cpu_bytes: bytes the kernel logged, -1 unknown */
	int64_t dropped;	/* and dropped because the buffer was full, -1 unknown */
	int exit_code;		/* 0, or why this reader failed */
	pthread_t thread;
};

struct collector {
	const struct options *opt;
	atomic_int stop;	/* set once a stop is requested */
	int stop_fd;		/* read end of a pipe, readable once a stop is requested */
	int stop_wr;		/* its write end */
	int ncpus;
	struct reader *readers;
};

static void msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void msg(const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n;

	n = snprintf(line, sizeof(line), "kmemtraced: ");
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	va_end(ap);
	strcat(line, "\n");
	/* One write per message, so lines of several threads do not mix. */
	if (write(STDERR_FILENO, line, strlen(line)) < 0)
		return;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: kmemtraced [-o OUTDIR] [-d DEBUGFS] [-p PROC] [-s SYSFS] [-t POLL_MS]\n"
		"                  [-b BUF_KIB] [-R FD] [-U] [-h]\n"
		"Copies debugfs kmemtrace/cpu<N> of every online CPU to OUTDIR/cpu<N>.out until\n"
		"SIGINT/SIGTERM, drains, then writes OUTDIR/kallsyms and OUTDIR/meta.json.\n"
		"  -o OUTDIR   trace directory (default .)\n"
		"  -d DEBUGFS  debugfs mount point (default /sys/kernel/debug)\n"
		"  -p PROC     procfs mount point (default /proc)\n"
		"  -s SYSFS    sysfs mount point (default /sys)\n"
		"  -t POLL_MS  longest poll() wait (default 250)\n"
		"  -b BUF_KIB  write buffer per CPU in KiB (default 1024)\n"
		"  -R FD       write \"ready\\n\" to FD once collecting, then close it\n"
		"  -U          allow unpinned readers (tests on a fake debugfs)\n"
		"exit: 0 complete, 1 internal, 2 usage, 3 no kmemtrace, 4 unknown ABI,\n"
		"      5 output error, 6 input error\n");
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (w == 0) {
			errno = ENOSPC;
			return -1;
		}
		p += w;
		n -= w;
	}
	return 0;
}

/* Reads a small text file into buf (NUL terminated); -1 with errno on failure. */
static int read_small(const char *path, char *buf, size_t size)
{
	size_t len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	while (len < size - 1) {
		ssize_t r = read(fd, buf + len, size - 1 - len);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			int e = errno;

			close(fd);
			errno = e;
			return -1;
		}
		if (r == 0)
			break;
		len += r;
	}
	close(fd);
	buf[len] = '\0';
	return 0;
}

/* A decimal u32 file (abi_version, total_overruns): -1 with errno (EINVAL if not a number). */
static int read_u32(const char *path, uint32_t *val)
{
	char buf[64], *end;
	unsigned long v;

	if (read_small(path, buf, sizeof(buf)))
		return -1;
	errno = 0;
	v = strtoul(buf, &end, 10);
	while (*end == '\n' || *end == ' ')
		end++;
	if (end == buf || *end || errno || v > UINT32_MAX || buf[0] == '-') {
		errno = EINVAL;
		return -1;
	}
	*val = v;
	return 0;
}

/*
 * kmemtrace/cpu_bytes, one line per possible CPU: "CPU LOGGED DROPPED" (bytes of records the
 * kernel wrote into that CPU's buffer, and dropped because it was full, since tracing first
 * started). Fills the readers' logged and dropped; a kernel without the file (before it
 * existed) leaves them -1, and meta.json then says nothing. -1 with errno when the file exists
 * but cannot be read or parsed.
 */
static int read_cpu_bytes(const char *path, struct collector *c)
{
	char buf[8192], *line, *save = NULL;

	if (read_small(path, buf, sizeof(buf)))
		return errno == ENOENT ? 0 : -1;
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		unsigned long long logged, dropped;
		int cpu, end = 0;

		if (sscanf(line, "%d %llu %llu%n", &cpu, &logged, &dropped, &end) != 3 ||
		    line[end]) {
			errno = EINVAL;
			return -1;
		}
		for (int i = 0; i < c->ncpus; i++) {
			if (c->readers[i].cpu == cpu) {
				c->readers[i].logged = (int64_t)logged;
				c->readers[i].dropped = (int64_t)dropped;
			}
		}
	}
	return 0;
}

/*
 * kmemtrace/allocator ("slab", "slub", "slub-tiny", "slob"): the slab allocator, which decides
 * which frees are errors. Empty when the file is missing (a kernel from before it existed) or
 * holds anything but a short lowercase name, so meta.json then says nothing.
 */
static void read_allocator(const char *path, char *name, size_t size)
{
	char buf[32];
	size_t len;

	name[0] = '\0';
	if (read_small(path, buf, sizeof(buf)))
		return;
	len = strcspn(buf, "\n");
	buf[len] = '\0';
	if (!len || len >= size || strspn(buf, "abcdefghijklmnopqrstuvwxyz-") != len)
		return;
	memcpy(name, buf, len + 1);
}

/* "0-3,5,7-8" -> cpus[]; returns the count or -1. */
static int parse_cpulist(const char *s, int *cpus, int max)
{
	int n = 0;

	while (*s && *s != '\n') {
		char *end;
		long a = strtol(s, &end, 10), b;

		if (end == s || a < 0)
			return -1;
		b = a;
		s = end;
		if (*s == '-') {
			b = strtol(s + 1, &end, 10);
			if (end == s + 1 || b < a)
				return -1;
			s = end;
		}
		for (long i = a; i <= b; i++) {
			if (n == max || i >= MAX_CPUS)
				return -1;
			cpus[n++] = i;
		}
		if (*s == ',')
			s++;
		else if (*s && *s != '\n')
			return -1;
	}
	return n;
}

static int cmp_int(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

/*
 * The online CPUs from SYSFS/devices/system/cpu/online; without sysfs, the cpu<N> files that
 * kmemtrace created (relay makes one per online CPU).
 */
static int online_cpus(const struct options *o, int *cpus, int max)
{
	char path[PATH_MAX], buf[4096];
	DIR *d;
	struct dirent *de;
	int n = 0;

	snprintf(path, sizeof(path), "%s/devices/system/cpu/online", o->sysfs);
	if (read_small(path, buf, sizeof(buf)) == 0)
		return parse_cpulist(buf, cpus, max);
	msg("warning: %s: %s; taking the CPUs from the kmemtrace/cpu<N> files", path,
	    strerror(errno));
	snprintf(path, sizeof(path), "%s/kmemtrace", o->debugfs);
	d = opendir(path);
	if (!d)
		return -1;
	while ((de = readdir(d))) {
		char *end;
		long c;

		if (strncmp(de->d_name, "cpu", 3) || !de->d_name[3])
			continue;
		c = strtol(de->d_name + 3, &end, 10);
		if (*end || c < 0 || c >= MAX_CPUS || n == max)
			continue;
		cpus[n++] = c;
	}
	closedir(d);
	qsort(cpus, n, sizeof(int), cmp_int);
	return n;
}

/* NUMA node of a CPU from its SYSFS/devices/system/cpu/cpu<N>/node<M> link, or -1. */
static int cpu_node(const struct options *o, int cpu)
{
	char path[PATH_MAX];
	struct dirent *de;
	int node = -1;
	DIR *d;

	snprintf(path, sizeof(path), "%s/devices/system/cpu/cpu%d", o->sysfs, cpu);
	d = opendir(path);
	if (!d)
		return -1;
	while ((de = readdir(d))) {
		char *end;
		long v;

		if (strncmp(de->d_name, "node", 4) || !de->d_name[4])
			continue;
		v = strtol(de->d_name + 4, &end, 10);
		if (!*end && v >= 0 && v <= INT_MAX) {
			node = v;
			break;
		}
	}
	closedir(d);
	return node;
}

static void request_stop(struct collector *c)
{
	atomic_store(&c->stop, 1);
	/* Never read: the pipe stays readable and wakes every reader's poll(). */
	if (write(c->stop_wr, "s", 1) < 0)
		msg("warning: stop pipe: %s", strerror(errno));
}

/* Records the first failure of a reader and wakes the main thread (which stops the others). */
static void reader_fail(struct reader *r, int code, const char *what, const char *path)
{
	msg("cpu%d: %s %s: %s", r->cpu, what, path, strerror(errno));
	r->exit_code = code;
	kill(getpid(), SIGUSR1);
}

static int reader_flush(struct reader *r)
{
	if (write_all(r->out_fd, r->buf, r->len))
		return -1;
	r->bytes += r->len;
	r->len = 0;
	return 0;
}

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	struct collector *c = r->c;
	size_t cap = c->opt->buf_size;
	size_t high = cap - cap / 8;	/* write out once the buffer is this full */
	struct pollfd pfd[2] = {
		{ .fd = r->in_fd, .events = POLLIN },
		{ .fd = c->stop_fd, .events = POLLIN },
	};
	cpu_set_t set;
	int e;

	CPU_ZERO(&set);
	CPU_SET(r->cpu, &set);
	e = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
	if (e && !c->opt->allow_unpinned) {
		errno = e;
		reader_fail(r, EXIT_INTERNAL, "pin the reader of", r->in_path);
		return NULL;
	}
	if (e)
		msg("warning: cpu%d: cannot pin the reader to its CPU (%s); reading unpinned (-U)",
		    r->cpu, strerror(e));

	for (;;) {
		/* Seen before the read: a 0 from read() after this means drained. */
		int stopping = atomic_load(&c->stop);
		ssize_t got;

		if (poll(pfd, 2, c->opt->poll_ms) < 0 && errno != EINTR) {
			reader_fail(r, EXIT_INPUT, "poll", r->in_path);
			return NULL;
		}
		got = read(r->in_fd, r->buf + r->len, cap - r->len);
		if (got > 0) {
			r->len += got;
			if (r->len >= high && reader_flush(r)) {
				reader_fail(r, EXIT_OUTPUT, "write", r->out_path);
				return NULL;
			}
			continue;
		}
		if (got < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			reader_fail(r, EXIT_INPUT, "read", r->in_path);
			return NULL;
		}
		if (stopping)
			break;
		/*
		 * Readable but empty: a regular file at its end (a fake debugfs) or a finalized
		 * relay buffer. Wait for a stop request or the poll timeout instead of spinning.
		 */
		if (pfd[0].revents & (POLLIN | POLLERR | POLLHUP)) {
			struct pollfd s = { .fd = c->stop_fd, .events = POLLIN };

			poll(&s, 1, c->opt->poll_ms);
		}
	}
	if (reader_flush(r)) {
		reader_fail(r, EXIT_OUTPUT, "write", r->out_path);
		return NULL;
	}
	if (fsync(r->out_fd)) {
		reader_fail(r, EXIT_OUTPUT, "fsync", r->out_path);
		return NULL;
	}
	return NULL;
}

/* Copies src to dst (created, truncated), fsyncs; returns an exit code. */
static int copy_file(const char *src, const char *dst, uint64_t *lines, int *nonzero)
{
	static char buf[1 << 16];
	int in, out, code = EXIT_OK;
	int in_addr = 1;

	*lines = 0;
	*nonzero = 0;
	in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0) {
		msg("%s: %s", src, strerror(errno));
		return EXIT_INPUT;
	}
	out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (out < 0) {
		msg("%s: %s", dst, strerror(errno));
		close(in);
		return EXIT_OUTPUT;
	}
	for (;;) {
		ssize_t r = read(in, buf, sizeof(buf));

		if (r < 0) {
			if (errno == EINTR)
				continue;
			msg("read %s: %s", src, strerror(errno));
			code = EXIT_INPUT;
			break;
		}
		if (r == 0)
			break;
		/* Count lines and look for one address (first field) that is not all zeros. */
		for (ssize_t i = 0; i < r; i++) {
			if (buf[i] == '\n') {
				(*lines)++;
				in_addr = 1;
			} else if (buf[i] == ' ') {
				in_addr = 0;
			} else if (in_addr && buf[i] != '0') {
				*nonzero = 1;
			}
		}
		if (write_all(out, buf, r)) {
			msg("write %s: %s", dst, strerror(errno));
			code = EXIT_OUTPUT;
			break;
		}
	}
	if (code == EXIT_OK && fsync(out)) {
		msg("fsync %s: %s", dst, strerror(errno));
		code = EXIT_OUTPUT;
	}
	if (close(out) && code == EXIT_OK) {
		msg("close %s: %s", dst, strerror(errno));
		code = EXIT_OUTPUT;
	}
	close(in);
	return code;
}

/* kallsyms with kptr_restrict 0, so the host can name call sites. Returns an exit code. */
static int save_kallsyms(const struct options *o)
{
	char src[PATH_MAX], dst[PATH_MAX], knob[PATH_MAX];
	uint64_t lines;
	int nonzero, code, fd;

	snprintf(knob, sizeof(knob), "%s/sys/kernel/kptr_restrict", o->proc);
	fd = open(knob, O_WRONLY | O_TRUNC | O_CLOEXEC);
	if (fd < 0 || write(fd, "0\n", 2) != 2)
		msg("warning: cannot write 0 to %s (%s); kallsyms may hide addresses", knob,
		    strerror(errno));
	if (fd >= 0)
		close(fd);

	snprintf(src, sizeof(src), "%s/kallsyms", o->proc);
	snprintf(dst, sizeof(dst), "%s/kallsyms", o->outdir);
	code = copy_file(src, dst, &lines, &nonzero);
	if (code == EXIT_OK && (!lines || !nonzero))
		msg("warning: %s has %llu lines and %s; call sites will not be named", src,
		    (unsigned long long)lines, nonzero ? "addresses" : "no non-zero address");
	return code;
}

/* Appends s to a JSON document as a string literal. */
static void json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char ch = *s;

		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

/* meta.json (docs/contracts.md section 1): to meta.json.tmp, fsync, rename, fsync the dir. */
static int write_meta(const struct collector *c, uint32_t abi, const char *allocator,
		      uint32_t overruns, int64_t start_ms, int64_t stop_ms)
{
	char tmp[PATH_MAX], dst[PATH_MAX];
	struct utsname u;
	FILE *f;
	int fd, err = 0;

	if (uname(&u)) {
		msg("uname: %s", strerror(errno));
		return EXIT_INTERNAL;
	}
	snprintf(tmp, sizeof(tmp), "%s/meta.json.tmp", c->opt->outdir);
	snprintf(dst, sizeof(dst), "%s/meta.json", c->opt->outdir);
	f = fopen(tmp, "we");
	if (!f) {
		msg("%s: %s", tmp, strerror(errno));
		return EXIT_OUTPUT;
	}
	fprintf(f, "{\n  \"kmemtrace_meta\": 1,\n  \"collector\": \"%s\",\n", COLLECTOR);
	fprintf(f, "  \"abi_version\": %u,\n", abi);
	fprintf(f, "  \"byte_order\": \"%s\",\n",
		__BYTE_ORDER__ == __ORDER_BIG_ENDIAN__ ? "big" : "little");
	fputs("  \"machine\": ", f);
	json_string(f, u.machine);
	fputs(",\n  \"kernel_release\": ", f);
	json_string(f, u.release);
	if (allocator[0]) {
		fputs(",\n  \"allocator\": ", f);
		json_string(f, allocator);
	}
	fprintf(f, ",\n  \"page_size\": %ld,\n", sysconf(_SC_PAGESIZE));
	fprintf(f, "  \"total_overruns\": %u,\n  \"cpus\": [\n", overruns);
	for (int i = 0; i < c->ncpus; i++) {
		const struct reader *r = &c->readers[i];

		fprintf(f, "    { \"cpu\": %d, \"node\": %d, \"file\": \"cpu%d.out\", "
			"\"bytes\": %llu", r->cpu, r->node, r->cpu, (unsigned long long)r->bytes);
		if (r->logged >= 0)
			fprintf(f, ", \"logged_bytes\": %lld, \"dropped_bytes\": %lld",
				(long long)r->logged, (long long)r->dropped);
		fprintf(f, " }%s\n", i + 1 < c->ncpus ? "," : "");
	}
	fprintf(f, "  ],\n  \"start_unix_ms\": %lld,\n  \"stop_unix_ms\": %lld\n}\n",
		(long long)start_ms, (long long)stop_ms);
	if (fflush(f) || fsync(fileno(f)))
		err = errno;
	if (fclose(f) && !err)
		err = errno;
	if (err) {
		errno = err;
		msg("write %s: %s", tmp, strerror(errno));
		return EXIT_OUTPUT;
	}
	if (rename(tmp, dst)) {
		msg("rename %s to %s: %s", tmp, dst, strerror(errno));
		return EXIT_OUTPUT;
	}
	fd = open(c->opt->outdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		/* Some file systems (9p among them) refuse fsync on a directory: not an error. */
		if (fsync(fd) && errno != EINVAL && errno != EROFS && errno != EOPNOTSUPP)
			msg("warning: fsync %s: %s", c->opt->outdir, strerror(errno));
		close(fd);
	}
	return EXIT_OK;
}

static int parse_int(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (!*s || *end || errno || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

static int parse_options(int argc, char **argv, struct options *o)
{
	long v;
	int ch;

	*o = (struct options){
		.outdir = ".",
		.debugfs = "/sys/kernel/debug",
		.proc = "/proc",
		.sysfs = "/sys",
		.poll_ms = 250,
		.buf_size = 1024 * 1024,
		.ready_fd = -1,
	};
	while ((ch = getopt(argc, argv, "o:d:p:s:t:b:R:Uh")) != -1) {
		switch (ch) {
		case 'o':
			o->outdir = optarg;
			break;
		case 'd':
			o->debugfs = optarg;
			break;
		case 'p':
			o->proc = optarg;
			break;
		case 's':
			o->sysfs = optarg;
			break;
		case 't':
			if (parse_int(optarg, 1, 60000, &v))
				goto bad;
			o->poll_ms = v;
			break;
		case 'b':
			if (parse_int(optarg, 64, 1024 * 1024, &v))
				goto bad;
			o->buf_size = (size_t)v * 1024;
			break;
		case 'R':
			if (parse_int(optarg, 0, INT_MAX, &v))
				goto bad;
			o->ready_fd = v;
			break;
		case 'U':
			o->allow_unpinned = 1;
			break;
		case 'h':
			usage(stdout);
			exit(EXIT_OK);
		default:
			usage(stderr);
			return -1;
		}
	}
	if (optind != argc) {
		msg("unexpected argument %s", argv[optind]);
		usage(stderr);
		return -1;
	}
	return 0;
bad:
	msg("bad value for -%c: %s", ch, optarg);
	usage(stderr);
	return -1;
}

/* Opens every input and output before any thread starts; returns an exit code. */
static int open_readers(struct collector *c, const int *cpus)
{
	const struct options *o = c->opt;

	c->readers = calloc(c->ncpus, sizeof(*c->readers));
	if (!c->readers)
		return EXIT_INTERNAL;
	for (int i = 0; i < c->ncpus; i++) {
		struct reader *r = &c->readers[i];

		r->c = c;
		r->cpu = cpus[i];
		r->in_fd = r->out_fd = -1;
		r->logged = r->dropped = -1;
		r->node = cpu_node(o, r->cpu);
		snprintf(r->in_path, sizeof(r->in_path), "%s/kmemtrace/cpu%d", o->debugfs, r->cpu);
		snprintf(r->out_path, sizeof(r->out_path), "%s/cpu%d.out", o->outdir, r->cpu);
		r->in_fd = open(r->in_path, O_RDONLY | O_CLOEXEC);
		if (r->in_fd < 0) {
			msg("%s: %s (CPU %d is online)", r->in_path, strerror(errno), r->cpu);
			return EXIT_NO_KMEMTRACE;
		}
		r->out_fd = open(r->out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (r->out_fd < 0) {
			msg("%s: %s", r->out_path, strerror(errno));
			return EXIT_OUTPUT;
		}
		r->buf = malloc(o->buf_size);
		if (!r->buf)
			return EXIT_INTERNAL;
	}
	return EXIT_OK;
}

static void close_readers(struct collector *c)
{
	for (int i = 0; c->readers && i < c->ncpus; i++) {
		struct reader *r = &c->readers[i];

		if (r->in_fd >= 0)
			close(r->in_fd);
		if (r->out_fd >= 0 && close(r->out_fd) && !r->exit_code) {
			msg("close %s: %s", r->out_path, strerror(errno));
			r->exit_code = EXIT_OUTPUT;
		}
		free(r->buf);
	}
}

/* Waits for SIGINT/SIGTERM (stop) or SIGUSR1 (a reader failed). */
static void wait_for_stop(const sigset_t *set)
{
	for (;;) {
		int sig = sigwaitinfo(set, NULL);

		if (sig == SIGINT || sig == SIGTERM || sig == SIGUSR1)
			return;
	}
}

int main(int argc, char **argv)
{
	struct collector c = { .stop_fd = -1, .stop_wr = -1 };
	int stop_pipe[2];
	struct options o;
	char path[PATH_MAX];
	static int cpus[MAX_CPUS];
	uint32_t abi, overruns;
	char allocator[16];
	int64_t start_ms = 0, stop_ms = 0;
	int code = EXIT_OK, started = 0;
	sigset_t set;
	struct stat st;

	/* First: a stop request that comes early stays pending instead of killing us. */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGUSR1);
	if (sigprocmask(SIG_BLOCK, &set, NULL))
		return EXIT_INTERNAL;

	if (parse_options(argc, argv, &o))
		return EXIT_USAGE;
	c.opt = &o;

	snprintf(path, sizeof(path), "%s/kmemtrace", o.debugfs);
	if (stat(path, &st) || !S_ISDIR(st.st_mode)) {
		msg("%s: %s (is debugfs mounted at %s, and the kernel built with kmemtrace?)",
		    path, errno ? strerror(errno) : "not a directory", o.debugfs);
		return EXIT_NO_KMEMTRACE;
	}
	snprintf(path, sizeof(path), "%s/kmemtrace/abi_version", o.debugfs);
	if (read_u32(path, &abi)) {
		msg("%s: %s; cannot tell the record layout", path, strerror(errno));
		return EXIT_ABI;
	}
	if (abi < KMEMTRACE_ABI_MIN || abi > KMEMTRACE_ABI_MAX) {
		msg("%s: ABI version %u, this collector knows versions %d to %d", path, abi,
		    KMEMTRACE_ABI_MIN, KMEMTRACE_ABI_MAX);
		return EXIT_ABI;
	}
	snprintf(path, sizeof(path), "%s/kmemtrace/allocator", o.debugfs);
	read_allocator(path, allocator, sizeof(allocator));
	snprintf(path, sizeof(path), "%s/kmemtrace/total_overruns", o.debugfs);
	if (read_u32(path, &overruns)) {
		msg("%s: %s", path, strerror(errno));
		return EXIT_NO_KMEMTRACE;
	}
	c.ncpus = online_cpus(&o, cpus, MAX_CPUS);
	if (c.ncpus <= 0) {
		msg("cannot tell the online CPUs (%s/devices/system/cpu/online, %s/kmemtrace)",
		    o.sysfs, o.debugfs);
		return EXIT_NO_KMEMTRACE;
	}

	if (mkdir(o.outdir, 0755) && errno != EEXIST) {
		msg("mkdir %s: %s", o.outdir, strerror(errno));
		return EXIT_OUTPUT;
	}
	snprintf(path, sizeof(path), "%s/meta.json", o.outdir);
	if (unlink(path) && errno != ENOENT) {
		msg("cannot remove the stale %s: %s", path, strerror(errno));
		return EXIT_OUTPUT;
	}

	code = open_readers(&c, cpus);
	if (code != EXIT_OK)
		goto out;
	/* A pipe, not an eventfd: tinyconfig kernels have no EVENTFD. */
	if (pipe2(stop_pipe, O_CLOEXEC)) {
		msg("pipe: %s", strerror(errno));
		code = EXIT_INTERNAL;
		goto out;
	}
	c.stop_fd = stop_pipe[0];
	c.stop_wr = stop_pipe[1];

	start_ms = now_ms();
	for (; started < c.ncpus; started++) {
		int e = pthread_create(&c.readers[started].thread, NULL, reader_main,
				       &c.readers[started]);

		if (e) {
			msg("pthread_create: %s", strerror(e));
			code = EXIT_INTERNAL;
			request_stop(&c);
			goto join;
		}
	}
	if (o.ready_fd >= 0) {
		if (write(o.ready_fd, "ready\n", 6) != 6)
			msg("warning: readiness fd %d: %s", o.ready_fd, strerror(errno));
		close(o.ready_fd);
	}
	msg("collecting %d CPU(s) from %s/kmemtrace into %s", c.ncpus, o.debugfs, o.outdir);

	/* While the readers run; a failure here ends the collection early. */
	code = save_kallsyms(&o);
	if (code == EXIT_OK)
		wait_for_stop(&set);
	request_stop(&c);
join:
	for (int i = 0; i < started; i++)
		pthread_join(c.readers[i].thread, NULL);
	stop_ms = now_ms();
out:
	close_readers(&c);
	for (int i = 0; c.readers && i < c.ncpus; i++)
		if (c.readers[i].exit_code && code == EXIT_OK)
			code = c.readers[i].exit_code;
	if (code != EXIT_OK) {
		msg("trace in %s is incomplete; no meta.json written (exit %d)", o.outdir, code);
		return code;
	}

	snprintf(path, sizeof(path), "%s/kmemtrace/total_overruns", o.debugfs);
	if (read_u32(path, &overruns)) {
		msg("%s: %s", path, strerror(errno));
		return EXIT_INPUT;
	}
	snprintf(path, sizeof(path), "%s/kmemtrace/cpu_bytes", o.debugfs);
	if (read_cpu_bytes(path, &c)) {
		msg("%s: %s", path, strerror(errno));
		return EXIT_INPUT;
	}
	code = write_meta(&c, abi, allocator, overruns, start_ms, stop_ms);
	if (code != EXIT_OK)
		return code;
	for (int i = 0; i < c.ncpus; i++) {
		const struct reader *r = &c.readers[i];

		msg("cpu%d: %llu bytes", r->cpu, (unsigned long long)r->bytes);
		/* Reported, not fatal: the trace is kept for kmemtrace check to name the damage. */
		if (r->logged >= 0 && (uint64_t)r->logged != r->bytes)
			msg("warning: cpu%d: read %llu bytes, the kernel logged %lld", r->cpu,
			    (unsigned long long)r->bytes, (long long)r->logged);
	}
	if (overruns)
		msg("warning: total_overruns is %u: the kernel dropped records (boot with a larger "
		    "kmemtrace.subbufs=N)", overruns);
	msg("done: %s/meta.json", o.outdir);
	return EXIT_OK;
}
