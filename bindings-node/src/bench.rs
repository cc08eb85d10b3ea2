//! Benchmark support (`bench/spans.mjs`), loaded from the addon's native module directly; not
//! exported by the package's entry points.

use napi_derive::napi;

/// CPU time of the calling thread in nanoseconds (`CLOCK_THREAD_CPUTIME_ID`), for the benchmark:
/// `/proc/.../schedstat` is only updated at scheduler ticks, too coarse for millisecond rounds.
#[napi(js_name = "threadCpuTimeNs")]
#[allow(clippy::cast_precision_loss, unsafe_code)] // one libc call, no safe std equivalent
pub fn thread_cpu_time_ns() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant the kernel supports.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &raw mut ts) };
    if rc != 0 {
        return f64::NAN;
    }
    ts.tv_sec as f64 * 1e9 + ts.tv_nsec as f64
}
