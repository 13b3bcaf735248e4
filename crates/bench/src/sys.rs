//! The process's own resources: the open-files limit and CPU time. Safe wrappers only (the
//! workspace forbids unsafe code): the `rlimit` crate and /proc.

/// Raises the soft open-files limit to the hard limit; returns the limit now in force.
pub(crate) fn raise_nofile_limit() -> Option<u64> {
    rlimit::increase_nofile_limit(u64::MAX).ok()
}

/// CPU seconds (user + system) this process has used, from /proc/self/stat; 0 where that
/// file does not exist. Clock ticks are USER_HZ, 100 per second on every Linux ABI.
pub(crate) fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    parse_stat_cpu(&stat).unwrap_or(0.0)
}

fn parse_stat_cpu(stat: &str) -> Option<f64> {
    // Fields after the command name (which may contain spaces, hence the last ')').
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14, stime 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_stat() {
        let stat =
            "1234 (my (weird) name) S 1 1234 1234 0 -1 4194304 100 0 0 0 250 75 0 0 20 0 4 0 1 1 1";
        assert_eq!(parse_stat_cpu(stat), Some(3.25));
        assert!(cpu_seconds() >= 0.0);
    }
}
