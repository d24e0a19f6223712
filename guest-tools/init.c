// SPDX-License-Identifier: GPL-2.0-only
/*
 * init - PID 1 of the kmt initramfs: run one kmemtrace job, report, end the guest.
 *
 * Usage: the kernel runs it as /init (rdinit=/init). It takes no arguments and refuses to run
 * unless it is PID 1 (it reboots the machine when done). The job comes from the 9p share and the
 * kernel command line (docs/contracts.md section 2):
 *
 *   /mnt/kmt/job            lines key=value, '#' starts a comment; then
 *   /proc/cmdline           kmt.KEY=VALUE tokens, which win
 *   keys: workload  selftest (default) | boot | fork | files | exec
 *         param     the workload's size parameter, decimal (default per workload, below)
 *         arg       an argument for the exec workload's program (repeatable, at most 16 of at
 *                   most 200 bytes each, in order)
 *         out       trace directory name under /mnt/kmt (default trace)
 *         timeout   seconds before the whole job is declared failed (default 600)
 *
 * Workloads:
 *   selftest  write "run" to debugfs kmemtrace/selftest PARAM times (default 1); each write
 *             returns when the kernel's known-answer sequence has been logged
 *   boot      tracing is on from boot (kmemtrace.enable=yes): collect what boot logged, then keep
 *             tracing PARAM milliseconds (default 0) and stop
 *   fork      PARAM rounds (default 100) of fork + execve /bin/kmt-true + waitpid
 *   files     PARAM rounds (default 1000) of create, write 512..8192 bytes, close, unlink of a
 *             file in /tmp/kmt-files (tmpfs)
 *   exec      /mnt/kmt/program, copied to /tmp/kmt-program before tracing starts, run PARAM
 *             times (default 1) with the arg lines as its arguments, stdout and stderr to
 *             /mnt/kmt/guest.log; every run must exit 0
 *   bench     /bin/kmt-bench PARAM (default 200): PARAM operations timed per round in each
 *             tracing mode, its lines to /mnt/kmt/guest.log (see kmt-bench.c); must exit 0
 *   load      /bin/kmt-bench load PARAM /mnt/kmt/<out> (default 10): a worker per CPU at rising
 *             rates, PARAM seconds per step, while the collector drains; lines to guest.log
 *
 * Sequence: mount proc, sysfs, devtmpfs (/dev), debugfs, tmpfs (/tmp); mount the 9p share with
 * tag kmt at /mnt/kmt (trans=virtio,version=9p2000.L,msize=262144); if the guest clock is before
 * 2020 (no RTC driver), set it from the time of guest.log just created on the share; read the job;
 * create
 * /mnt/kmt/<out>; write 1 to kmemtrace/enabled (not for boot); start /bin/kmemtraced -o
 * /mnt/kmt/<out> (stderr to /mnt/kmt/guest.log) and wait until it is collecting; run the workload;
 * write 0 to enabled; SIGTERM the collector and wait for it (bounded); check it exited 0 and wrote
 * meta.json. Tracing goes on before the collector starts because the kernel creates the relay
 * files kmemtrace/cpu<N> on the first enable; nothing is lost meanwhile, the relay buffers keep
 * the records until they are read (and count overruns rather than overwrite).
 *
 * On a kernel with memory allocation profiling (/proc/allocinfo readable), init also reads
 * /proc/allocinfo just after tracing goes on (so that the tracer's own buffers are not in the
 * window; not for boot, whose window starts with the kernel's counters) and after the workload,
 * with the collector stopped (SIGSTOP) until tracing is off, again every 100 ms until two reads
 * agree (RCU-delayed frees done). Both go into memory faulted in beforehand, and are written to
 * /mnt/kmt/<out>/allocinfo.before and allocinfo.after once the collector has stopped: `kmemtrace
 * allocinfo` compares them with the trace.
 *
 * End: /mnt/kmt/status gets one line, "ok" or "fail <reason>"; the console gets exactly one line
 * "KMT-STATUS: ok" or "KMT-STATUS: fail <reason>"; then sync() and reboot(RB_AUTOBOOT) (QEMU runs
 * with -no-reboot, so this ends QEMU). Every failure, including the 9p mount and the timeout
 * (a watchdog process), takes the same path: a guest never hangs. init's own messages go to the
 * console and to /mnt/kmt/guest.log, prefixed "kmt-init: ".
 *
 * Exit codes: none in the guest (PID 1 reboots); run as any other PID it exits 2.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SHARE "/mnt/kmt"
#define SHARE_TAG "kmt"
#define SHARE_OPTS "trans=virtio,version=9p2000.L,msize=262144"
#define DEBUGFS "/sys/kernel/debug"
#define KMT_DIR DEBUGFS "/kmemtrace"
#define COLLECTOR "/bin/kmemtraced"
#define HELPER "/bin/kmt-true"
#define BENCH "/bin/kmt-bench"
#define PROGRAM SHARE "/program"
#define PROGRAM_COPY "/tmp/kmt-program"
#define ALLOCINFO "/proc/allocinfo"
#define ALLOCINFO_MAX (8 << 20)
#define MAX_ARGS 16
#define MAX_ARG_LEN 200

#define DEFAULT_TIMEOUT_S 600
#define SHARE_MOUNT_TRIES 50		/* 100 ms apart: virtio may still be probing */
#define READY_TIMEOUT_MS 60000		/* collector start: open files, copy kallsyms over 9p */
#define STOP_TIMEOUT_MS 120000		/* collector drain, fsync, meta.json */
#define FINISH_GRACE_S 20		/* writing status + sync; then reboot regardless */
#define CLOCK_PLAUSIBLE 1577836800L	/* 2020-01-01: an earlier guest clock has no RTC */

