// SPDX-License-Identifier: GPL-2.0
/*
 * kmemtrace - log slab and page allocator events to user space through relay
 *
 * kmemtrace (Linux 2.6.29 - 2.6.33) revived on top of the kmem tracepoints:
 * every kmalloc(), kmem_cache_alloc(), kfree(), kmem_cache_free() and every
 * page allocator allocation and free becomes a packed binary record in a
 * per-CPU relay buffer, read from debugfs kmemtrace/cpu<N>. The record
 * layout is ABI version 2 (version 1 and, optionally, a call stack), see
 * Documentation/ABI/testing/debugfs-kmemtrace and
 * Documentation/trace/kmemtrace.rst.
 *
 * Notes on locking and context:
 *
 * - The probes run in whatever context the tracepoints fire in: process,
 *   softirq and hardirq context, with or without locks held. They never
 *   sleep, never allocate and take no lock. A record is reserved in the
 *   current CPU's relay buffer and filled with interrupts disabled, so
 *   nothing else on this CPU can reserve space in the same buffer between
 *   the reservation and the end of the copy.
 * - A per-CPU nesting counter, raised with interrupts disabled, is the
 *   recursion guard: an event raised while this CPU is already writing a
 *   record (an NMI, or an allocation made by the tracer itself) is not
 *   logged. The kmem tracepoints do not fire in NMI context in practice
 *   (the allocators are not NMI-safe), so nothing is lost that way.
 * - Allocations made while the tracer sets itself up or tears itself down
 *   (relay buffers, tracepoint probe arrays) are the tracer's own and are
 *   not logged: kmemtrace_setup_task marks the task doing it.
 * - The probes are registered and unregistered one by one, and under TCG
 *   each takes milliseconds (text patching). Records are written only
 *   while kmemtrace_logging is set, which happens once every probe is
 *   registered and is undone before the first is unregistered: without
 *   it, allocations logged while their frees are not yet (or no longer)
 *   traced look like lost frees and leaks at both ends of a trace.
 * - seq_num comes from one atomic counter shared by all CPUs. It is taken
 *   for every event the tracer means to log, before the reservation, so a
 *   record dropped because its buffer was full leaves a gap in the
 *   sequence; within one CPU's buffer the numbers increase.
 * - kmemtrace_mutex serialises enabling, disabling and the channel's setup.
 *   The channel, once opened, is never closed: its buffers stay readable
 *   after tracing is disabled.
 */

#define pr_fmt(fmt) "kmemtrace: " fmt

#include <linux/atomic.h>
#include <linux/build_bug.h>
#include <linux/cache.h>
#include <linux/debugfs.h>
#include <linux/fs.h>
#include <linux/init.h>
#include <linux/irqflags.h>
#include <linux/kallsyms.h>
#include <linux/kernel.h>
#include <linux/kstrtox.h>
#include <linux/mm.h>
#include <linux/mutex.h>
#include <linux/percpu.h>
#include <linux/preempt.h>
#include <linux/relay.h>
#include <linux/sched.h>
#include <linux/seq_file.h>
#include <linux/stacktrace.h>
#include <linux/string.h>
#include <linux/tracepoint.h>
#include <linux/uaccess.h>

#include <trace/events/kmem.h>

#include "slab.h"
#include "kmemtrace.h"

#define KMEMTRACE_ABI_VERSION		2
#define KMEMTRACE_SUBBUF_SIZE		(512 * 1024)
#define KMEMTRACE_MIN_DEF_SUBBUFS	20
#define KMEMTRACE_MAX_DEF_SUBBUFS	256
/* Frames searched for the call site's frame (or, for pages, below it). */
#define KMEMTRACE_WALK_LIMIT		16
#define KMEMTRACE_MAX_STACK_DEPTH	32
#define KMEMTRACE_FEATURE_STACK		1
#define KMEMTRACE_MAX_PAGE_RANGES	@max_page_ranges@

enum kmemtrace_event_id {
	KMEMTRACE_EVENT_ALLOC = 0,
	KMEMTRACE_EVENT_FREE,
};

enum kmemtrace_type_id {
	KMEMTRACE_TYPE_KMALLOC = 0,
	KMEMTRACE_TYPE_CACHE,
	KMEMTRACE_TYPE_PAGES,
};

