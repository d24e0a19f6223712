// SPDX-License-Identifier: GPL-2.0
/*
 * kmemtrace known-answer selftest
 *
 * Writing "run" to debugfs kmemtrace/selftest makes the sequence below,
 * synchronously: when write() returns, every record of it has been logged.
 * Writing "release" frees the allocations leaked by earlier runs, on CPU A
 * (below), where they were allocated.
 *
 * Every allocation and free is made from a function whose name starts with
 * kmemtrace_selftest_ (noinline, and this file is built without sibling
 * call optimisation, so that every call site is a return address inside
 * one of them), so user space can pick the selftest's records out of a
 * trace by call-site symbol while the rest of the kernel allocates.
 *
 * One run, on the first online CPU (A) unless said otherwise:
 *  1. kmalloc() each size of kmemtrace_selftest_sizes[], then kfree() each,
 *     then kfree(NULL) once;
 *  2. one kmalloc() of kmemtrace_selftest_large_size, larger than the
 *     largest kmalloc cache with 4 KiB pages, then kfree();
 *  3. kmem_cache_alloc() KMEMTRACE_SELFTEST_NR_OBJS objects of the
 *     "kmemtrace_selftest" cache (object size KMEMTRACE_SELFTEST_OBJ_SIZE,
 *     never merged with another cache), then kmem_cache_free() each;
 *  4. kmem_cache_alloc_bulk() of KMEMTRACE_SELFTEST_NR_BULK objects of the
 *     same cache, then kmem_cache_free_bulk() of them;
 *  5. alloc_pages() of orders 0 to KMEMTRACE_SELFTEST_MAX_ORDER, then
 *     __free_pages() of each;
 *  6. one kmem_cache_alloc() from the same cache freed with kfree(), which
 *     SLAB and SLUB allow; SLOB does not (kfree() would read a size header
 *     that cache objects lack), so there it is freed with kmem_cache_free();
 *  7. one kmalloc(KMEMTRACE_SELFTEST_LEAK_SIZE) that is not freed (the
 *     deliberate leak) until "release" is written;
 *  8. one kmalloc(KMEMTRACE_SELFTEST_REMOTE_SIZE + kmemtrace.selftest_grow)
 *     on CPU A, freed with kfree() on the next online CPU (B); with a
 *     single CPU online it is freed on CPU A.
@selftest_doc_extra@
 *
 * kmemtrace.selftest_grow (boot parameter, default 0, also writable in
 * /sys/module/kmemtrace/parameters/) reproduces a regression on purpose: a
 * structure that grows by a few bytes and moves to a larger kmalloc size
 * class. It changes nothing but the request size of step 8.
 * The functions run in per-CPU workqueue workers bound to A and B, so that
 * no allocation and its free are split across CPUs except in step 8.
 */

#define pr_fmt(fmt) "kmemtrace selftest: " fmt

#include <linux/cpumask.h>
#include <linux/debugfs.h>
#include <linux/fs.h>
#include <linux/gfp.h>
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/list.h>
#include <linux/moduleparam.h>
#include <linux/mutex.h>
#include <linux/slab.h>
#include <linux/smp.h>
#include <linux/string.h>
#include <linux/uaccess.h>

#include "kmemtrace.h"

/* kmemtrace.selftest_grow, beside the tracer's own kmemtrace.* parameters. */
#undef MODULE_PARAM_PREFIX
#define MODULE_PARAM_PREFIX "kmemtrace."

#define KMEMTRACE_SELFTEST_OBJ_SIZE	72
#define KMEMTRACE_SELFTEST_NR_OBJS	16
#define KMEMTRACE_SELFTEST_NR_BULK	8
#define KMEMTRACE_SELFTEST_MAX_ORDER	3
#define KMEMTRACE_SELFTEST_LEAK_SIZE	333
#define KMEMTRACE_SELFTEST_REMOTE_SIZE	128
/* Step 8 stays a slab object (at most 4096 bytes) on every architecture. */
#define KMEMTRACE_SELFTEST_MAX_GROW	(4096 - KMEMTRACE_SELFTEST_REMOTE_SIZE)

/* All at most 4096 bytes: slab objects on every architecture, no large kmalloc. */
static const size_t kmemtrace_selftest_sizes[] = {
	1, 8, 24, 100, 200, 500, 1000, 3000, 4096,
};

/*
 * Step 2's request: more than KMALLOC_MAX_CACHE_SIZE (two pages) with 4 KiB
 * pages, and read with READ_ONCE() so that kmalloc() cannot see it at
 * compile time and takes the path of a size known only at run time.
 */