/* State the SIGALRM handler needs; everything else is passed around. */
static volatile sig_atomic_t finishing;
static volatile sig_atomic_t sentinel_printed;
static volatile sig_atomic_t share_mounted;
static volatile sig_atomic_t timeout_s = DEFAULT_TIMEOUT_S;
static const char *volatile stage = "start";
static volatile int log_fd = -1;
static volatile pid_t watchdog_pid;

struct job {
	char workload[32];
	char out[128];
	long param;
	int have_param;
	long timeout;
	char args[MAX_ARGS][MAX_ARG_LEN + 1];
	int nargs;
};

/* The job: the exec workload takes its program's arguments from it. */
static struct job job;

struct workload {
	const char *name;
	long default_param;
	int from_boot;	/* tracing already on from the command line: do not switch it on */
	int (*run)(long param, char *why, size_t n);
};

/* --- async-signal-safe helpers (used on the way out, also from the SIGALRM handler) --- */

static size_t cat(char *dst, size_t size, const char *s)
{
	size_t len = strlen(dst);

	while (*s && len + 1 < size)
		dst[len++] = *s++;
	dst[len] = '\0';
	return len;
}

static void cat_ulong(char *dst, size_t size, unsigned long v)
{
	char tmp[24];
	int i = sizeof(tmp) - 1;

	tmp[i] = '\0';
	do {
		tmp[--i] = '0' + v % 10;
		v /= 10;
	} while (v && i > 0);
	cat(dst, size, tmp + i);
}