/* The header of every record, and a whole free record. */
struct kmemtrace_event {
	u8 event_id;
	u8 type_id;
	u16 event_size;
	s32 seq_num;
	u64 call_site;
	u64 ptr;
} __packed;

/* What follows the header in an allocation record. */
struct kmemtrace_stats_alloc {
	u64 bytes_req;
	u64 bytes_alloc;
	u32 gfp_flags;
	s32 numa_node;
} __packed;

struct kmemtrace_alloc_event {
	struct kmemtrace_event ev;
	struct kmemtrace_stats_alloc stats;
} __packed;

/*
 * The stack feature, after the mandatory fields: the return addresses
 * after the call site's own frame, the caller of the call site's function
 * first. feature_size is 4 + 8 * depth.
 */
struct kmemtrace_stack {
	u16 feature_size;
	u8 feature_id;
	u8 depth;
	u64 ips[KMEMTRACE_MAX_STACK_DEPTH];
} __packed;

static struct rchan *kmemtrace_chan;
static struct dentry *kmemtrace_dir;
static bool kmemtrace_probes_on;
static bool kmemtrace_logging;
static DEFINE_MUTEX(kmemtrace_mutex);

static bool kmemtrace_enable_at_boot __initdata;
/* 0: sized from memory when the channel is opened */
static unsigned int kmemtrace_n_subbufs;
/* Return addresses per record, 0 for no stack feature. */
static unsigned int kmemtrace_stack_depth __read_mostly;

static atomic_t kmemtrace_seq = ATOMIC_INIT(0);
static atomic_t kmemtrace_overruns = ATOMIC_INIT(0);
static DEFINE_PER_CPU(unsigned int, kmemtrace_nesting);
/*
 * Bytes of records this CPU wrote into its buffer, and dropped because the
 * buffer was full, since the channel was opened: a reader that read
 * cpu<N> to the end holds exactly kmemtrace_logged of CPU N.
 */
static DEFINE_PER_CPU(u64, kmemtrace_logged);
static DEFINE_PER_CPU(u64, kmemtrace_dropped);
static struct task_struct *kmemtrace_setup_task;

/*
 * Text ranges of the page allocator's entry points and helpers. A page
 * event's call site is the first return address on the stack outside of
 * them, found below the first frame inside them.
 */
struct kmemtrace_range {
	unsigned long start;
	unsigned long end;
};

static const char * const kmemtrace_page_api[] = {
@page_api@
};

static struct kmemtrace_range kmemtrace_page_ranges[KMEMTRACE_MAX_PAGE_RANGES] __read_mostly;
static unsigned int kmemtrace_nr_page_ranges __read_mostly;

/*
 * The last slab free on this CPU, per interrupt context level (task,
 * softirq, hardirq, NMI): its call site and the slab function (kfree or
 * kmem_cache_free). The slab allocator reaches the page allocator through
 * tail calls when a free empties a slab, so the stack then shows the slab
 * free's caller right above the page allocator; such a page free is
 * attributed to the slab function instead. One entry per level, so that an
 * interrupt's own slab free between a task's slab free and the page free
 * it causes does not hide the task's.
 */
struct kmemtrace_slab_free {
	unsigned long call_site;
	unsigned long func;
};

static DEFINE_PER_CPU(struct kmemtrace_slab_free, kmemtrace_last_slab_free[4]);

static int __init early_kmemtrace_enable(char *buf)
{
	return kstrtobool(buf, &kmemtrace_enable_at_boot);
}
early_param("kmemtrace.enable", early_kmemtrace_enable);

static int __init early_kmemtrace_subbufs(char *buf)
{
	unsigned int n;
	int ret;

	if (!buf)
		return -EINVAL;
	ret = kstrtouint(buf, 0, &n);
	if (ret)
		return ret;
	if (n < 2 || n > UINT_MAX / KMEMTRACE_SUBBUF_SIZE)
		return -EINVAL;
	kmemtrace_n_subbufs = n;
	return 0;
}
early_param("kmemtrace.subbufs", early_kmemtrace_subbufs);

