//! The process heap (glibc's allocator): how many arenas it keeps, and
//! handing freed memory back to the system. Sessions pass through memory
//! and leave it; what stays in RSS afterwards is pages they left partly
//! used, and every extra arena spreads them over more pages.

/// The arenas `serve` allows (glibc's default is eight per core).
pub const ARENAS: i32 = 2;

/// Limits the heap to [`ARENAS`] arenas, unless the operator chose a
/// number (`MALLOC_ARENA_MAX`, or `arena_max` in `GLIBC_TUNABLES`). Call
/// it before any thread starts. Measured at 10 000 quiet sessions, same
/// build and run: RSS 54.7 → 42.4 MiB with every session open, 70.5 → 51.1
/// MiB once they ended, peak 212 → 189 MiB, CPU per record unchanged.
/// The receivers, the merge and the exporters each allocated in an arena
/// of their own, and each arena kept its own partly used pages.
pub fn few_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    set_unless_chosen(libc::M_ARENA_MAX, ARENAS, "MALLOC_ARENA_MAX", "arena_max");
}

/// Sets glibc allocator parameter `param` to `value`, unless the operator
/// chose it, with environment variable `env` or `tunable` in
/// `GLIBC_TUNABLES`.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn set_unless_chosen(param: i32, value: i32, env: &str, tunable: &str) {
    let chosen = std::env::var_os(env).is_some()
        || std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains(tunable));
    if !chosen {
        // SAFETY: mallopt only sets a parameter of glibc's allocator.
        unsafe {
            libc::mallopt(param, value);
        }
    }
}

/// Allocations this large or larger get pages of their own. (glibc starts
/// at 128 KiB: measured, that costs 20–30% more CPU per record at 100
/// records per request, in page faults; 1 MiB costs nothing measurable.)
pub const MMAP_THRESHOLD: i32 = 1024 * 1024;

/// How much free memory the top of the heap keeps before `free` hands it
/// back by itself. ccotel hands memory back with [`trim`] when sessions
/// leave and when a burst is over; glibc's own 128 KiB (which it raises
/// with the mmap threshold, and no longer once that is fixed) made the
/// heap shrink and grow again under steady load: 13.5 against 18.5 µs of
/// system time per record at 100 records per request.
pub const TRIM_THRESHOLD: i32 = 16 * 1024 * 1024;

/// Keeps large allocations out of the heap, unless the operator chose a
/// threshold (`MALLOC_MMAP_THRESHOLD_`, or `mmap_threshold` in
/// `GLIBC_TUNABLES`), and sets [`TRIM_THRESHOLD`] likewise. glibc raises
/// its mmap threshold each time a large block is freed, up to 32 MiB, so
/// the big buffers of a burst (request bodies, tables of sessions,
/// renders) end up in the heap among small long-lived allocations, and the
/// pages they leave cannot be handed back. Measured at 10 000 quiet open
/// sessions: 2.1–2.5 → 1.2–1.3 KiB of RSS per session (BENCHMARKS.md,
/// round 10). Call it before any thread starts.
pub fn fixed_thresholds() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        set_unless_chosen(
            libc::M_MMAP_THRESHOLD,
            MMAP_THRESHOLD,
            "MALLOC_MMAP_THRESHOLD_",
            "mmap_threshold",
        );
        set_unless_chosen(
            libc::M_TRIM_THRESHOLD,
            TRIM_THRESHOLD,
            "MALLOC_TRIM_THRESHOLD_",
            "trim_threshold",
        );
    }
}

