// SPDX-License-Identifier: GPL-2.0-only
//! The allocation wrappers that `--group-by caller` looks through, as one table, and the choice
//! of the frame an allocation is charged to.
//!
//! A call site is the return address the allocator saw. When the code that wanted the memory
//! called a helper (`kmalloc_array`, `kmemdup`, `kstrdup`, `kvmalloc` …) that the compiler did not
//! inline, the call site is inside the helper, and every user of the helper shares it: on arm64
//! and ppc64 the pipe buffers of `alloc_pipe_info` are charged to
//! `kmalloc_array_noprof.constprop.0`. With a stack (the ABI's stack feature) the analysis walks
//! outward from the call site to the first frame whose function is not in [`WRAPPERS`].

use crate::glob::Glob;
use crate::symbols::Symbols;
use std::sync::LazyLock;

/// The symbol-name rule wrappers are matched by; it lives with the other name rules in
/// [`crate::symbols`].
pub use crate::symbols::base_name;

/// Functions that allocate on their caller's behalf, as globs on the function name without
/// compiler clone suffixes (`.constprop.0`, `.isra.0`, `.part.0`, `.cold`) and without ppc64
/// ELFv1's leading dot. Kept to helpers whose caller is the one that wants the memory.
pub static WRAPPERS: &[&str] = &[
    // kmalloc and its sized, zeroed, array and node forms, out of line in some builds.
    "kmalloc",
    "kmalloc_node",
    "kzalloc",
    "kzalloc_node",
    "kmalloc_array",
    "kmalloc_array_node",
    "kcalloc",
    "kcalloc_node",
    "kmalloc_trace",
    "kmalloc_node_trace",
    "kmalloc_large",
    "kmalloc_large_node",
    "__kmalloc",
    "__kmalloc_node",
    "__kmalloc_cache_*",
    "__kmalloc_large_*",
    "kmem_cache_zalloc",
    // Copies.
    "kmemdup",
    "kmemdup_nul",
    "kmemdup_array",
    "kstrdup",
    "kstrdup_const",
    "kstrndup",
    "kasprintf",
    "kvasprintf",
    "kvasprintf_const",
    "memdup_user",
    "memdup_user_nul",
    "vmemdup_user",
    "strndup_user",
    // kvmalloc: kmalloc first, vmalloc as the fallback.
    "kvmalloc",
    "kvmalloc_node",
    "kvzalloc",
    "kvzalloc_node",
    "kvcalloc",
    "kvmalloc_array",
    "__kvmalloc_node",
    // Resizing.
    "krealloc",
    "krealloc_array",
    "__krealloc",
    "kvrealloc",
    // Every allocation function 6.10+ renamed for memory allocation profiling, and every
    // *_track_caller form (they pass their own caller to the allocator already).
    "*_noprof",
    "*_track_caller",
];

static GLOBS: LazyLock<Vec<Glob>> = LazyLock::new(|| {
    WRAPPERS
        .iter()
        .map(|p| Glob::new(p).expect("the wrapper table's globs compile"))
        .collect()
});

/// Whether `name` (as kallsyms has it) is an allocation wrapper of [`WRAPPERS`].
pub fn is_wrapper(name: &str) -> bool {
    let b = base_name(name);
    GLOBS.iter().any(|g| g.is_match(b))
}

/// The address an allocation is charged to by caller: the call site, or, when the call site's
/// function is a wrapper, the first frame of `stack` (outward) whose function is not; the call
/// site when every frame is a wrapper, a frame does not resolve, or there are no symbols.
pub fn charged_frame(call_site: u64, stack: &[u64], syms: Option<&Symbols>) -> u64 {
    let Some(s) = syms else {
        return call_site;
    };
    let wraps = |a: u64| s.resolve(a).is_some_and(|(n, _)| is_wrapper(n));
    if !wraps(call_site) {
        return call_site;
    }
    for &f in stack {
        match s.resolve(f) {
            Some((n, _)) if is_wrapper(n) => continue,
            Some(_) => return f,
            None => return call_site,
        }
    }
    call_site
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrappers_are_matched_on_their_base_names() {
        for w in [
            "kmalloc_array_noprof.constprop.0",
            ".kstrdup",
            "__kmalloc_node_track_caller",
            "kvmalloc_node_noprof",
            "__kmalloc_cache_noprof",
        ] {
            assert!(is_wrapper(w), "{w}");
        }
        for n in [
            "alloc_pipe_info",
            "kmalloc_slab",
            "kmem_cache_alloc",
            "kfree",
            "noprofx",
        ] {
            assert!(!is_wrapper(n), "{n}");
        }
    }

    fn syms() -> Symbols {
        Symbols::from_pairs([
            (0x1000, "kmalloc_array_noprof.constprop.0"),
            (0x1100, "kmemdup"),
            (0x2000, "alloc_pipe_info"),
            (0x3000, "do_pipe2"),
        ])
    }

    /// The pipes example: the call site in `kmalloc_array_noprof.constprop.0`, the stack going
    /// out through `alloc_pipe_info`; nested wrappers are looked through too.
    #[test]
    fn the_first_frame_outside_the_wrappers_is_charged() {
        let s = syms();
        assert_eq!(charged_frame(0x1010, &[0x2040, 0x3010], Some(&s)), 0x2040);
        assert_eq!(charged_frame(0x1010, &[0x1120, 0x2040], Some(&s)), 0x2040);
        // Not a wrapper: the call site itself, whatever the stack says.
        assert_eq!(charged_frame(0x2010, &[0x3010], Some(&s)), 0x2010);
        // No stack, only wrappers, an unresolvable frame, no symbols: the call site.
        assert_eq!(charged_frame(0x1010, &[], Some(&s)), 0x1010);
        assert_eq!(charged_frame(0x1010, &[0x1120], Some(&s)), 0x1010);
        assert_eq!(charged_frame(0x1010, &[0x10], Some(&s)), 0x1010);
        assert_eq!(charged_frame(0x1010, &[0x2040], None), 0x1010);
    }
}