static size_t kmemtrace_selftest_large_size = 12000;

struct kmemtrace_selftest_leak {
	struct list_head list;
};

struct kmemtrace_selftest_ctx {
	void *remote;
};

static unsigned int kmemtrace_selftest_grow;
module_param_named(selftest_grow, kmemtrace_selftest_grow, uint, 0644);
MODULE_PARM_DESC(selftest_grow,
		 "bytes added to the request of the selftest's cross-CPU kmalloc (at most 3968)");

static DEFINE_MUTEX(kmemtrace_selftest_mutex);
static LIST_HEAD(kmemtrace_selftest_leaks);
static struct kmem_cache *kmemtrace_selftest_cache;

static noinline int kmemtrace_selftest_kmalloc(void)
{
	void *ptrs[ARRAY_SIZE(kmemtrace_selftest_sizes)];
	int ret = 0;
	int i;

	for (i = 0; i < ARRAY_SIZE(kmemtrace_selftest_sizes); i++) {
		ptrs[i] = kmalloc(kmemtrace_selftest_sizes[i], GFP_KERNEL);
		if (!ptrs[i])
			ret = -ENOMEM;
	}
	for (i = 0; i < ARRAY_SIZE(kmemtrace_selftest_sizes); i++)
		kfree(ptrs[i]);
	/* Legal and traced: the report counts it as a free of NULL. */
	kfree(NULL);
	return ret;
}

static noinline int kmemtrace_selftest_large(void)
{
	void *p = kmalloc(READ_ONCE(kmemtrace_selftest_large_size), GFP_KERNEL);

	if (!p)
		return -ENOMEM;
	kfree(p);
	return 0;
}

static noinline int kmemtrace_selftest_cache_objs(void)
{
	void *objs[KMEMTRACE_SELFTEST_NR_OBJS];
	int ret = 0;
	int i;

	for (i = 0; i < ARRAY_SIZE(objs); i++) {
		objs[i] = kmem_cache_alloc(kmemtrace_selftest_cache, GFP_KERNEL);
		if (!objs[i])
			ret = -ENOMEM;
	}
	for (i = 0; i < ARRAY_SIZE(objs); i++) {
		if (objs[i])
			kmem_cache_free(kmemtrace_selftest_cache, objs[i]);
	}
	return ret;
}

static noinline int kmemtrace_selftest_bulk(void)
{
	void *objs[KMEMTRACE_SELFTEST_NR_BULK];
	int n;

	/* All or nothing: 0 when it could not allocate them all. */
	n = kmem_cache_alloc_bulk(kmemtrace_selftest_cache, GFP_KERNEL,
				  ARRAY_SIZE(objs), objs);
	if (!n)
		return -ENOMEM;
	kmem_cache_free_bulk(kmemtrace_selftest_cache, @bulk_freed@, objs);
	return 0;
}

static noinline int kmemtrace_selftest_pages(void)
{
	struct page *pages[KMEMTRACE_SELFTEST_MAX_ORDER + 1];
	unsigned int order;
	int ret = 0;

	for (order = 0; order <= KMEMTRACE_SELFTEST_MAX_ORDER; order++) {
		pages[order] = alloc_pages(GFP_KERNEL, order);
		if (!pages[order])
			ret = -ENOMEM;
	}
	for (order = 0; order <= KMEMTRACE_SELFTEST_MAX_ORDER; order++) {
		if (pages[order])
			__free_pages(pages[order], order);
	}
	return ret;
}

static noinline int kmemtrace_selftest_cache_kfree(void)
{
	void *obj = kmem_cache_alloc(kmemtrace_selftest_cache, GFP_KERNEL);

	if (!obj)
		return -ENOMEM;
	/* Counted as a cache object freed with kfree(), allowed but on SLOB. */
	if (IS_ENABLED(CONFIG_SLOB))
		kmem_cache_free(kmemtrace_selftest_cache, obj);
	else
		kfree(obj);
	return 0;
}

static noinline int kmemtrace_selftest_leak(void)
{
	struct kmemtrace_selftest_leak *leak;

	BUILD_BUG_ON(sizeof(*leak) > KMEMTRACE_SELFTEST_LEAK_SIZE);
	leak = kmalloc(KMEMTRACE_SELFTEST_LEAK_SIZE, GFP_KERNEL);
	if (!leak)
		return -ENOMEM;
	list_add_tail(&leak->list, &kmemtrace_selftest_leaks);
	return 0;
}