/// Hands free heap memory back to the system. glibc keeps what was freed
/// below its top chunk, so without this the RSS of a server whose sessions
/// left memory stays at its high-water mark (measured: 84 → 34 MiB once
/// 1 000 quiet sessions were evicted).
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own heap under its locks.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;

    /// glibc's `malloc_info` XML.
    fn malloc_info() -> String {
        // SAFETY: tmpfile gives a FILE this function owns and closes;
        // malloc_info writes XML to it.
        unsafe {
            let f = libc::tmpfile();
            assert!(!f.is_null(), "tmpfile");
            libc::malloc_info(0, f);
            libc::fflush(f);
            let text = std::fs::read_to_string(format!("/proc/self/fd/{}", libc::fileno(f)))
                .unwrap_or_default();
            libc::fclose(f);
            text
        }
    }

    /// The arenas glibc has.
    fn arenas() -> usize {
        malloc_info().matches("<heap nr=").count()
    }

    /// Bytes held in blocks with pages of their own.
    fn mmapped_bytes() -> u64 {
        let info = malloc_info();
        // The process-wide totals come last.
        info.rsplit("<total type=\"mmap\"")
            .next()
            .and_then(|t| t.split("size=\"").nth(1))
            .and_then(|t| t.split('"').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    /// Runs this test binary again for test `name` alone, in a process of
    /// its own (with ccotel's settings when `limit`), free of the
    /// operator's allocator settings, and returns what it printed.
    fn run_child(name: &str, limit: bool) -> String {
        let mut cmd = std::process::Command::new(std::env::current_exe().expect("exe"));
        cmd.args(["--exact", name, "--nocapture", "--test-threads=1"])
            .env("CCOTEL_HEAP_CHILD", "1")
            .env_remove("MALLOC_ARENA_MAX")
            .env_remove("MALLOC_MMAP_THRESHOLD_")
            .env_remove("MALLOC_TRIM_THRESHOLD_")
            .env_remove("GLIBC_TUNABLES");
        if limit {
            cmd.env("CCOTEL_HEAP_LIMIT", "1");
        }
        let out = cmd.output().expect("run the test binary");
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// The number a child printed after `key` (e.g. `ARENAS=`).
    fn figure(text: &str, key: &str) -> u64 {
        text.split(key)
            .nth(1)
            .and_then(|t| t.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in: {text}"))
    }

    /// This process's resident memory, in bytes.
    fn rss_bytes() -> u64 {
        std::fs::read_to_string("/proc/self/statm")
            .ok()
            .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
            .map_or(0, |pages| {
                // SAFETY: sysconf only reads a system constant.
                pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64
            })
    }

    /// Free memory at the top of the heap stays there until ccotel trims
    /// it, instead of going back and coming again with every burst.
    #[test]
    fn the_heap_keeps_its_top_until_trimmed() {
        if std::env::var_os("CCOTEL_HEAP_CHILD").is_some() {
            if std::env::var_os("CCOTEL_HEAP_LIMIT").is_some() {
                fixed_thresholds();
            }
            let blocks: Vec<Vec<u8>> = (0..16).map(|_| vec![1u8; 256 << 10]).collect();
            let grown = rss_bytes();
            drop(std::hint::black_box(blocks));
            let kept = rss_bytes();
            trim();
            println!(
                "KEPT={} TRIMMED={}",
                grown.saturating_sub(kept),
                grown.saturating_sub(rss_bytes())
            );
            return;
        }
        let run = |limit: bool| -> (u64, u64) {
            let text = run_child("heap::tests::the_heap_keeps_its_top_until_trimmed", limit);
            (figure(&text, "KEPT="), figure(&text, "TRIMMED="))
        };
        // (given back by free / by trim, in bytes)
        let (freed, trimmed) = run(true);
        assert!(freed < 1 << 20, "free kept the top: {freed} given back");
        assert!(trimmed >= 3 << 20, "trim gave it back: {trimmed}");
        // The check can tell: glibc's own threshold gives it back at once.
        let (freed, _) = run(false);
        assert!(freed >= 3 << 20, "without the fixed threshold: {freed}");
    }

    /// After a large block is freed, a smaller large one still gets pages
    /// of its own (glibc would have raised its threshold past it).
    #[test]
    fn large_blocks_stay_out_of_the_heap() {
        if std::env::var_os("CCOTEL_HEAP_CHILD").is_some() {
            if std::env::var_os("CCOTEL_HEAP_LIMIT").is_some() {
                fixed_thresholds();
            }
            drop(std::hint::black_box(vec![1u8; 16 << 20]));
            let before = mmapped_bytes();
            let block = std::hint::black_box(vec![1u8; 2 << 20]);
            println!("MMAPPED={}", mmapped_bytes().saturating_sub(before));
            drop(block);
            return;
        }
        let run = |limit: bool| -> u64 {
            let text = run_child("heap::tests::large_blocks_stay_out_of_the_heap", limit);
            figure(&text, "MMAPPED=")
        };
        assert!(run(true) >= 2 << 20, "the block has pages of its own");
        // The check can tell: without the fixed threshold, it is in the heap.
        assert_eq!(run(false), 0, "without the fixed threshold");
    }

    /// Allocates on `n` threads alive at once.
    fn allocate_on_threads(n: usize) {
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(n));
        let threads: Vec<_> = (0..n)
            .map(|_| {
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    let v: Vec<Box<[u8; 256]>> = (0..64).map(|_| Box::new([1u8; 256])).collect();
                    barrier.wait();
                    std::hint::black_box(v);
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
    }

    /// In a process of its own (the test binary run again for this one
    /// test), so that no other test's threads have made arenas before.
    #[test]
    fn serve_keeps_two_arenas_however_many_threads_allocate() {
        if std::env::var_os("CCOTEL_HEAP_CHILD").is_some() {
            if std::env::var_os("CCOTEL_HEAP_LIMIT").is_some() {
                few_arenas();
            }
            allocate_on_threads(8);
            println!("ARENAS={}", arenas());
            return;
        }
        let run = |limit: bool| -> usize {
            let text = run_child(
                "heap::tests::serve_keeps_two_arenas_however_many_threads_allocate",
                limit,
            );
            figure(&text, "ARENAS=") as usize
        };
        let limited = run(true);
        assert!(
            limited <= ARENAS as usize,
            "{limited} arenas with the limit"
        );
        // The check can tell: without the limit, eight threads make more.
        let unlimited = run(false);
        assert!(
            unlimited > ARENAS as usize,
            "{unlimited} arenas without the limit"
        );
    }
}