static int __init early_kmemtrace_stack_depth(char *buf)
{
	unsigned int n;
	int ret;

	if (!buf)
		return -EINVAL;
	ret = kstrtouint(buf, 0, &n);
	if (ret)
		return ret;
	if (n > KMEMTRACE_MAX_STACK_DEPTH)
		return -EINVAL;
	kmemtrace_stack_depth = n;
	return 0;
}
early_param("kmemtrace.stack_depth", early_kmemtrace_stack_depth);

/*
 * The default size of each CPU's buffer: a sixteenth of memory, at most an
 * eighth of it for all CPUs together, between 20 sub-buffers (10 MiB, the
 * original's default) and 256 (128 MiB). A boot logs mostly on the boot CPU
 * before the collector runs: 11.5 MB on x86_64 with 512 MiB, where this gives
 * 2 x 30 MiB.
 */
static unsigned int kmemtrace_default_subbufs(void)
{
	u64 ram = (u64)totalram_pages() << PAGE_SHIFT;
	u64 per_cpu = min(ram / 16, ram / 8 / num_possible_cpus());

	return clamp_t(u64, per_cpu / KMEMTRACE_SUBBUF_SIZE,
		       KMEMTRACE_MIN_DEF_SUBBUFS, KMEMTRACE_MAX_DEF_SUBBUFS);
}

static void kmemtrace_log(u8 event_id, u8 type_id, unsigned long call_site,
			  const void *ptr,
			  const struct kmemtrace_stats_alloc *stats,
			  const struct kmemtrace_stack *stack)
{
	struct kmemtrace_alloc_event rec;
	size_t head = stats ? sizeof(rec) : sizeof(rec.ev);
	size_t size = head + (stack ? stack->feature_size : 0);
	unsigned long flags;
	void *buf;

	if (unlikely(!READ_ONCE(kmemtrace_logging)))
		return;
	if (unlikely(in_task() && READ_ONCE(kmemtrace_setup_task) == current))
		return;

	/*
	 * Interrupts off: the record is reserved in this CPU's buffer and
	 * filled before anything else on this CPU can reserve space in it,
	 * and the task cannot move to another CPU's buffer meanwhile.
	 */
	local_irq_save(flags);
	if (__this_cpu_inc_return(kmemtrace_nesting) != 1)
		goto out;

	rec.ev.event_id = event_id;
	rec.ev.type_id = type_id;
	rec.ev.event_size = size;
	rec.ev.seq_num = atomic_inc_return(&kmemtrace_seq);
	rec.ev.call_site = call_site;
	rec.ev.ptr = (unsigned long)ptr;
	if (stats)
		rec.stats = *stats;

	buf = relay_reserve(kmemtrace_chan, size);
	if (buf) {
		memcpy(buf, &rec, head);
		if (stack)
			memcpy(buf + head, stack, stack->feature_size);
		__this_cpu_add(kmemtrace_logged, size);
	} else {
		__this_cpu_add(kmemtrace_dropped, size);
		atomic_add(size, &kmemtrace_overruns);
	}
out:
	__this_cpu_dec(kmemtrace_nesting);
	local_irq_restore(flags);
}

static void kmemtrace_log_alloc(u8 type_id, unsigned long call_site,
				const void *ptr, size_t bytes_req,
				size_t bytes_alloc, gfp_t gfp_flags, int node,
				const struct kmemtrace_stack *stack)
{
	struct kmemtrace_stats_alloc stats = {
		.bytes_req	= bytes_req,
		.bytes_alloc	= bytes_alloc,
		.gfp_flags	= (__force u32)gfp_flags,
		.numa_node	= node,
	};

	kmemtrace_log(KMEMTRACE_EVENT_ALLOC, type_id, call_site, ptr, &stats,
		      stack);
}

static bool kmemtrace_in_page_api(unsigned long ip)
{
	unsigned int i;

	for (i = 0; i < kmemtrace_nr_page_ranges; i++) {
		if (ip >= kmemtrace_page_ranges[i].start &&
		    ip < kmemtrace_page_ranges[i].end)
			return true;
	}
	return false;
}

/*
 * One walk of the stack serves what a record needs from it. The page
 * tracepoints do not pass a call site: skip the tracer's own frames up to
 * the first frame inside the page allocator, then its frames; the next
 * return address is the call site (if no frame of the page allocator is
 * found, the tracepoint's site is kept). A slab event's call site is known:
 * its frame is the one whose return address it is. With stacks on, the
 * return addresses after the call site's frame are the stack.
 */
