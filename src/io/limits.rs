//! Process resource limits the daemon needs at scale.

/// Raises the soft RLIMIT_NOFILE to the hard limit and returns the new soft
/// limit. Each endpoint holds several descriptors (an AF_XDP socket per
/// worker, its XDP and tc program links), so thousands of endpoints need
/// far more than the usual soft limit of 1024; the hard limit is what an
/// unprivileged raise may reach (raising that needs CAP_SYS_RESOURCE).
pub fn raise_nofile_limit() -> std::io::Result<u64> {
    // SAFETY: rlimit is plain old data; getrlimit writes it.
    let mut lim: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: a valid resource and a live rlimit to write.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: a valid resource and a live rlimit to read.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(lim.rlim_cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nofile_soft_limit_reaches_the_hard_one() {
        let soft = raise_nofile_limit().expect("raise RLIMIT_NOFILE");
        // SAFETY: rlimit is plain old data; getrlimit writes it.
        let mut lim: libc::rlimit = unsafe { std::mem::zeroed() };
        // SAFETY: a valid resource and a live rlimit to write.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
        assert_eq!((soft, lim.rlim_cur), (lim.rlim_max, lim.rlim_max));
    }
}
