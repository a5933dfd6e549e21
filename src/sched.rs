//! Thread scheduling: the receivers answer Claude Code first, and the merge
//! runs in the gaps. A hook's reply waits for the receiver to get a CPU, so
//! when both share one, the receiver must take it from the merge at once,
//! not at the end of the merge's time slice (measured: the 50-sender hook
//! p99 was the length of that slice, 2–5 ms).

/// Asks for short time slices on the calling thread (a receiver): on Linux
/// 6.12 and later, a thread with a shorter slice preempts one with a longer
/// slice as soon as it wakes, so a hook arriving while the merge holds the
/// CPU is answered within about 0.1 ms. Older kernels ignore the request,
/// and a failure (a seccomp filter, say) leaves the default in place.
pub fn short_slices() {
    #[cfg(target_os = "linux")]
    set_slice(SHORT_SLICE_NS);
}

/// Lowers the calling thread's priority (nice +10): when the receivers and
/// the merge compete for a CPU, answering Claude Code comes first. Merging
/// catches up in the gaps; under a burst it never catches up from, the full
/// ingest buffer makes hooks wait and OTLP senders retry.
pub fn background() {
    #[cfg(target_os = "linux")]
    // SAFETY: plain syscalls on the calling thread; no memory is passed.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        let _ = libc::setpriority(libc::PRIO_PROCESS, tid, 10);
    }
}

/// The shortest slice the kernel accepts (it clamps to 0.1–100 ms). A hook
/// takes some 10–20 µs of a receiver's CPU, well within it.
#[cfg(target_os = "linux")]
const SHORT_SLICE_NS: u64 = 100_000;

/// `struct sched_attr` as of Linux 3.14 (`SCHED_ATTR_SIZE_VER0`).
#[cfg(target_os = "linux")]
#[repr(C)]
struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    /// For SCHED_OTHER, the requested slice (Linux 6.12+).
    runtime: u64,
    deadline: u64,
    period: u64,
}

#[cfg(target_os = "linux")]
fn set_slice(ns: u64) {
    // SAFETY: getpriority and sched_setattr act on the calling thread; the
    // attribute struct lives on this stack for the call and its size field
    // tells the kernel how much of it to read.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        // Keep the thread's nice value (an operator may have set one):
        // sched_setattr sets it along with the slice.
        *libc::__errno_location() = 0;
        let nice = libc::getpriority(libc::PRIO_PROCESS, tid);
        if nice == -1 && *libc::__errno_location() != 0 {
            return;
        }
        let attr = SchedAttr {
            size: std::mem::size_of::<SchedAttr>() as u32,
            policy: libc::SCHED_OTHER as u32,
            flags: 0,
            nice,
            priority: 0,
            runtime: ns,
            deadline: 0,
            period: 0,
        };
        let rc = libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0);
        if rc != 0 {
            tracing::debug!(
                error = %std::io::Error::last_os_error(),
                "cannot ask for short time slices; the kernel's default stays"
            );
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// (slice ns, nice) of the calling thread, from /proc.
    fn own_sched() -> (Option<u64>, i32) {
        let text = std::fs::read_to_string("/proc/thread-self/sched").unwrap_or_default();
        let slice = text
            .lines()
            .find(|l| l.trim_start().starts_with("se.slice"))
            .and_then(|l| l.split(':').nth(1))
            .and_then(|v| v.trim().parse().ok());
        // SAFETY: reads the calling thread's nice value.
        let nice = unsafe {
            libc::getpriority(libc::PRIO_PROCESS, libc::syscall(libc::SYS_gettid) as u32)
        };
        (slice, nice)
    }

    /// Linux 6.12 and later take a slice request for SCHED_OTHER.
    fn kernel_takes_slices() -> bool {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let mut parts = release.trim().split(['.', '-']);
        let major: u32 = parts.next().and_then(|v| v.parse().ok()).unwrap_or(0);
        let minor: u32 = parts.next().and_then(|v| v.parse().ok()).unwrap_or(0);
        (major, minor) >= (6, 12)
    }

    #[test]
    fn a_receiver_thread_gets_short_slices_and_keeps_its_nice_value() {
        std::thread::spawn(|| {
            // An operator's `nice -n 5 ccotel serve`, as the thread sees it.
            // SAFETY: sets the calling thread's nice value.
            unsafe {
                libc::setpriority(
                    libc::PRIO_PROCESS,
                    libc::syscall(libc::SYS_gettid) as u32,
                    5,
                );
            }
            short_slices();
            let (slice, nice) = own_sched();
            assert_eq!(nice, 5, "the slice request must not reset the nice value");
            if kernel_takes_slices() && slice.is_some() {
                assert_eq!(slice, Some(SHORT_SLICE_NS));
            }
        })
        .join()
        .expect("thread");
    }

    #[test]
    fn the_merge_thread_runs_behind_the_receivers() {
        std::thread::spawn(|| {
            background();
            assert_eq!(own_sched().1, 10);
        })
        .join()
        .expect("thread");
    }
}