struct kmemtrace_walk {
	unsigned long call_site;
	struct kmemtrace_stack *stack;
	unsigned int want;
	unsigned int searched;
	bool pages;
	bool inside;
	bool found;
};

static bool kmemtrace_walk_entry(void *cookie, unsigned long ip)
{
	struct kmemtrace_walk *w = cookie;

	if (w->found) {
		w->stack->ips[w->stack->depth++] = ip;
		return w->stack->depth < w->want;
	}
	if (!w->pages) {
		w->found = ip == w->call_site;
	} else if (kmemtrace_in_page_api(ip)) {
		w->inside = true;
	} else if (w->inside) {
		w->call_site = ip;
		w->found = true;
	}
	if (w->found)
		return w->want > 0;
	/* Most page events find their call site within 4 to 8 frames. */
	return ++w->searched < KMEMTRACE_WALK_LIMIT;
}

/*
 * Walks the stack if a page event's call site or a stack is wanted. Returns
 * the stack feature to log, or NULL with stacks off. A stack whose call site
 * was not found on the stack has depth 0.
 */
static struct kmemtrace_stack *kmemtrace_walk(struct kmemtrace_walk *w)
{
	struct kmemtrace_stack *stack = w->stack;

	w->want = READ_ONCE(kmemtrace_stack_depth);
	if (unlikely(!READ_ONCE(kmemtrace_logging)))
		return NULL;
	stack->depth = 0;
	if (w->pages || w->want)
		arch_stack_walk(kmemtrace_walk_entry, w, current, NULL);
	if (!w->want)
		return NULL;
	stack->feature_id = KMEMTRACE_FEATURE_STACK;
	stack->feature_size = offsetof(struct kmemtrace_stack, ips) +
			      stack->depth * sizeof(stack->ips[0]);
	return stack;
}

static struct kmemtrace_stack *kmemtrace_slab_stack(struct kmemtrace_stack *stack,
						    unsigned long call_site)
{
	struct kmemtrace_walk w = { .call_site = call_site, .stack = stack };

	return kmemtrace_walk(&w);
}

static void kmemtrace_kmalloc(void *ignore, unsigned long call_site,
			      const void *ptr, size_t bytes_req,
			      size_t bytes_alloc, gfp_t gfp_flags, int node)
{
	struct kmemtrace_stack stack;

	kmemtrace_log_alloc(KMEMTRACE_TYPE_KMALLOC, call_site, ptr, bytes_req,
			    bytes_alloc, gfp_flags, node,
			    kmemtrace_slab_stack(&stack, call_site));
}

static void kmemtrace_kmem_cache_alloc(void *ignore, unsigned long call_site,
				       const void *ptr, struct kmem_cache *s,
				       gfp_t gfp_flags, int node)
{
	struct kmemtrace_stack stack;

	kmemtrace_log_alloc(KMEMTRACE_TYPE_CACHE, call_site, ptr,
			    s->object_size, s->size, gfp_flags, node,
			    kmemtrace_slab_stack(&stack, call_site));
}

static void kmemtrace_note_slab_free(unsigned long call_site, void *func)
{
	struct kmemtrace_slab_free *last;
	unsigned long flags;

	local_irq_save(flags);
	last = this_cpu_ptr(&kmemtrace_last_slab_free[interrupt_context_level()]);
	last->call_site = call_site;
	last->func = (unsigned long)dereference_symbol_descriptor(func);
	local_irq_restore(flags);
}

static void kmemtrace_kfree(void *ignore, unsigned long call_site,
			    const void *ptr)
{
	struct kmemtrace_stack stack;

	kmemtrace_note_slab_free(call_site, (void *)kfree);
	kmemtrace_log(KMEMTRACE_EVENT_FREE, KMEMTRACE_TYPE_KMALLOC, call_site,
		      ptr, NULL, kmemtrace_slab_stack(&stack, call_site));
}

static void kmemtrace_kmem_cache_free(void *ignore, unsigned long call_site,
				      const void *ptr,
				      const struct kmem_cache *s)
{
	struct kmemtrace_stack stack;

	kmemtrace_note_slab_free(call_site, (void *)kmem_cache_free);
	kmemtrace_log(KMEMTRACE_EVENT_FREE, KMEMTRACE_TYPE_CACHE, call_site,
		      ptr, NULL, kmemtrace_slab_stack(&stack, call_site));
}

