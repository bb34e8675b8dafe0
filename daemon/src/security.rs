//! Process hardening: no core dumps, no ptrace by other processes of the
//! user, private file modes.

/// Applies the hardening; failures are logged, not fatal.
pub fn harden() {
    // SAFETY: plain syscalls with constant arguments.
    unsafe {
        libc::umask(0o077);
        // Not dumpable: no core files, and same-uid processes cannot ptrace
        // us or read /proc/PID/mem.
        if libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) != 0 {
            tracing::warn!(
                "cannot disable core dumps and ptrace: {}",
                std::io::Error::last_os_error()
            );
        }
        let zero = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::setrlimit(libc::RLIMIT_CORE, &zero) != 0 {
            tracing::warn!(
                "cannot set RLIMIT_CORE to 0: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

/// Raises the open-file soft limit to the hard limit (often 1024 by
/// default), so that many client connections do not make accept() fail.
pub fn raise_nofile_limit() {
    // SAFETY: getrlimit/setrlimit on a struct we own.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max.min(65536);
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                tracing::warn!(
                    "cannot raise the open-file limit: {}",
                    std::io::Error::last_os_error()
                );
            }
        }
    }
}

/// One malloc arena per thread is glibc's default; two suffice for an agent
/// whose threads mostly wait, and keep the resident set small.
pub fn limit_malloc_arenas() {
    // SAFETY: mallopt with a documented parameter, before threads allocate much.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Compares secrets without an early exit on the first difference.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