static void write_str(int fd, const char *s)
{
	size_t n = strlen(s);

	while (fd >= 0 && n) {
		ssize_t w = write(fd, s, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		s += w;
		n -= w;
	}
}

/*
 * A child that sleeps, then sends SIGALRM to init (replacing the previous one). Not alarm():
 * alarm() and setitimer() need CONFIG_POSIX_TIMERS, which tinyconfig kernels lack; nanosleep()
 * always works. Async-signal-safe (finish() re-arms it from the SIGALRM handler).
 */
static void watchdog_arm(unsigned int seconds)
{
	pid_t old = watchdog_pid, pid;

	if (old > 0) {
		kill(old, SIGKILL);
		waitpid(old, NULL, 0);
	}
	pid = fork();
	if (pid == 0) {
		struct timespec ts = { seconds, 0 };

		while (nanosleep(&ts, &ts) && errno == EINTR)
			;
		kill(1, SIGALRM);
		_exit(0);
	}
	watchdog_pid = pid > 0 ? pid : 0;
}

/* Writes the sentinel line to the console, once. */
static void print_sentinel(const char *line)
{
	char sentinel[600] = "\nKMT-STATUS: ";
	int fd = STDOUT_FILENO;

	if (sentinel_printed)
		return;
	sentinel_printed = 1;
	cat(sentinel, sizeof(sentinel), line);
	if (fcntl(STDOUT_FILENO, F_GETFD) < 0)
		fd = open("/dev/console", O_WRONLY | O_NOCTTY);
	write_str(fd, sentinel);
}

/*
 * The one way out: status file, one sentinel line, sync, reboot. reason NULL means ok.
 * Entered again (the grace watchdog fired because the share hung), it prints a fail sentinel if
 * none was printed yet and reboots at once.
 */
static void finish(const char *reason)
{
	static char line[512];
	int fd;

	if (finishing) {
		if (!sentinel_printed) {
			char hung[560] = "fail writing the status hung (";

			cat(hung, sizeof(hung), line);
			hung[strlen(hung) - 1] = ')';	/* in place of line's newline */
			cat(hung, sizeof(hung), "\n");
			print_sentinel(hung);
		}
		reboot(RB_AUTOBOOT);
		_exit(1);
	}
	finishing = 1;
	watchdog_arm(FINISH_GRACE_S);

	if (reason) {
		cat(line, sizeof(line), "fail ");
		cat(line, sizeof(line), *reason ? reason : "unknown");
	} else {
		cat(line, sizeof(line), "ok");
	}
	/* One line whatever the reason holds. */
	for (char *p = line; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	line[sizeof(line) - 2] = '\0';	/* room for the newline */
	cat(line, sizeof(line), "\n");

	/* The status file first: whoever sees the sentinel may read it at once. */
	if (share_mounted) {
		fd = open(SHARE "/status", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		write_str(fd, line);
		if (fd >= 0) {
			fsync(fd);
			close(fd);
		}
		write_str(log_fd, "kmt-init: status: ");
		write_str(log_fd, line);
		if (log_fd >= 0)
			fsync(log_fd);
	}
	print_sentinel(line);
	sync();
	reboot(RB_AUTOBOOT);
	_exit(1);	/* PID 1 exiting panics the kernel; panic=-1 reboots */
}

static void on_alarm(int sig)
{
	char why[160] = "timeout after ";

	(void)sig;
	if (finishing) {
		reboot(RB_AUTOBOOT);
		_exit(1);
	}
	cat_ulong(why, sizeof(why), timeout_s);
	cat(why, sizeof(why), " s in ");
	cat(why, sizeof(why), stage);
	finish(why);
}

/* --- ordinary helpers --- */

static void log_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void log_msg(const char *fmt, ...)
{
	char line[1024] = "kmt-init: ";
	size_t n = strlen(line);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	va_end(ap);
	strcat(line, "\n");
	write_str(STDERR_FILENO, line);
	write_str(log_fd, line);
}

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...)
{
	char why[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	log_msg("FAILED: %s", why);
	finish(why);
	_exit(1);
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000;
}

static int write_file(const char *path, const char *s)
{
	size_t n = strlen(s);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t w;
	int e;

	if (fd < 0)
		return -1;
	w = write(fd, s, n);
	e = errno;
	close(fd);
	if (w == (ssize_t)n)
		return 0;
	errno = w < 0 ? e : EIO;
	return -1;
}

/* Reads a whole (small) file; NULL with errno on failure. */
static char *read_text(const char *path, size_t max)
{
	char *buf = malloc(max + 1);
	size_t len = 0;
	int fd, e;

	if (!buf)
		return NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		goto err;
	while (len < max) {
		ssize_t r = read(fd, buf + len, max - len);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			e = errno;
			close(fd);
			errno = e;
			goto err;
		}
		if (r == 0)
			break;
		len += r;
	}
	close(fd);
	buf[len] = '\0';
	return buf;
err:
	e = errno;
	free(buf);
	errno = e;
	return NULL;
}

static void mount_fs(const char *src, const char *dir, const char *type, const char *data)
{
	if (mkdir(dir, 0755) && errno != EEXIST)
		fail("mkdir %s: %s", dir, strerror(errno));
	/* EBUSY: already there (devtmpfs with DEVTMPFS_MOUNT). */
	if (mount(src, dir, type, MS_NOSUID, data) && errno != EBUSY)
		fail("mount %s on %s: %s", type, dir, strerror(errno));
}

/* The kernel opens /dev/console for us when the initramfs has the node; else do it now. */
static void ensure_console(void)
{
	int fd;

	if (fcntl(STDOUT_FILENO, F_GETFD) >= 0 && fcntl(STDERR_FILENO, F_GETFD) >= 0)
		return;
	fd = open("/dev/console", O_RDWR | O_NOCTTY);
	if (fd < 0)
		return;
	for (int i = 0; i < 3; i++)
		if (fd != i)
			dup2(fd, i);
	if (fd > 2)
		close(fd);
}

static void mount_share(void)
{
	int err = 0;

	if (mkdir("/mnt", 0755) && errno != EEXIST)
		fail("mkdir /mnt: %s", strerror(errno));
	if (mkdir(SHARE, 0755) && errno != EEXIST)
		fail("mkdir %s: %s", SHARE, strerror(errno));
	for (int i = 0; i < SHARE_MOUNT_TRIES; i++) {
		if (!mount(SHARE_TAG, SHARE, "9p", 0, SHARE_OPTS)) {
			share_mounted = 1;
			if (i)
				log_msg("9p share mounted after %d retries", i);
			return;
		}
		err = errno;
		/* ENODEV: no 9p file system in this kernel, retrying will not help. */
		if (err == ENODEV)
			break;
		sleep_ms(100);
	}
	fail("mount 9p tag %s on %s (%s): %s", SHARE_TAG, SHARE, SHARE_OPTS, strerror(err));
}

/*
 * A guest without an RTC driver (arm64 tinyconfig) starts its clock at 1970, and meta.json wants
 * times since the epoch: take the host's time from a file just created on the share (9p asks the
 * host for its times).
 */
static void fix_clock(int fd_on_share)
{
	struct timespec now;
	struct stat st;

	clock_gettime(CLOCK_REALTIME, &now);
	if (now.tv_sec >= CLOCK_PLAUSIBLE)
		return;
	if (fstat(fd_on_share, &st) || st.st_mtim.tv_sec < CLOCK_PLAUSIBLE) {
		log_msg("warning: guest clock at %lld s and no host time from the share",
			(long long)now.tv_sec);
		return;
	}
	if (clock_settime(CLOCK_REALTIME, &st.st_mtim))
		log_msg("warning: cannot set the clock: %s", strerror(errno));
	else
		log_msg("guest clock was at %lld s (no RTC?); set from the share to %lld s",
			(long long)now.tv_sec, (long long)st.st_mtim.tv_sec);
}

/* --- the job --- */

static int valid_out(const char *s)
{
	if (!*s || !strcmp(s, ".") || !strcmp(s, ".."))
		return 0;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("._-", *s))
			return 0;
	return 1;
}

static int parse_ulong(const char *s, long max, long *out)
{
	char *end;
	long v;

	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (*end || errno || v > max)
		return -1;
	*out = v;
	return 0;
}

static void job_set(struct job *j, const char *key, const char *val, const char *from)
{
	if (!strcmp(key, "workload")) {
		if (strlen(val) >= sizeof(j->workload))
			fail("job (%s): workload name too long: %s", from, val);
		strcpy(j->workload, val);
	} else if (!strcmp(key, "param")) {
		if (parse_ulong(val, 1000000000L, &j->param))
			fail("job (%s): param is not a decimal number <= 1e9: %s", from, val);
		j->have_param = 1;
	} else if (!strcmp(key, "out")) {
		if (strlen(val) >= sizeof(j->out) || !valid_out(val))
			fail("job (%s): out must be one directory name of [A-Za-z0-9._-]: %s", from,
			     val);
		strcpy(j->out, val);
	} else if (!strcmp(key, "arg")) {
		if (j->nargs >= MAX_ARGS || strlen(val) > MAX_ARG_LEN)
			fail("job (%s): at most %d arg lines of at most %d bytes: %s", from, MAX_ARGS,
			     MAX_ARG_LEN, val);
		strcpy(j->args[j->nargs++], val);
	} else if (!strcmp(key, "timeout")) {
		if (parse_ulong(val, 86400, &j->timeout) || j->timeout == 0)
			fail("job (%s): timeout must be 1..86400 seconds: %s", from, val);
	} else {
		log_msg("job (%s): ignoring unknown key %s", from, key);
	}
}

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

static void read_job(struct job *j)
{
	char *text, *line, *save, *tok;

	*j = (struct job){ .workload = "selftest", .out = "trace", .timeout = DEFAULT_TIMEOUT_S };

	text = read_text(SHARE "/job", 65536);
	if (!text && errno != ENOENT)
		fail("read %s/job: %s", SHARE, strerror(errno));
	for (line = text ? strtok_r(text, "\n", &save) : NULL; line;
	     line = strtok_r(NULL, "\n", &save)) {
		char *hash = strchr(line, '#'), *eq;

		if (hash)
			*hash = '\0';
		line = trim(line);
		if (!*line)
			continue;
		eq = strchr(line, '=');
		if (!eq)
			fail("job (%s/job): not key=value: %s", SHARE, line);
		*eq = '\0';
		job_set(j, trim(line), trim(eq + 1), SHARE "/job");
	}
	free(text);

	text = read_text("/proc/cmdline", 65536);
	if (!text)
		fail("read /proc/cmdline: %s", strerror(errno));
	for (tok = strtok_r(text, " \t\n", &save); tok; tok = strtok_r(NULL, " \t\n", &save)) {
		char *eq;

		if (strncmp(tok, "kmt.", 4))
			continue;
		eq = strchr(tok, '=');
		if (!eq)
			fail("job (kernel command line): not kmt.key=value: %s", tok);
		*eq = '\0';
		job_set(j, tok + 4, eq + 1, "kernel command line");
	}
	free(text);
}

/* --- workloads --- */

static int run_selftest(long n, char *why, size_t size)
{
	for (long i = 0; i < n; i++) {
		/* Synchronous (contracts.md section 3): logged when the write returns. */
		if (write_file(KMT_DIR "/selftest", "run")) {
			snprintf(why, size, "selftest: write run to %s/selftest: %s%s", KMT_DIR,
				 strerror(errno),
				 errno == ENOENT ? " (no CONFIG_KMEMTRACE_SELFTEST?)" : "");
			return -1;
		}
	}
	return 0;
}

static int run_boot(long ms, char *why, size_t size)
{
	(void)why;
	(void)size;
	sleep_ms(ms);
	return 0;
}

/* fork + execve; with to_log the child's stdout and stderr go to guest.log. -1: fork failed. */
static pid_t spawn(const char *path, char *const argv[], char *const envp[], int to_log)
{
	pid_t pid = fork();

	if (pid == 0) {
		if (to_log && log_fd >= 0) {
			dup2(log_fd, STDOUT_FILENO);
			dup2(log_fd, STDERR_FILENO);
		}
		execve(path, argv, envp);
		_exit(127);
	}
	return pid;
}

/* The child's wait status, or -1 when waitpid fails. */
static int wait_child(pid_t pid)
{
	int status;
	pid_t r;

	while ((r = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
		;
	return r < 0 ? -1 : status;
}

static int run_fork(long n, char *why, size_t size)
{
	for (long i = 0; i < n; i++) {
		char *argv[] = { HELPER, NULL };
		char *envp[] = { NULL };
		pid_t pid = spawn(HELPER, argv, envp, 0);
		int status;

		if (pid < 0) {
			snprintf(why, size, "fork: round %ld: fork: %s", i, strerror(errno));
			return -1;
		}
		status = wait_child(pid);
		if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status)) {
			snprintf(why, size, "fork: round %ld: %s exited with status %#x", i, HELPER,
				 status);
			return -1;
		}
	}
	return 0;
}

static int run_files(long n, char *why, size_t size)
{
	static char data[8192];
	const char *dir = "/tmp/kmt-files";

	memset(data, 'k', sizeof(data));
	if (mkdir(dir, 0755) && errno != EEXIST) {
		snprintf(why, size, "files: mkdir %s: %s", dir, strerror(errno));
		return -1;
	}
	for (long i = 0; i < n; i++) {
		char path[64];
		size_t len = 512 * (1 + i % 16);
		int fd;

		snprintf(path, sizeof(path), "%s/f%ld", dir, i % 64);
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0 || write(fd, data, len) != (ssize_t)len || close(fd) || unlink(path)) {
			snprintf(why, size, "files: round %ld: %s: %s", i, path, strerror(errno));
			return -1;
		}
	}
	return 0;
}

