// SPDX-License-Identifier: GPL-2.0-only
//! What a page allocation is for, from the function that called the page allocator.
//!
//! The page records (type 2) of a trace include the pages the slab allocator takes for its
//! slabs and the pages of large kmallocs, whose objects the slab records count already, and the
//! tracer's own relay buffers. Adding them all to the slab figures counts the same memory twice;
//! an allocator comparison needs them apart. The kernel's tracer records, for a page
//! allocation, the first return address below the page allocator (`kernel/patches/*/0004-*`,
//! "Pages and slab objects share addresses"), so the calling function tells the use. This is
//! the one table of those functions, for every kernel and allocator the project supports. A
//! page allocation keeps its use until it is freed (frees carry `kfree` or `__free_slab` as
//! their call site and are not classified).

use crate::symbols::base_name;
use serde::{Deserialize, Serialize};

/// The use of a page allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PageUse {
    /// Anything else: the page allocator's own users (page tables, page cache, pipes, …).
    Other = 0,
    /// A slab's pages, taken by the slab allocator to hold objects.
    Slab = 1,
    /// The pages of one large kmalloc (too big for the kmalloc caches): the kmalloc record
    /// counts the same bytes.
    LargeKmalloc = 2,
    /// The tracer's own relay buffers.
    Tracer = 3,
}

impl PageUse {
    /// Every use, in index order.
    pub const ALL: [PageUse; 4] = [
        PageUse::Other,
        PageUse::Slab,
        PageUse::LargeKmalloc,
        PageUse::Tracer,
    ];

    /// The name in reports.
    pub fn name(self) -> &'static str {
        match self {
            PageUse::Other => "other_pages",
            PageUse::Slab => "slab_pages",
            PageUse::LargeKmalloc => "large_kmalloc_pages",
            PageUse::Tracer => "tracer_pages",
        }
    }

    pub(crate) fn from_index(i: u8) -> PageUse {
        PageUse::ALL
            .get(i as usize)
            .copied()
            .unwrap_or(PageUse::Other)
    }
}

/// Page allocator callers and what their pages are for: (function, use, where it is).
pub const TABLE: &[(&str, PageUse, &str)] = &[
    (
        "alloc_slab_page",
        PageUse::Slab,
        "SLUB (6.1, 6.12), SLUB_TINY",
    ),
    (
        "allocate_slab",
        PageUse::Slab,
        "SLUB, when alloc_slab_page is inlined",
    ),
    (
        "new_slab",
        PageUse::Slab,
        "SLUB, when allocate_slab is inlined",
    ),
    ("kmem_getpages", PageUse::Slab, "SLAB (6.1)"),
    (
        "cache_grow_begin",
        PageUse::Slab,
        "SLAB, when kmem_getpages is inlined",
    ),
    (
        "cache_alloc_refill",
        PageUse::Slab,
        "SLAB, when cache_grow_begin is inlined",
    ),
    (
        "____cache_alloc",
        PageUse::Slab,
        "SLAB, when cache_alloc_refill is inlined (x86_64 6.1)",
    ),
    ("____cache_alloc_node", PageUse::Slab, "SLAB with NUMA"),
    (
        "fallback_alloc",
        PageUse::Slab,
        "SLAB with NUMA, another node's slab",
    ),
    ("slob_new_pages", PageUse::Slab, "SLOB (6.1)"),
    (
        "slob_alloc",
        PageUse::Slab,
        "SLOB, when slob_new_pages is inlined",
    ),
    (
        "slob_alloc_node",
        PageUse::Slab,
        "SLOB: a kmem_cache object of a page or more",
    ),
    ("___kmalloc_large_node", PageUse::LargeKmalloc, "6.12"),
    ("__kmalloc_large_node_noprof", PageUse::LargeKmalloc, "6.12"),
    ("__kmalloc_large_noprof", PageUse::LargeKmalloc, "6.12"),
    ("__kmalloc_large_node", PageUse::LargeKmalloc, "6.1 (SLUB)"),
    ("kmalloc_large", PageUse::LargeKmalloc, "6.1 (SLUB)"),
    ("kmalloc_large_node", PageUse::LargeKmalloc, "6.1 (SLUB)"),
    (
        "__do_kmalloc_node",
        PageUse::LargeKmalloc,
        "SLOB: a kmalloc of a page or more",
    ),
    (
        "relay_open_buf",
        PageUse::Tracer,
        "relay buffers (kmemtrace's per-CPU channels)",
    ),
    ("relay_create_buf", PageUse::Tracer, "relay buffers"),
    ("relay_alloc_buf", PageUse::Tracer, "relay buffers"),
];

/// The use of the pages allocated by `function` (a symbol name; ppc64 dot-symbols and GCC's
/// `.constprop.0`/`.isra.0` clone suffixes are ignored: [`base_name`]).
pub fn classify(function: &str) -> PageUse {
    let name = base_name(function);
    TABLE
        .iter()
        .find(|(f, _, _)| *f == name)
        .map_or(PageUse::Other, |(_, u, _)| *u)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_by_function_ignoring_dots_and_clone_suffixes() {
        assert_eq!(classify("alloc_slab_page"), PageUse::Slab);
        assert_eq!(classify(".kmem_getpages"), PageUse::Slab);
        assert_eq!(classify("____cache_alloc"), PageUse::Slab);
        assert_eq!(classify("slob_new_pages.constprop.0"), PageUse::Slab);
        assert_eq!(classify("___kmalloc_large_node"), PageUse::LargeKmalloc);
        assert_eq!(classify("relay_open_buf.part.0"), PageUse::Tracer);
        assert_eq!(classify("pipe_write"), PageUse::Other);
        assert_eq!(classify(""), PageUse::Other);
        assert_eq!(classify("."), PageUse::Other);
    }

    /// Each row is a base name (no dot, not empty). `classify` looks names up by [`base_name`],
    /// which keeps a name whose plain form starts with a dot whole (`..x` → `.x`) where cutting
    /// at the first dot gives `""`: either finds no row only while this holds.
    #[test]
    fn the_table_holds_base_names() {
        for (f, _, _) in TABLE {
            assert!(!f.is_empty() && !f.contains('.'), "{f:?}");
            assert_eq!(base_name(f), *f);
        }
        assert_eq!(classify("..alloc_slab_page"), PageUse::Other);
        assert_eq!(classify(".alloc_slab_page.isra.0"), PageUse::Slab);
    }

    #[test]
    fn the_table_names_each_function_once() {
        let mut names: Vec<&str> = TABLE.iter().map(|(f, _, _)| *f).collect();
        names.sort_unstable();
        let n = names.len();
        names.dedup();
        assert_eq!(names.len(), n);
        for u in PageUse::ALL {
            assert_eq!(PageUse::from_index(u as u8), u);
        }
    }
}
