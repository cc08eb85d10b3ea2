//! How the collector's process uses memory: its allocator is mimalloc (`main.rs`), and here,
//! transparent huge pages are switched off for the process.
//!
//! mimalloc 3 asks the kernel for huge pages on the arenas it reserves (`madvise(MADV_HUGEPAGE)`),
//! and it returns freed memory to the kernel a second after it is freed. The next allocation there
//! faults in a whole 2 MiB page, and the kernel zeroes all of it. In the ingest bench, `perf` put
//! 12–25 % of the process's samples in that zeroing (`clear_page_erms` under
//! `do_huge_pmd_anonymous_page`, reached from `mi_page_fresh_alloc`): request bodies, decoded
//! spans and prepared rows are allocated and freed at every batch. With huge pages off that fell
//! to 3.5 %, and the same 5 rounds of sealed ingest took 12.3–13.5 s of CPU instead of 14.4–17.8 s
//! (docs/benchmarks.md). This is mimalloc's own `MIMALLOC_ALLOW_THP=0`, which it can only read
//! from the environment before `main`.

/// Switches transparent huge pages off for this process (Linux; elsewhere nothing). Applies to
/// memory already mapped too: the kernel checks the flag at every fault.
#[allow(unsafe_code, reason = "one prctl call; the standard library has no wrapper for it")]
pub fn disable_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl(PR_SET_THP_DISABLE) takes integer arguments only and changes a flag of
    // this process; on failure (an old kernel) it returns -1 and nothing changes.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}