/* Copy the exec workload's program off the share (before tracing: not part of the trace). */
static int copy_program(char *why, size_t size)
{
	static char buf[65536];
	int in = open(PROGRAM, O_RDONLY | O_CLOEXEC), out;
	ssize_t n = 0;

	if (in < 0) {
		snprintf(why, size, "exec: open %s: %s (no program on the share?)", PROGRAM,
			 strerror(errno));
		return -1;
	}
	out = open(PROGRAM_COPY, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
	if (out < 0) {
		snprintf(why, size, "exec: create %s: %s", PROGRAM_COPY, strerror(errno));
		close(in);
		return -1;
	}
	while ((n = read(in, buf, sizeof(buf))) > 0) {
		for (ssize_t done = 0, w; done < n; done += w) {
			w = write(out, buf + done, n - done);
			if (w < 0) {
				n = -1;
				break;
			}
		}
		if (n < 0)
			break;
	}
	if (n < 0) {
		snprintf(why, size, "exec: copy %s to %s: %s", PROGRAM, PROGRAM_COPY,
			 strerror(errno));
		close(in);
		close(out);
		return -1;
	}
	close(in);
	if (close(out)) {
		snprintf(why, size, "exec: close %s: %s", PROGRAM_COPY, strerror(errno));
		return -1;
	}
	return 0;
}

static int run_exec(long n, char *why, size_t size)
{
	char *argv[MAX_ARGS + 2];
	char *envp[] = { "PATH=/bin", NULL };

	argv[0] = PROGRAM_COPY;
	for (int i = 0; i < job.nargs; i++)
		argv[i + 1] = job.args[i];
	argv[job.nargs + 1] = NULL;
	for (long i = 0; i < n; i++) {
		pid_t pid = spawn(PROGRAM_COPY, argv, envp, 1);
		int status;

		if (pid < 0) {
			snprintf(why, size, "exec: run %ld: fork: %s", i, strerror(errno));
			return -1;
		}
		status = wait_child(pid);
		if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status)) {
			snprintf(why, size, "exec: run %ld: the program ended with status %#x%s; see %s",
				 i, status,
				 status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 127 ?
				 " (127: execve failed, or the program's own 127)" : "",
				 SHARE "/guest.log");
			return -1;
		}
	}
	return 0;
}