static void kmemtrace_mm_page_alloc(void *ignore, struct page *page,
				    unsigned int order, gfp_t gfp_flags,
				    int migratetype)
{
	struct kmemtrace_stack stack;
	struct kmemtrace_walk w = {
		.call_site = _RET_IP_, .stack = &stack, .pages = true,
	};
	struct kmemtrace_stack *st = kmemtrace_walk(&w);

	kmemtrace_log_alloc(KMEMTRACE_TYPE_PAGES, w.call_site,
			    page ? page_address(page) : NULL,
			    PAGE_SIZE << order, PAGE_SIZE << order, gfp_flags,
			    NUMA_NO_NODE, st);
}

/*
 * A page free that a slab free caused is logged with the slab function as
 * its call site; the walked call site, in the slab free's caller, is then
 * the first frame of its stack.
 */
static void kmemtrace_stack_push(struct kmemtrace_stack *stack,
				 unsigned int want, unsigned long ip)
{
	unsigned int keep = min(stack->depth, want - 1);

	memmove(&stack->ips[1], &stack->ips[0], keep * sizeof(stack->ips[0]));
	stack->ips[0] = ip;
	stack->depth = keep + 1;
	stack->feature_size = offsetof(struct kmemtrace_stack, ips) +
			      stack->depth * sizeof(stack->ips[0]);
}

static void kmemtrace_mm_page_free(void *ignore, struct page *page,
				   unsigned int order)
{
	struct kmemtrace_stack stack;
	struct kmemtrace_walk w = {
		.call_site = _RET_IP_, .stack = &stack, .pages = true,
	};
	struct kmemtrace_stack *st = kmemtrace_walk(&w);
	unsigned long call_site = w.call_site;
	struct kmemtrace_slab_free *last;
	unsigned long flags;

	local_irq_save(flags);
	last = this_cpu_ptr(&kmemtrace_last_slab_free[interrupt_context_level()]);
	if (call_site == last->call_site)
		call_site = last->func;
	local_irq_restore(flags);
	if (st && call_site != w.call_site)
		kmemtrace_stack_push(st, w.want, w.call_site);

	kmemtrace_log(KMEMTRACE_EVENT_FREE, KMEMTRACE_TYPE_PAGES, call_site,
		      page_address(page), NULL, st);
}

/* All probes are registered together, under kmemtrace_mutex. */
static int kmemtrace_register_probes(void)
{
	int ret;

	ret = register_trace_kmalloc(kmemtrace_kmalloc, NULL);
	if (ret)
		return ret;
	ret = register_trace_kmem_cache_alloc(kmemtrace_kmem_cache_alloc, NULL);
	if (ret)
		goto fail_kmalloc;
	ret = register_trace_kfree(kmemtrace_kfree, NULL);
	if (ret)
		goto fail_kmem_cache_alloc;
	ret = register_trace_kmem_cache_free(kmemtrace_kmem_cache_free, NULL);
	if (ret)
		goto fail_kfree;
	ret = register_trace_mm_page_alloc(kmemtrace_mm_page_alloc, NULL);
	if (ret)
		goto fail_kmem_cache_free;
	ret = register_trace_mm_page_free(kmemtrace_mm_page_free, NULL);
	if (ret)
		goto fail_mm_page_alloc;
	return 0;

fail_mm_page_alloc:
	unregister_trace_mm_page_alloc(kmemtrace_mm_page_alloc, NULL);
fail_kmem_cache_free:
	unregister_trace_kmem_cache_free(kmemtrace_kmem_cache_free, NULL);
fail_kfree:
	unregister_trace_kfree(kmemtrace_kfree, NULL);
fail_kmem_cache_alloc:
	unregister_trace_kmem_cache_alloc(kmemtrace_kmem_cache_alloc, NULL);
fail_kmalloc:
	unregister_trace_kmalloc(kmemtrace_kmalloc, NULL);
	tracepoint_synchronize_unregister();
	return ret;
}

