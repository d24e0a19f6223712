/* SPDX-License-Identifier: GPL-2.0 */
#ifndef _MM_KMEMTRACE_H
#define _MM_KMEMTRACE_H

struct dentry;

#ifdef CONFIG_KMEMTRACE_SELFTEST
void kmemtrace_selftest_init(struct dentry *dir);
#else
static inline void kmemtrace_selftest_init(struct dentry *dir)
{
}
#endif

#endif /* _MM_KMEMTRACE_H */