/* Runs kmt-bench with `argv` (its lines go to guest.log for the host); it must exit 0. */
static int run_kmt_bench(char **argv, const char *what, char *why, size_t size)
{
	char *envp[] = { NULL };
	int status;
	pid_t pid = spawn(BENCH, argv, envp, 1);

	if (pid < 0) {
		snprintf(why, size, "%s: fork: %s", what, strerror(errno));
		return -1;
	}
	status = wait_child(pid);
	if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status)) {
		snprintf(why, size, "%s: %s ended with status %#x; see %s", what, BENCH, status,
			 SHARE "/guest.log");
		return -1;
	}
	return 0;
}

/* kmt-bench switches the tracing modes itself. */
static int run_bench(long n, char *why, size_t size)
{
	char ops[24];
	char *argv[] = { BENCH, ops, NULL };

	snprintf(ops, sizeof(ops), "%ld", n);
	return run_kmt_bench(argv, "bench", why, size);
}

/*
 * kmt-bench load: workers on every CPU at rising rates while the collector drains into the trace
 * directory, whose files it watches grow.
 */
static int run_load(long n, char *why, size_t size)
{
	char seconds[24], dir[PATH_MAX];
	char *argv[] = { BENCH, "load", seconds, dir, NULL };

	snprintf(seconds, sizeof(seconds), "%ld", n);
	snprintf(dir, sizeof(dir), "%s/%s", SHARE, job.out);
	return run_kmt_bench(argv, "load", why, size);
}

