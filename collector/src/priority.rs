//! Scheduling priority of the collector's background threads.
//!
//! Under saturation the single writer thread is the collector's limit, and on a small machine it
//! shares the cores with the threads that decode requests, copy the WAL into the database
//! (`sqlite-checkpoint`) and free committed batches (`tracex-dropper`). The last two can run
//! whenever a core is free: nothing waits for them (the WAL only grows a little longer; the frees
//! queue). In the ingest bench (`perf sched latency`, AMD EPYC host, 2 cores) the writer was
//! runnable but not running for 745–815 ms of a 4–5 s run; with those two threads at nice 10,
//! 406–534 ms. Sealed ingest, closed loop, 1,536,000 spans a run, alternating with the build
//! before: 148/134/146k → 152/155/157k spans/s (docs/benchmarks.md).

/// The nice value of the threads that nothing waits for: weight 110 against the writer's 1024, so
/// they take a contended core about a tenth as often, and an idle core at once.
pub const BACKGROUND_NICE: i32 = 10;

/// Sets the calling thread's nice value to `nice` (Linux; elsewhere nothing). Meant to lower the
/// priority: raising it needs a privilege the collector does not ask for, and then nothing changes.
#[allow(unsafe_code, reason = "one setpriority call; the standard library has no wrapper for it")]
pub fn set_this_thread_nice(nice: i32) {
    #[cfg(target_os = "linux")]
    // SAFETY: gettid takes no arguments; setpriority(PRIO_PROCESS, tid, nice) takes integers and
    // sets the nice value of this thread alone (on Linux a thread id names one thread). Lowering
    // the priority needs no privilege; on failure it returns -1 and nothing changes.
    unsafe {
        let tid = libc::gettid();
        #[allow(clippy::cast_sign_loss, reason = "a thread id is positive")]
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
}

/// The nice value of this process's thread named `name` (as `/proc` shows it: at most 15
/// bytes), if there is one (Linux). For the tests that check which threads run in the background.
#[cfg(test)]
pub(crate) fn nice_of_thread(name: &str) -> Option<i32> {
    let tasks = std::fs::read_dir("/proc/self/task").ok()?;
    tasks.flatten().find_map(|task| {
        let comm = std::fs::read_to_string(task.path().join("comm")).ok()?;
        if comm.trim_end() != name {
            return None;
        }
        // Fields after the parenthesised name: state is the 3rd field of the line, nice the 19th.
        let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
        stat.rsplit_once(')')?.1.split_whitespace().nth(16)?.parse().ok()
    })
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn sets_the_calling_threads_nice_value_only() {
        let base = nice_of_thread("tracex-nice-tes");
        assert_eq!(base, None, "no thread of that name before it is spawned");
        let (start, after) = std::thread::Builder::new()
            .name("tracex-nice-test".into())
            .spawn(|| {
                let start = nice_of_thread("tracex-nice-tes").expect("the thread is listed");
                let lower = (start + 3).min(19);
                set_this_thread_nice(lower);
                (start, nice_of_thread("tracex-nice-tes").expect("still listed"))
            })
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(after, (start + 3).min(19));
        // The spawning thread kept its own: a thread it spawns next inherits the value it had.
        let sibling = std::thread::Builder::new()
            .name("tracex-nice-sib".into())
            .spawn(|| nice_of_thread("tracex-nice-sib"))
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(sibling, Some(start));
    }
}
