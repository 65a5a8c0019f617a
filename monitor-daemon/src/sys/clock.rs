//! The clocks: `CLOCK_BOOTTIME` (what the kernel stamps events and deadlines
//! with, `bpf_ktime_get_boot_ns`) and wall-clock time as RFC 3339.

/// Converts `CLOCK_BOOTTIME` nanoseconds to wall-clock time.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    /// realtime - boottime, in nanoseconds, measured at construction.
    offset_ns: i128,
}

impl Clock {
    pub fn now() -> Self {
        let boot = clock_ns(libc::CLOCK_BOOTTIME);
        let real = clock_ns(libc::CLOCK_REALTIME);
        Self {
            offset_ns: real - boot,
        }
    }

    pub fn fixed(offset_ns: i128) -> Self {
        Self { offset_ns }
    }

    /// RFC 3339, UTC, nanoseconds.
    pub fn rfc3339(&self, boot_ns: u64) -> String {
        rfc3339_from_unix_ns(i128::from(boot_ns) + self.offset_ns)
    }
}

/// Nanoseconds on `CLOCK_BOOTTIME` now.
pub fn boot_ns() -> u64 {
    u64::try_from(clock_ns(libc::CLOCK_BOOTTIME)).unwrap_or(0)
}

/// Unix nanoseconds as RFC 3339, UTC, nanoseconds.
pub fn rfc3339_from_unix_ns(ns: i128) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ns)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let f = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:9]Z"
    );
    t.format(&f)
        .unwrap_or_else(|_| "1970-01-01T00:00:00.000000000Z".into())
}

/// The wall-clock time now, RFC 3339.
pub fn now_rfc3339() -> String {
    rfc3339_from_unix_ns(clock_ns(libc::CLOCK_REALTIME))
}

fn clock_ns(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out pointer.
    unsafe { libc::clock_gettime(clock, &raw mut ts) };
    i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wall_clock_formats_rfc3339_nanos() {
        let c = Clock::fixed(1_700_000_000_000_000_000);
        assert_eq!(c.rfc3339(123), "2023-11-14T22:13:20.000000123Z");
    }
}