/* The host half of each row is harness/src/workload.rs; a test there keeps the two equal. */
static const struct workload workloads[] = {
	{ "selftest", 1, 0, run_selftest },
	{ "boot", 0, 1, run_boot },
	{ "fork", 100, 0, run_fork },
	{ "files", 1000, 0, run_files },
	{ "exec", 1, 0, run_exec },
	{ "bench", 200, 0, run_bench },
	{ "load", 10, 0, run_load },
};

/* --- the collector --- */

static const char *collector_exit_meaning(int code)
{
	static const char *const meaning[] = {
		"complete", "internal error", "usage error", "no kmemtrace in debugfs",
		"unknown ABI version", "output error (read-only or full share?)", "input error",
	};

	if (code >= 0 && code < (int)(sizeof(meaning) / sizeof(meaning[0])))
		return meaning[code];
	return code == 127 ? "could not exec " COLLECTOR : "unknown";
}

static void describe_status(int status, char *buf, size_t size)
{
	if (WIFEXITED(status))
		snprintf(buf, size, "exit %d (%s)", WEXITSTATUS(status),
			 collector_exit_meaning(WEXITSTATUS(status)));
	else if (WIFSIGNALED(status))
		snprintf(buf, size, "killed by signal %d", WTERMSIG(status));
	else
		snprintf(buf, size, "status %#x", status);
}

/*
 * Memory allocation profiling's account (/proc/allocinfo, kernels built with
 * CONFIG_MEM_ALLOC_PROFILING) is read into memory faulted in before tracing starts, so that
 * taking a snapshot allocates nothing but what reading the file allocates in the kernel.
 */
struct snapshot {
	char *buf;
	size_t len;
};

static void snapshot_prepare(struct snapshot *s)
{
	s->buf = malloc(ALLOCINFO_MAX);
	if (!s->buf)
		fail("%d bytes for a snapshot of %s: out of memory", ALLOCINFO_MAX, ALLOCINFO);
	memset(s->buf, 0, ALLOCINFO_MAX);
	s->len = 0;
}