static void kmemtrace_unregister_probes(void)
{
	unregister_trace_mm_page_free(kmemtrace_mm_page_free, NULL);
	unregister_trace_mm_page_alloc(kmemtrace_mm_page_alloc, NULL);
	unregister_trace_kmem_cache_free(kmemtrace_kmem_cache_free, NULL);
	unregister_trace_kfree(kmemtrace_kfree, NULL);
	unregister_trace_kmem_cache_alloc(kmemtrace_kmem_cache_alloc, NULL);
	unregister_trace_kmalloc(kmemtrace_kmalloc, NULL);
	tracepoint_synchronize_unregister();
}

static int kmemtrace_add_page_range(void *data, const char *name,
				    @kallsyms_cb_args@)
{
	struct kmemtrace_range *r;
	unsigned long size, offset;
	unsigned int i;
	size_t len;

	/* ppc64 ELFv1 names a function's text by its dot-symbol: ".__alloc_pages" */
	if (name[0] == '.')
		name++;
	len = strcspn(name, ".");

	/* Also match the compiler's clones: "name.cold", "name.isra.0"... */
	for (i = 0; i < ARRAY_SIZE(kmemtrace_page_api); i++) {
		if (strlen(kmemtrace_page_api[i]) == len &&
		    !strncmp(kmemtrace_page_api[i], name, len))
			break;
	}
	if (i == ARRAY_SIZE(kmemtrace_page_api))
		return 0;
	if (kmemtrace_nr_page_ranges == ARRAY_SIZE(kmemtrace_page_ranges))
		return 1;
	if (!kallsyms_lookup_size_offset(addr, &size, &offset))
		return 0;
	r = &kmemtrace_page_ranges[kmemtrace_nr_page_ranges++];
	r->start = addr - offset;
	r->end = r->start + size;
	return 0;
}

static void kmemtrace_find_page_api(void)
{
	if (kmemtrace_nr_page_ranges)
		return;
	kallsyms_on_each_symbol(kmemtrace_add_page_range, NULL);
	pr_info("%u page allocator text ranges for page call sites\n",
		kmemtrace_nr_page_ranges);
}

static struct dentry *kmemtrace_create_buf_file(const char *filename,
						struct dentry *parent,
						umode_t mode,
						struct rchan_buf *buf,
						int *is_global)
{
	/* relay_open() without a base filename: no file until late setup */
	if (!filename)
		return NULL;
	return debugfs_create_file(filename, mode, parent, buf,
				   &relay_file_operations);
}

static int kmemtrace_remove_buf_file(struct dentry *dentry)
{
	debugfs_remove(dentry);
	return 0;
}

/*
 * Never overwrite: when the reader has not consumed the oldest sub-buffer,
 * refuse the switch; kmemtrace_log() then counts the record's bytes in
 * total_overruns.
 */
static int kmemtrace_subbuf_start(struct rchan_buf *buf, void *subbuf,
				  @subbuf_start_args@)
{
	return !relay_buf_full(buf);
}

static const struct rchan_callbacks kmemtrace_relay_callbacks = {
	.subbuf_start		= kmemtrace_subbuf_start,
	.create_buf_file	= kmemtrace_create_buf_file,
	.remove_buf_file	= kmemtrace_remove_buf_file,
};

/*
 * Opens the channel if needed and registers the probes. Called with
 * kmemtrace_mutex held. @dir is NULL before debugfs is up: the channel's
 * files are then created later by relay_late_setup_files().
 */
static int kmemtrace_start(struct dentry *dir)
{
	struct rchan *chan = NULL;
	int ret;

	if (kmemtrace_probes_on)
		return 0;

	WRITE_ONCE(kmemtrace_setup_task, current);
	kmemtrace_find_page_api();
	if (!kmemtrace_chan) {
		if (!kmemtrace_n_subbufs)
			kmemtrace_n_subbufs = kmemtrace_default_subbufs();
		chan = relay_open(dir ? "cpu" : NULL, dir,
				  KMEMTRACE_SUBBUF_SIZE, kmemtrace_n_subbufs,
				  &kmemtrace_relay_callbacks, NULL);
		if (!chan) {
			ret = -ENOMEM;
			goto out;
		}
		kmemtrace_chan = chan;
	}
	ret = kmemtrace_register_probes();
	if (ret)
		goto out;
	kmemtrace_probes_on = true;
	WRITE_ONCE(kmemtrace_logging, true);
	chan = NULL;
out:
	if (chan) {
		kmemtrace_chan = NULL;
		relay_close(chan);
	}
	WRITE_ONCE(kmemtrace_setup_task, NULL);
	return ret;
}