static noinline int kmemtrace_selftest_remote_alloc(struct kmemtrace_selftest_ctx *ctx)
{
	size_t size = KMEMTRACE_SELFTEST_REMOTE_SIZE + READ_ONCE(kmemtrace_selftest_grow);

	ctx->remote = kmalloc(size, GFP_KERNEL);
	return ctx->remote ? 0 : -ENOMEM;
}

/* Runs on CPU B (or A when it is the only CPU online). */
static noinline int kmemtrace_selftest_remote_free(void *arg)
{
	struct kmemtrace_selftest_ctx *ctx = arg;

	kfree(ctx->remote);
	ctx->remote = NULL;
	return 0;
}

@selftest_funcs_extra@
/* Runs on CPU A: steps 1 to 7, and the allocation of step 8. */
static noinline int kmemtrace_selftest_local(void *arg)
{
	int ret;

	ret = kmemtrace_selftest_kmalloc();
	if (!ret)
		ret = kmemtrace_selftest_large();
	if (!ret)
		ret = kmemtrace_selftest_cache_objs();
	if (!ret)
		ret = kmemtrace_selftest_bulk();
	if (!ret)
		ret = kmemtrace_selftest_pages();
	if (!ret)
		ret = kmemtrace_selftest_cache_kfree();
	if (!ret)
		ret = kmemtrace_selftest_leak();
@selftest_calls_extra@
	if (!ret)
		ret = kmemtrace_selftest_remote_alloc(arg);
	return ret;
}

static noinline int kmemtrace_selftest_run(void)
{
	struct kmemtrace_selftest_ctx ctx = { };
	unsigned int cpu_a, cpu_b;
	int ret;

	if (READ_ONCE(kmemtrace_selftest_grow) > KMEMTRACE_SELFTEST_MAX_GROW) {
		pr_err("selftest_grow is %u, at most %u\n",
		       READ_ONCE(kmemtrace_selftest_grow),
		       KMEMTRACE_SELFTEST_MAX_GROW);
		return -EINVAL;
	}

	cpu_a = cpumask_first(cpu_online_mask);
	cpu_b = cpumask_next(cpu_a, cpu_online_mask);
	if (cpu_b >= nr_cpu_ids)
		cpu_b = cpu_a;

	ret = smp_call_on_cpu(cpu_a, kmemtrace_selftest_local, &ctx, false);
	if (ctx.remote) {
		int err = smp_call_on_cpu(cpu_b, kmemtrace_selftest_remote_free,
					  &ctx, false);

		if (!ret)
			ret = err;
		if (ctx.remote)
			kmemtrace_selftest_remote_free(&ctx);
	}
	if (ret)
		pr_err("run failed: %d\n", ret);
	else
		pr_info("run done on CPUs %u and %u\n", cpu_a, cpu_b);
	return ret;
}

/* Runs on CPU A, where the leaks were allocated. */
static noinline int kmemtrace_selftest_release(void *arg)
{
	struct kmemtrace_selftest_leak *leak, *next;

	list_for_each_entry_safe(leak, next, &kmemtrace_selftest_leaks, list) {
		list_del(&leak->list);
		kfree(leak);
	}
	return 0;
}

static ssize_t kmemtrace_selftest_write(struct file *file,
					const char __user *ubuf, size_t count,
					loff_t *ppos)
{
	char buf[16];
	char *cmd;
	int ret = 0;

	if (count >= sizeof(buf))
		return -EINVAL;
	if (copy_from_user(buf, ubuf, count))
		return -EFAULT;
	buf[count] = '\0';
	cmd = strim(buf);

	mutex_lock(&kmemtrace_selftest_mutex);
	if (!strcmp(cmd, "run"))
		ret = kmemtrace_selftest_run();
	else if (!strcmp(cmd, "release"))
		ret = smp_call_on_cpu(cpumask_first(cpu_online_mask),
				      kmemtrace_selftest_release, NULL, false);
	else
		ret = -EINVAL;
	mutex_unlock(&kmemtrace_selftest_mutex);

	return ret ? ret : count;
}

static const struct file_operations kmemtrace_selftest_fops = {
	.owner	= THIS_MODULE,
	.write	= kmemtrace_selftest_write,
	.llseek	= noop_llseek,
};

void __init kmemtrace_selftest_init(struct dentry *dir)
{
@selftest_cache_comment@
	kmemtrace_selftest_cache = kmem_cache_create("kmemtrace_selftest",
						     KMEMTRACE_SELFTEST_OBJ_SIZE,
						     0, @no_merge_flag@, NULL);
	if (!kmemtrace_selftest_cache) {
		pr_err("cannot create its kmem_cache\n");
		return;
	}
	debugfs_create_file("selftest", 0200, dir, NULL,
			    &kmemtrace_selftest_fops);
}