static void snapshot_take(struct snapshot *s)
{
	int fd = open(ALLOCINFO, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		fail("open %s: %s", ALLOCINFO, strerror(errno));
	s->len = 0;
	while (s->len < ALLOCINFO_MAX) {
		ssize_t r = read(fd, s->buf + s->len, ALLOCINFO_MAX - s->len);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			fail("read %s: %s", ALLOCINFO, strerror(errno));
		if (r == 0)
			break;
		s->len += r;
	}
	close(fd);
	if (s->len == ALLOCINFO_MAX)
		fail("%s is larger than %d bytes", ALLOCINFO, ALLOCINFO_MAX);
}

/*
 * The workload's last frees wait for RCU grace periods (a tmpfs inode, a dentry) and land
 * while the file is read: read it again every SETTLE_MS until two reads are the same, so that
 * the snapshot and the trace, which is still on, end with the same frees done.
 */
#define SETTLE_MS 100
#define SETTLE_TRIES 50

static void snapshot_settled(struct snapshot *s, struct snapshot *spare)
{
	int i;

	snapshot_take(s);
	for (i = 0; i < SETTLE_TRIES; i++) {
		struct snapshot t;

		sleep_ms(SETTLE_MS);
		snapshot_take(spare);
		if (spare->len == s->len && !memcmp(spare->buf, s->buf, s->len))
			return;
		t = *s;
		*s = *spare;
		*spare = t;
	}
	log_msg("allocinfo: still changing after %d reads %d ms apart", SETTLE_TRIES, SETTLE_MS);
}

static void snapshot_write(const struct snapshot *s, const char *outdir, const char *name)
{
	char path[PATH_MAX];
	size_t done = 0;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", outdir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		fail("open %s: %s", path, strerror(errno));
	while (done < s->len) {
		ssize_t w = write(fd, s->buf + done, s->len - done);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			fail("write %s: %s", path, w < 0 ? strerror(errno) : "short write");
		done += w;
	}
	if (close(fd))
		fail("close %s: %s", path, strerror(errno));
}

/* Stops the collector (SIGSTOP) and waits until it has stopped, out of any system call. */
static void pause_collector(pid_t pid)
{
	int status;

	if (kill(pid, SIGSTOP))
		fail("SIGSTOP the collector: %s", strerror(errno));
	while (waitpid(pid, &status, WUNTRACED) < 0)
		if (errno != EINTR)
			fail("wait for the collector to stop: %s", strerror(errno));
	if (!WIFSTOPPED(status)) {
		char text[96];

		describe_status(status, text, sizeof(text));
		fail("collector ended instead of stopping: %s, see guest.log", text);
	}
}

/* Starts kmemtraced and waits until it says it is collecting. */
static pid_t start_collector(const char *outdir)
{
	char status_text[96];
	int ready[2], status;
	struct pollfd p;
	char buf[16];
	pid_t pid;
	ssize_t r;

	if (pipe2(ready, O_CLOEXEC))
		fail("pipe: %s", strerror(errno));
	pid = fork();
	if (pid < 0)
		fail("fork the collector: %s", strerror(errno));
	if (pid == 0) {
		char *argv[] = { COLLECTOR, "-o", (char *)outdir, "-R", "3", NULL };
		char *envp[] = { NULL };
		int null = open("/dev/null", O_RDONLY);

		if (null >= 0)
			dup2(null, STDIN_FILENO);
		if (log_fd >= 0) {
			dup2(log_fd, STDOUT_FILENO);
			dup2(log_fd, STDERR_FILENO);
		}
		/* fd 3 survives the exec: dup2 clears close-on-exec, or clear it by hand. */
		if (ready[1] == 3)
			fcntl(3, F_SETFD, 0);
		else
			dup2(ready[1], 3);
		execve(COLLECTOR, argv, envp);
		_exit(127);
	}
	close(ready[1]);
	p = (struct pollfd){ .fd = ready[0], .events = POLLIN };
	if (poll(&p, 1, READY_TIMEOUT_MS) <= 0) {
		kill(pid, SIGKILL);
		fail("collector not ready after %d ms", READY_TIMEOUT_MS);
	}
	r = read(ready[0], buf, sizeof(buf) - 1);
	close(ready[0]);
	if (r <= 0) {
		/* Closed without "ready": it exited during setup. */
		waitpid(pid, &status, 0);
		describe_status(status, status_text, sizeof(status_text));
		fail("collector failed to start: %s, see guest.log", status_text);
	}
	return pid;
}

static void stop_collector(pid_t pid, const char *outdir)
{
	char status_text[96], meta[PATH_MAX + 16];
	long deadline = mono_ms() + STOP_TIMEOUT_MS;
	struct stat st;
	int status;
	pid_t r;

	kill(pid, SIGTERM);
	while ((r = waitpid(pid, &status, WNOHANG)) == 0) {
		if (mono_ms() > deadline) {
			kill(pid, SIGKILL);
			fail("collector did not stop within %d ms of SIGTERM", STOP_TIMEOUT_MS);
		}
		sleep_ms(10);
	}
	if (r < 0)
		fail("waitpid collector: %s", strerror(errno));
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		describe_status(status, status_text, sizeof(status_text));
		fail("collector %s, see guest.log", status_text);
	}
	snprintf(meta, sizeof(meta), "%s/meta.json", outdir);
	if (stat(meta, &st))
		fail("collector exited 0 but %s: %s", meta, strerror(errno));
}