/* Called with kmemtrace_mutex held. */
static void kmemtrace_stop(void)
{
	if (!kmemtrace_probes_on)
		return;
	WRITE_ONCE(kmemtrace_logging, false);
	WRITE_ONCE(kmemtrace_setup_task, current);
	kmemtrace_unregister_probes();
	kmemtrace_probes_on = false;
	/*
	 * No relay_flush(): read() returns the records of the sub-buffer being
	 * filled, so a reader drains everything without it. A flush would
	 * close sub-buffers that hold nothing, which relay's reader skips
	 * without consuming (it then returns later records again), and would
	 * switch other CPUs' buffers under their readers.
	 */
	WRITE_ONCE(kmemtrace_setup_task, NULL);
}

static ssize_t kmemtrace_enabled_read(struct file *file, char __user *ubuf,
				      size_t count, loff_t *ppos)
{
	char buf[4];
	int len;

	len = scnprintf(buf, sizeof(buf), "%d\n",
			READ_ONCE(kmemtrace_probes_on));
	return simple_read_from_buffer(ubuf, count, ppos, buf, len);
}

static ssize_t kmemtrace_enabled_write(struct file *file,
				       const char __user *ubuf, size_t count,
				       loff_t *ppos)
{
	bool enable;
	int ret;

	ret = kstrtobool_from_user(ubuf, count, &enable);
	if (ret)
		return ret;

	mutex_lock(&kmemtrace_mutex);
	if (enable)
		ret = kmemtrace_start(kmemtrace_dir);
	else
		kmemtrace_stop();
	mutex_unlock(&kmemtrace_mutex);

	return ret ? ret : count;
}

static const struct file_operations kmemtrace_enabled_fops = {
	.owner	= THIS_MODULE,
	.read	= kmemtrace_enabled_read,
	.write	= kmemtrace_enabled_write,
	.llseek	= default_llseek,
};

static ssize_t kmemtrace_overruns_read(struct file *file, char __user *ubuf,
				       size_t count, loff_t *ppos)
{
	char buf[16];
	int len;

	len = scnprintf(buf, sizeof(buf), "%u\n",
			(unsigned int)atomic_read(&kmemtrace_overruns));
	return simple_read_from_buffer(ubuf, count, ppos, buf, len);
}

static const struct file_operations kmemtrace_overruns_fops = {
	.owner	= THIS_MODULE,
	.read	= kmemtrace_overruns_read,
	.llseek	= default_llseek,
};

