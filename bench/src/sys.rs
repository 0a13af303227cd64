//! The machine and the processes around a run, read from /proc and libc: cores, CPU
//! model, kernel, the open-file limit, the ephemeral port range, and a server's CPU time
//! (per thread) and RSS.

use serde::{Deserialize, Serialize};
use std::fs;

/// The machine a run measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// Online cores.
    pub cores: usize,
    /// `model name` from /proc/cpuinfo.
    pub model: String,
    /// `uname -r`.
    pub kernel: String,
    /// `uname -n`.
    pub hostname: String,
    /// MemTotal, KiB.
    pub mem_total_kib: u64,
}

impl Machine {
    /// Reads it.
    pub fn read() -> Machine {
        let model = fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let (kernel, hostname) = uname();
        Machine {
            cores: online_cpus(),
            model,
            kernel,
            hostname,
            mem_total_kib: meminfo_kib("MemTotal").unwrap_or(0),
        }
    }
}

fn uname() -> (String, String) {
    // SAFETY: utsname is plain old data; uname fills it and NUL-terminates each field.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid, writable utsname.
    if unsafe { libc::uname(&mut u) } != 0 {
        return ("unknown".into(), "unknown".into());
    }
    let field = |f: &[libc::c_char]| {
        let bytes: Vec<u8> = f
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    (field(&u.release[..]), field(&u.nodename[..]))
}

fn meminfo_kib(key: &str) -> Option<u64> {
    let s = fs::read_to_string("/proc/meminfo").ok()?;
    let line = s.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Online cores.
pub fn online_cpus() -> usize {
    // SAFETY: sysconf has no memory effects.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    if n > 0 {
        n as usize
    } else {
        1
    }
}

/// The CPUs this process may run on (its affinity mask), lowest first; every online core
/// when the mask cannot be read.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data, all zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: sched_getaffinity writes at most the size it is given.
    let ok =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) }
            == 0;
    let bits = 8 * std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: CPU_ISSET reads the set filled above, for indices below its size.
    let cpus: Vec<usize> = if ok {
        (0..bits)
            .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
            .collect()
    } else {
        Vec::new()
    };
    if cpus.is_empty() {
        (0..online_cpus()).collect()
    } else {
        cpus
    }
}

/// Raises the soft open-file limit to the hard one and answers the soft limit.
pub fn raise_nofile_limit() -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `r` is a valid, writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        return 1024;
    }
    if r.rlim_cur < r.rlim_max {
        let want = libc::rlimit {
            rlim_cur: r.rlim_max,
            rlim_max: r.rlim_max,
        };
        // SAFETY: `want` is a valid rlimit; raising the soft limit up to the hard one is
        // always allowed.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &want) } == 0 {
            return want.rlim_cur;
        }
    }
    r.rlim_cur
}

/// The ephemeral port range (`net.ipv4.ip_local_port_range`), as a count of ports.
pub fn ephemeral_ports() -> u64 {
    fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|v| v.parse::<u64>().ok());
            let lo = it.next()??;
            let hi = it.next()??;
            Some(hi.saturating_sub(lo) + 1)
        })
        .unwrap_or(28_232)
}

/// Clock ticks per second (`utime`/`stime` unit).
pub fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no memory effects.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// `utime + stime` of a /proc stat line, in ticks, and the `comm`.
pub fn parse_stat(stat: &str) -> Option<(String, u64)> {
    // comm is in parentheses and may hold spaces and parentheses: split at the last ')'.
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_string();
    let rest: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14, stime 15.
    let utime: u64 = rest.get(11)?.parse().ok()?;
    let stime: u64 = rest.get(12)?.parse().ok()?;
    Some((comm, utime + stime))
}

/// A process's CPU time, whole and per thread.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CpuSample {
    /// Process total, ticks.
    pub total_ticks: u64,
    /// Per thread: tid, name, ticks (at most [`THREADS_SAMPLED_MAX`]).
    pub threads: Vec<(u32, String, u64)>,
}

/// Threads of a server sampled.
pub const THREADS_SAMPLED_MAX: usize = 256;

/// Reads `/proc/PID/stat` and `/proc/PID/task/*/stat`.
pub fn cpu_sample(pid: u32) -> Option<CpuSample> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, total_ticks) = parse_stat(&stat)?;
    let mut threads = Vec::new();
    if let Ok(dir) = fs::read_dir(format!("/proc/{pid}/task")) {
        for e in dir.flatten().take(THREADS_SAMPLED_MAX) {
            let Some(tid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if let Some((comm, t)) = fs::read_to_string(e.path().join("stat"))
                .ok()
                .and_then(|s| parse_stat(&s))
            {
                threads.push((tid, comm, t));
            }
        }
    }
    threads.sort_by_key(|t| t.0);
    Some(CpuSample {
        total_ticks,
        threads,
    })
}

/// [`cpu_sample`] summed over processes; `None` when any cannot be read.
pub fn cpu_sample_all(pids: &[u32]) -> Option<CpuSample> {
    let mut out = CpuSample::default();
    for &pid in pids {
        let s = cpu_sample(pid)?;
        out.total_ticks += s.total_ticks;
        out.threads.extend(s.threads);
    }
    Some(out)
}

/// [`vm_rss_kib`] summed over processes; `None` when any cannot be read.
pub fn vm_rss_kib_all(pids: &[u32]) -> Option<u64> {
    pids.iter().map(|&p| vm_rss_kib(p)).sum()
}

/// `VmRSS` of a process, KiB.
pub fn vm_rss_kib(pid: u32) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_rss(&s)
}

/// `VmRSS` out of a /proc status text, KiB.
pub fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// CPU seconds this process and its waited-for children used.
pub fn self_cpu_s() -> f64 {
    let usage = |who| {
        // SAFETY: rusage is plain old data, filled by getrusage.
        let mut r: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `r` is a valid, writable rusage.
        if unsafe { libc::getrusage(who, &mut r) } != 0 {
            return 0.0;
        }
        let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        tv(r.ru_utime) + tv(r.ru_stime)
    };
    usage(libc::RUSAGE_SELF) + usage(libc::RUSAGE_CHILDREN)
}

/// A command line as a shell would need it typed.
pub fn shell_join(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if !a.is_empty()
                && a.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_./:=,@%+".contains(&b))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines() {
        let s = "1234 (ringmcp shard (0)) S 1 1234 1234 0 -1 4194560 1000 0 0 0 250 75 0 0 20 0 3 0 100 0 0";
        assert_eq!(parse_stat(s), Some(("ringmcp shard (0)".to_string(), 325)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn own_process() {
        let pid = std::process::id();
        assert!(cpu_sample(pid).is_some_and(|s| !s.threads.is_empty()));
        assert!(vm_rss_kib(pid).is_some_and(|k| k > 0));
        assert_eq!(parse_vm_rss("Name: x\nVmRSS:\t  1234 kB\n"), Some(1234));
        let m = Machine::read();
        assert!(m.cores >= 1);
        assert!(!m.kernel.is_empty());
    }

    #[test]
    fn quoting() {
        assert_eq!(
            shell_join(&["a".into(), "b c".into(), "{\"x\":1}".into(), "it's".into()]),
            r#"a 'b c' '{"x":1}' 'it'\''s'"#
        );
    }
}