int main(void)
{
	const struct workload *w = NULL;
	char outdir[PATH_MAX], why[400] = "", enabled[8] = "";
	struct snapshot before, after, probe;
	int allocinfo;
	struct sigaction sa = { .sa_handler = on_alarm, .sa_flags = SA_NODEFER };
	long t0 = mono_ms();
	int fd;
	pid_t collector;

	if (getpid() != 1) {
		fprintf(stderr, "init: not PID 1; refusing to run (it reboots the machine)\n");
		return 2;
	}
	sigaction(SIGALRM, &sa, NULL);
	watchdog_arm(DEFAULT_TIMEOUT_S);

	stage = "mounting file systems";
	mount_fs("proc", "/proc", "proc", NULL);
	mount_fs("sysfs", "/sys", "sysfs", NULL);
	mount_fs("devtmpfs", "/dev", "devtmpfs", NULL);
	ensure_console();
	mount_fs("debugfs", DEBUGFS, "debugfs", NULL);
	mount_fs("tmpfs", "/tmp", "tmpfs", "mode=1777");

	stage = "mounting the 9p share";
	mount_share();
	fd = open(SHARE "/guest.log", O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0)
		fail("open %s/guest.log: %s", SHARE, strerror(errno));
	log_fd = fd;
	fix_clock(fd);
	if (unlink(SHARE "/status") && errno != ENOENT)
		fail("remove stale %s/status: %s", SHARE, strerror(errno));

	stage = "reading the job";
	read_job(&job);
	for (size_t i = 0; i < sizeof(workloads) / sizeof(workloads[0]); i++)
		if (!strcmp(workloads[i].name, job.workload))
			w = &workloads[i];
	if (!w)
		fail("job: unknown workload %s (selftest, boot, fork, files, exec, bench, load)",
		     job.workload);
	if (!job.have_param)
		job.param = w->default_param;
	timeout_s = job.timeout;
	watchdog_arm(job.timeout);
	log_msg("job: workload=%s param=%ld out=%s timeout=%lds", w->name, job.param, job.out,
		job.timeout);

	stage = "preparing";
	snprintf(outdir, sizeof(outdir), "%s/%s", SHARE, job.out);
	if (mkdir(outdir, 0755) && errno != EEXIST)
		fail("mkdir %s: %s", outdir, strerror(errno));
	if (access(KMT_DIR, F_OK))
		fail("%s: %s (kernel without kmemtrace?)", KMT_DIR, strerror(errno));
	if (w->from_boot) {
		fd = open(KMT_DIR "/enabled", O_RDONLY | O_CLOEXEC);
		if (fd < 0 || read(fd, enabled, sizeof(enabled) - 1) < 1 || enabled[0] != '1')
			fail("boot: tracing is not on (boot with kmemtrace.enable=yes)");
		close(fd);
	}

	if (w->run == run_exec && copy_program(why, sizeof(why)))
		fail("%s", why);

	allocinfo = !access(ALLOCINFO, R_OK);
	if (allocinfo) {
		snapshot_prepare(&before);
		snapshot_prepare(&after);
		snapshot_prepare(&probe);
	}

	/* First: the kernel creates kmemtrace/cpu<N> when tracing is first switched on. */
	stage = "switching tracing on";
	if (!w->from_boot && write_file(KMT_DIR "/enabled", "1"))
		fail("write 1 to %s/enabled: %s", KMT_DIR, strerror(errno));
	/*
	 * After switching on: what the kernel allocates for the tracer then (relay buffers, the
	 * relay files, probe arrays) is not traced, and must not be in the window either. Not for
	 * boot: its window starts at boot, where allocinfo's counters start.
	 */
	if (allocinfo && !w->from_boot)
		snapshot_take(&before);
	stage = "starting the collector";
	collector = start_collector(outdir);

	stage = w->name;
	log_msg("running %s %ld", w->name, job.param);
	if (w->run(job.param, why, sizeof(why)))
		fail("%s", why);
	/*
	 * The collector is stopped for the second snapshot and tracing goes off before it goes on
	 * again: its 9p requests in flight would otherwise be live in the snapshot and freed
	 * within the trace.
	 */
	if (allocinfo) {
		pause_collector(collector);
		snapshot_settled(&after, &probe);
	}

	stage = "stopping the collector";
	if (write_file(KMT_DIR "/enabled", "0"))
		fail("write 0 to %s/enabled: %s", KMT_DIR, strerror(errno));
	if (allocinfo && kill(collector, SIGCONT))
		fail("SIGCONT the collector: %s", strerror(errno));
	stop_collector(collector, outdir);
	if (allocinfo) {
		stage = "writing the allocinfo snapshots";
		if (!w->from_boot)
			snapshot_write(&before, outdir, "allocinfo.before");
		snapshot_write(&after, outdir, "allocinfo.after");
		log_msg("allocinfo: %zu and %zu bytes", before.len, after.len);
	}
	log_msg("done in %ld ms after init started", mono_ms() - t0);
	finish(NULL);
	return 0;
}