/* One line per possible CPU: the CPU, bytes logged, bytes dropped. */
static int kmemtrace_cpu_bytes_show(struct seq_file *m, void *v)
{
	unsigned int cpu;

	for_each_possible_cpu(cpu)
		seq_printf(m, "%u %llu %llu\n", cpu,
			   (unsigned long long)per_cpu(kmemtrace_logged, cpu),
			   (unsigned long long)per_cpu(kmemtrace_dropped, cpu));
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(kmemtrace_cpu_bytes);

static int kmemtrace_stack_depth_get(void *data, u64 *val)
{
	*val = READ_ONCE(kmemtrace_stack_depth);
	return 0;
}

/* Takes effect at the next event: every record says its own depth. */
static int kmemtrace_stack_depth_set(void *data, u64 val)
{
	if (val > KMEMTRACE_MAX_STACK_DEPTH)
		return -EINVAL;
	WRITE_ONCE(kmemtrace_stack_depth, val);
	return 0;
}

DEFINE_DEBUGFS_ATTRIBUTE(kmemtrace_stack_depth_fops, kmemtrace_stack_depth_get,
			 kmemtrace_stack_depth_set, "%llu\n");

static ssize_t kmemtrace_abi_version_read(struct file *file,
					  char __user *ubuf, size_t count,
					  loff_t *ppos)
{
	char buf[16];
	int len;

	len = scnprintf(buf, sizeof(buf), "%u\n", KMEMTRACE_ABI_VERSION);
	return simple_read_from_buffer(ubuf, count, ppos, buf, len);
}

static const struct file_operations kmemtrace_abi_version_fops = {
	.owner	= THIS_MODULE,
	.read	= kmemtrace_abi_version_read,
	.llseek	= default_llseek,
};

/*
 * The slab allocator the kernel was built with: which frees are allowed
 * depends on it (SLOB cannot kfree() a kmem_cache_alloc() object), so a
 * trace analysed elsewhere must say.
 */
#if defined(CONFIG_SLOB)
#define KMEMTRACE_ALLOCATOR "slob"
#elif defined(CONFIG_SLAB)
#define KMEMTRACE_ALLOCATOR "slab"
#elif defined(CONFIG_SLUB_TINY)
#define KMEMTRACE_ALLOCATOR "slub-tiny"
#else
#define KMEMTRACE_ALLOCATOR "slub"
#endif

static ssize_t kmemtrace_allocator_read(struct file *file, char __user *ubuf,
					size_t count, loff_t *ppos)
{
	static const char name[] = KMEMTRACE_ALLOCATOR "\n";

	return simple_read_from_buffer(ubuf, count, ppos, name,
				       sizeof(name) - 1);
}

static const struct file_operations kmemtrace_allocator_fops = {
	.owner	= THIS_MODULE,
	.read	= kmemtrace_allocator_read,
	.llseek	= default_llseek,
};

/*
 * With kmemtrace.enable=yes, trace from the earliest initcall: the channel
 * is opened without files (debugfs may not be up yet) and the probes are
 * registered. Before SMP bring-up, so secondary CPUs get their buffers from
 * relay's CPU hotplug callback.
 */
static int __init kmemtrace_early_init(void)
{
	int ret;

	BUILD_BUG_ON(sizeof(struct kmemtrace_event) != 24);
	BUILD_BUG_ON(sizeof(struct kmemtrace_alloc_event) != 48);

	if (!kmemtrace_enable_at_boot)
		return 0;

	mutex_lock(&kmemtrace_mutex);
	ret = kmemtrace_start(NULL);
	mutex_unlock(&kmemtrace_mutex);
	if (ret)
		pr_err("cannot trace from boot: %d\n", ret);
	else
		pr_info("tracing from boot, %u sub-buffers of %u bytes per CPU\n",
			kmemtrace_n_subbufs, KMEMTRACE_SUBBUF_SIZE);
	return 0;
}
early_initcall(kmemtrace_early_init);

static int __init kmemtrace_debugfs_init(void)
{
	struct dentry *dir;
	int ret = 0;

	dir = debugfs_create_dir("kmemtrace", NULL);
	if (IS_ERR(dir))
		return PTR_ERR(dir);

	mutex_lock(&kmemtrace_mutex);
	if (kmemtrace_chan) {
		WRITE_ONCE(kmemtrace_setup_task, current);
		ret = relay_late_setup_files(kmemtrace_chan, "cpu", dir);
		WRITE_ONCE(kmemtrace_setup_task, NULL);
	}
	if (ret) {
		/* Records nobody can read: stop, "enabled" can start afresh. */
		pr_err("cannot create the buffer files, tracing stopped: %d\n",
		       ret);
		kmemtrace_stop();
		relay_close(kmemtrace_chan);
		kmemtrace_chan = NULL;
	}
	debugfs_create_file("total_overruns", 0400, dir, NULL,
			    &kmemtrace_overruns_fops);
	debugfs_create_file("cpu_bytes", 0400, dir, NULL,
			    &kmemtrace_cpu_bytes_fops);
	debugfs_create_file("abi_version", 0400, dir, NULL,
			    &kmemtrace_abi_version_fops);
	debugfs_create_file("allocator", 0400, dir, NULL,
			    &kmemtrace_allocator_fops);
	debugfs_create_file("enabled", 0600, dir, NULL,
			    &kmemtrace_enabled_fops);
	debugfs_create_file_unsafe("stack_depth", 0600, dir, NULL,
				   &kmemtrace_stack_depth_fops);
	kmemtrace_selftest_init(dir);
	kmemtrace_dir = dir;
	mutex_unlock(&kmemtrace_mutex);
	return 0;
}
fs_initcall(kmemtrace_debugfs_init);
