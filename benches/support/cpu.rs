//! CPU time of the bench process or its children, for costs compared in one run.

/// CPU seconds used so far by this process (`RUSAGE_SELF`) or its reaped children.
pub fn cpu_seconds(who: libc::c_int) -> f64 {
    // SAFETY: getrusage fills in the zeroed struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(who, &mut usage);
        usage
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}
