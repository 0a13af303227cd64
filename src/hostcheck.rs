//! Host readiness: can this machine hold the connections the operator expects?
//!
//! [`HostFacts::probe`] reads the machine (kernel release, an `io_uring_setup` probe,
//! resource limits, sysctls under `/proc/sys`, CPUs and NUMA nodes). [`evaluate`] is a pure
//! function of those facts and a [`Demand`] (connections, shards, listeners from the
//! configuration) and returns one [`Check`] per item: what the host has, what ringmcp needs,
//! and the command that changes it. `ringmcp check-host` prints the [`Report`];
//! `ringmcp serve` runs the same evaluation at start and refuses to start when a check fails.
//!
//! Severity: [`Status::Fail`] means the demanded connection count cannot be reached (or a
//! shard cannot start); [`Status::Tune`] means it can, but the host is worse than it should
//! be under load (reconnect storms, drains, hand-overs); [`Status::Info`] is context.

use crate::config::Config;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// Descriptors ringmcp holds besides connections, fixed part: stdio, the signal thread's
/// pipe, the notify socket, log files, a probe. Measured: 7 with one shard idle.
const RESERVE_FDS_BASE: u64 = 64;
/// Descriptors per shard besides connections and listeners: glommio's three rings, its
/// eventfd, room for the odd timerfd or blocking-pool file. Measured: 4.
const RESERVE_FDS_PER_SHARD: u64 = 16;
/// The backlog glommio 0.9's `TcpListener::bind` passes to listen(2); the kernel caps it
/// at `net.core.somaxconn`.
pub const LISTEN_BACKLOG: u64 = 1024;
/// glommio refuses to start an executor when the soft RLIMIT_MEMLOCK is below this.
const GLOMMIO_MIN_MEMLOCK_BYTES: u64 = 512 << 10;
/// glommio registers its io memory once in each of its three rings, and io_uring accounts
/// pinned pages per ring.
const RINGS_PER_SHARD: u64 = 3;
/// The oldest kernel glommio supports.
const MIN_KERNEL: (u32, u32) = (5, 8);
/// Queued bytes per connection the kernel's TCP memory should hold without entering memory
/// pressure: one 16 KiB message in flight on every connection at once.
const TCP_MEM_PER_CONNECTION_BYTES: u64 = 16 << 10;
/// The capability number of CAP_IPC_LOCK (linux/capability.h).
const CAP_IPC_LOCK: u32 = 14;
/// What `LimitNOFILE=` and `fs.nr_open` are raised to unless more is needed.
const NOFILE_SUGGESTED: u64 = 1 << 20;

/// The sysctls ringmcp reads (paths under /proc/sys, with dots).
pub const SYSCTLS: &[&str] = &[
    "kernel.io_uring_disabled",
    "kernel.io_uring_group",
    "fs.file-max",
    "fs.file-nr",
    "fs.nr_open",
    "net.core.somaxconn",
    "net.core.netdev_max_backlog",
    "net.ipv4.tcp_max_syn_backlog",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.tcp_mem",
    "net.ipv4.tcp_max_orphans",
    "net.ipv4.tcp_migrate_req",
    "net.ipv4.ip_local_port_range",
    "net.netfilter.nf_conntrack_max",
    "net.netfilter.nf_conntrack_count",
];

/// A resource limit; `u64::MAX` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rlimit {
    /// The limit in force.
    pub soft: u64,
    /// The ceiling an unprivileged process may raise `soft` to.
    pub hard: u64,
}

/// What the machine offers, as read by [`HostFacts::probe`]. Plain data, so that
/// [`evaluate`] can be tested with any host.
#[derive(Debug, Clone)]
pub struct HostFacts {
    /// `uname -r`.
    pub kernel_release: String,
    /// `Ok` when `io_uring_setup` succeeded, else its errno.
    pub io_uring: Result<(), i32>,
    /// Raw sysctl values (whitespace collapsed) by dotted name; absent keys are missing.
    pub sysctls: BTreeMap<String, String>,
    /// RLIMIT_NOFILE.
    pub nofile: Rlimit,
    /// RLIMIT_MEMLOCK in bytes.
    pub memlock: Rlimit,
    /// Whether the process has CAP_IPC_LOCK (locked memory is then not accounted).
    pub cap_ipc_lock: bool,
    /// Packets dropped because `net.core.netdev_max_backlog` was full, summed over CPUs.
    pub netdev_drops: Option<u64>,
    /// Bytes per page.
    pub page_bytes: u64,
    /// Online CPUs.
    pub cpus_online: usize,
    /// CPUs in this process's affinity mask.
    pub cpus_allowed: Vec<usize>,
    /// NUMA nodes of the machine.
    pub numa_nodes: usize,
    /// NUMA nodes the allowed CPUs belong to.
    pub numa_nodes_allowed: usize,
}

/// What the configuration asks of the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Demand {
    /// Concurrent connections to hold (`server.connections_target` or `--connections`).
    pub connections: u64,
    /// Shards (executors) to start.
    pub shards: usize,
    /// TCP listeners each shard binds.
    pub listeners: usize,
    /// `limits.connections_per_shard_max`.
    pub connections_per_shard_max: usize,
}

impl Demand {
    /// The demand of `cfg`, with the connection count and shard count overridable.
    pub fn from_config(cfg: &Config, connections: Option<u64>, shards: Option<usize>) -> Demand {
        let shards = match shards {
            Some(n) if n > 0 => n,
            _ => cfg.effective_shards(),
        };
        let listeners = if cfg.tcp.enabled {
            1 + cfg.tcp.listeners.len()
        } else {
            0
        };
        Demand {
            connections: connections.unwrap_or(cfg.server.connections_target as u64),
            shards,
            listeners,
            connections_per_shard_max: cfg.limits.connections_per_shard_max,
        }
    }

    /// Descriptors ringmcp holds besides connections.
    pub fn reserve_fds(&self) -> u64 {
        RESERVE_FDS_BASE + self.shards as u64 * (RESERVE_FDS_PER_SHARD + self.listeners as u64)
    }

    /// Descriptors ringmcp needs: one per connection plus [`Demand::reserve_fds`].
    pub fn fds(&self) -> u64 {
        self.connections + self.reserve_fds()
    }

    /// Locked memory for glommio's registered io buffers on every shard.
    pub fn memlock_bytes(&self) -> u64 {
        self.shards as u64 * RINGS_PER_SHARD * crate::runtime::IO_MEMORY_BYTES as u64
    }

    /// Connections the configuration accepts at most: `connections_per_shard_max × shards`.
    pub fn ceiling(&self) -> u64 {
        self.connections_per_shard_max as u64 * self.shards as u64
    }
}

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    /// Context only; never affects readiness.
    Info,
    /// Meets what ringmcp needs.
    Ok,
    /// Works, but should be tuned for this load.
    Tune,
    /// The demanded connections cannot be reached, or ringmcp cannot start.
    Fail,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Info => "info",
            Status::Ok => "ok",
            Status::Tune => "tune",
            Status::Fail => "FAIL",
        }
    }
}

/// One item of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What is checked (a sysctl name, a resource limit, ...).
    pub name: &'static str,
    /// The verdict.
    pub status: Status,
    /// What the host has.
    pub found: String,
    /// What ringmcp needs for the demand, and why.
    pub needs: String,
    /// The command or setting that changes it (empty when there is nothing to change).
    pub fix: String,
}

/// Every check for one demand.
#[derive(Debug, Clone)]
pub struct Report {
    /// What was asked.
    pub demand: Demand,
    /// The checks, in a fixed order.
    pub checks: Vec<Check>,
}

impl Report {
    /// Whether no check failed.
    pub fn is_ready(&self) -> bool {
        self.failures().next().is_none()
    }

    /// The failed checks.
    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.status == Status::Fail)
    }

    /// The checks worth tuning.
    pub fn tunables(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.status == Status::Tune)
    }

    /// The full text `ringmcp check-host` prints.
    pub fn render(&self) -> String {
        let d = &self.demand;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "ringmcp check-host: can this host hold {} concurrent connections?",
            d.connections
        );
        let _ = writeln!(
            s,
            "  ({} shards, {} TCP listener(s) per shard; needs {} descriptors = {} connections + {} reserved)\n",
            d.shards,
            d.listeners,
            d.fds(),
            d.connections,
            d.reserve_fds()
        );
        for c in &self.checks {
            let _ = writeln!(s, "{:<5} {:<31} {}", c.status.label(), c.name, c.found);
            let _ = writeln!(s, "      needs: {}", c.needs);
            if !c.fix.is_empty() {
                let label = match c.status {
                    Status::Fail | Status::Tune => "fix",
                    Status::Ok | Status::Info => "set with",
                };
                let _ = writeln!(s, "      {label}: {}", c.fix);
            }
        }
        s.push('\n');
        s.push_str(&self.summary());
        s.push('\n');
        s
    }

    /// One line: ready or not, and what fails.
    pub fn summary(&self) -> String {
        let tune = self.tunables().count();
        let failed: Vec<&str> = self.failures().map(|c| c.name).collect();
        if failed.is_empty() {
            format!(
                "READY: this host can hold {} connections ({tune} setting(s) worth tuning)",
                self.demand.connections
            )
        } else {
            format!(
                "NOT READY for {} connections: {} failed ({})",
                self.demand.connections,
                failed.len(),
                failed.join(", ")
            )
        }
    }
}

// ---------------------------------------------------------------------------------------
// Reading the host.

impl HostFacts {
    /// Reads everything [`evaluate`] needs from this machine and process.
    pub fn probe() -> HostFacts {
        let proc_sys = Path::new("/proc/sys");
        let sysctls = SYSCTLS
            .iter()
            .filter_map(|k| read_sysctl(proc_sys, k).map(|v| (k.to_string(), v)))
            .collect();
        let cpus_allowed = crate::runtime::allowed_cpus();
        let nodes = numa_nodes();
        let numa_nodes_allowed = nodes
            .iter()
            .filter(|cpus| cpus.iter().any(|c| cpus_allowed.contains(c)))
            .count();
        HostFacts {
            kernel_release: read_trimmed("/proc/sys/kernel/osrelease").unwrap_or_default(),
            io_uring: probe_io_uring(),
            sysctls,
            nofile: getrlimit(libc::RLIMIT_NOFILE),
            memlock: getrlimit(libc::RLIMIT_MEMLOCK),
            cap_ipc_lock: has_capability(CAP_IPC_LOCK),
            netdev_drops: softnet_drops(),
            // SAFETY: sysconf has no preconditions.
            page_bytes: u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096),
            // SAFETY: as above.
            cpus_online: usize::try_from(unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) })
                .unwrap_or(1),
            cpus_allowed,
            numa_nodes: nodes.len().max(1),
            numa_nodes_allowed: numa_nodes_allowed.max(1),
        }
    }
}

/// Reads `key` (dotted) under `proc_sys`, with runs of whitespace collapsed to one space.
pub fn read_sysctl(proc_sys: &Path, key: &str) -> Option<String> {
    let path = proc_sys.join(key.replace('.', "/"));
    let text = std::fs::read_to_string(path).ok()?;
    Some(text.split_whitespace().collect::<Vec<_>>().join(" "))
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

fn getrlimit(resource: libc::__rlimit_resource_t) -> Rlimit {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `r` is a valid rlimit for the call to fill.
    if unsafe { libc::getrlimit(resource, &mut r) } != 0 {
        return Rlimit { soft: 0, hard: 0 };
    }
    Rlimit {
        soft: r.rlim_cur,
        hard: r.rlim_max,
    }
}

/// Raises the soft RLIMIT_NOFILE and RLIMIT_MEMLOCK to their hard limits (what a server
/// that needs many descriptors should do; the hard limit is the operator's decision).
/// Returns the new NOFILE limit.
pub fn raise_soft_limits() -> std::io::Result<Rlimit> {
    for resource in [libc::RLIMIT_MEMLOCK, libc::RLIMIT_NOFILE] {
        let r = getrlimit(resource);
        if r.soft < r.hard {
            let new = libc::rlimit {
                rlim_cur: r.hard,
                rlim_max: r.hard,
            };
            // SAFETY: `new` is a valid rlimit; raising soft up to hard needs no privilege.
            if unsafe { libc::setrlimit(resource, &new) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(getrlimit(libc::RLIMIT_NOFILE))
}

/// Creates (and closes) a small io_uring: the one test that says whether this process may
/// use io_uring at all (kernel support, `kernel.io_uring_disabled`, seccomp, memlock).
fn probe_io_uring() -> Result<(), i32> {
    // struct io_uring_params is 120 bytes; zeroed asks for nothing special.
    let mut params = [0u32; 30];
    // SAFETY: io_uring_setup writes at most sizeof(struct io_uring_params) into `params`.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 4u32, params.as_mut_ptr()) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EINVAL));
    }
    // SAFETY: `fd` is the descriptor io_uring_setup just returned, owned here.
    unsafe {
        libc::close(fd as libc::c_int);
    }
    Ok(())
}

fn has_capability(cap: u32) -> bool {
    let Some(status) = std::fs::read_to_string("/proc/self/status").ok() else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1u64 << cap) != 0)
}

fn softnet_drops() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/net/softnet_stat").ok()?;
    text.lines()
        .map(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|h| u64::from_str_radix(h, 16).ok())
        })
        .sum()
}

/// The CPUs of each NUMA node.
fn numa_nodes() -> Vec<Vec<usize>> {
    let Ok(dir) = std::fs::read_dir("/sys/devices/system/node") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with("node") && name[4..].parse::<u32>().is_ok()
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("cpulist")).ok())
        .map(|list| parse_cpu_list(list.trim()))
        .collect()
}

/// Parses a kernel CPU list such as `0-3,8,10-11`.
pub fn parse_cpu_list(list: &str) -> Vec<usize> {
    let mut cpus = Vec::new();
    for part in list.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) {
                    // Bounded by the kernel's CPU numbering (at most a few thousand).
                    cpus.extend(a..=b.min(a + 65_536));
                }
            }
            None => cpus.extend(part.parse::<usize>().ok()),
        }
    }
    cpus
}

/// Formats CPU numbers as a kernel CPU list (`0-3,8`).
fn format_cpu_list(cpus: &[usize]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let start = cpus[i];
        let mut end = start;
        while i + 1 < cpus.len() && cpus[i + 1] == end + 1 {
            i += 1;
            end = cpus[i];
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    out.join(",")
}

// ---------------------------------------------------------------------------------------
// Evaluating.

fn fmt_limit(v: u64) -> String {
    if v == u64::MAX {
        "unlimited".into()
    } else {
        v.to_string()
    }
}

fn fmt_bytes(v: u64) -> String {
    if v == u64::MAX {
        "unlimited".into()
    } else if v >= 1 << 20 && v & ((1 << 20) - 1) == 0 {
        format!("{} MiB", v >> 20)
    } else if v >= 1 << 10 && v & ((1 << 10) - 1) == 0 {
        format!("{} KiB", v >> 10)
    } else {
        format!("{v} bytes")
    }
}

/// The first number of a sysctl value.
fn num(facts: &HostFacts, key: &str) -> Option<u64> {
    nums(facts, key).and_then(|v| v.first().copied())
}

fn nums(facts: &HostFacts, key: &str) -> Option<Vec<u64>> {
    facts
        .sysctls
        .get(key)
        .map(|v| v.split(' ').filter_map(|n| n.parse().ok()).collect())
}

const PERSIST: &str = "persist with: bash vm-tuning/apply.sh --apply";

fn sysctl_fix(key: &str, value: impl std::fmt::Display) -> String {
    format!("sysctl -w {key}={value}  ({PERSIST})")
}

/// A check of a sysctl that must be at least `need` (absent: `Info`).
fn at_least(
    facts: &HostFacts,
    key: &'static str,
    need: u64,
    below: Status,
    why: &str,
    suggest: u64,
) -> Check {
    match num(facts, key) {
        None => Check {
            name: key,
            status: Status::Info,
            found: "not present on this kernel".into(),
            needs: format!(">= {need} ({why})"),
            fix: String::new(),
        },
        Some(v) => Check {
            name: key,
            status: if v >= need { Status::Ok } else { below },
            found: v.to_string(),
            needs: format!(">= {need} ({why})"),
            fix: sysctl_fix(key, suggest.max(need)),
        },
    }
}

/// Parses `major.minor` from a kernel release such as `6.1.0-18-amd64`.
pub fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

fn check_kernel(f: &HostFacts) -> Check {
    let needs = format!(
        "{}.{} or newer (glommio's io_uring minimum)",
        MIN_KERNEL.0, MIN_KERNEL.1
    );
    let status = match kernel_version(&f.kernel_release) {
        Some(v) if v >= MIN_KERNEL => Status::Ok,
        Some(_) => Status::Fail,
        None => Status::Tune,
    };
    Check {
        name: "kernel",
        status,
        found: if f.kernel_release.is_empty() {
            "unknown".into()
        } else {
            f.kernel_release.clone()
        },
        needs,
        fix: if status == Status::Ok {
            String::new()
        } else {
            "boot a kernel >= 5.8 (Debian 12 ships 6.1)".into()
        },
    }
}

fn check_io_uring(f: &HostFacts) -> Check {
    let (status, found, fix) = match f.io_uring {
        Ok(()) => (
            Status::Ok,
            "available (io_uring_setup succeeded)".to_string(),
            "",
        ),
        Err(e) if e == libc::ENOSYS => (
            Status::Fail,
            "not in this kernel (ENOSYS)".to_string(),
            "boot a kernel built with CONFIG_IO_URING=y",
        ),
        Err(e) if e == libc::EPERM || e == libc::EACCES => (
            Status::Fail,
            format!("refused ({})", std::io::Error::from_raw_os_error(e)),
            "sysctl -w kernel.io_uring_disabled=0, or a container/seccomp profile that allows \
             io_uring_setup, io_uring_enter and io_uring_register",
        ),
        Err(e) if e == libc::ENOMEM => (
            Status::Fail,
            "no memory for a ring (ENOMEM; RLIMIT_MEMLOCK too low on kernels before 5.12)"
                .to_string(),
            "LimitMEMLOCK=256M in the systemd unit; ulimit -l 262144 in a shell",
        ),
        Err(e) => (
            Status::Fail,
            format!("failed ({})", std::io::Error::from_raw_os_error(e)),
            "see docs/operations.md (failure modes)",
        ),
    };
    Check {
        name: "io_uring",
        status,
        found,
        needs: "io_uring_setup must succeed: every shard runs on its own rings".into(),
        fix: fix.into(),
    }
}

fn check_io_uring_disabled(f: &HostFacts) -> Check {
    let name = "kernel.io_uring_disabled";
    let needs = "0 (1 allows only CAP_SYS_ADMIN and members of kernel.io_uring_group; 2 \
                 disables io_uring)"
        .to_string();
    let fix = "sysctl -w kernel.io_uring_disabled=0".to_string();
    match num(f, name) {
        None => Check {
            name,
            status: Status::Ok,
            found: "not present (kernel before 6.6: io_uring is always enabled)".into(),
            needs,
            fix: String::new(),
        },
        Some(0) => Check {
            name,
            status: Status::Ok,
            found: "0".into(),
            needs,
            fix,
        },
        Some(1) if f.io_uring.is_ok() => Check {
            name,
            status: Status::Tune,
            found: format!(
                "1, and this process may use io_uring; the service's user must be in group {} \
                 (kernel.io_uring_group) or it will not start",
                f.sysctls
                    .get("kernel.io_uring_group")
                    .map_or("?", String::as_str)
            ),
            needs,
            fix: format!(
                "{fix}, or add the ringmcp user to the group kernel.io_uring_group names \
                 (SupplementaryGroups= in the unit)"
            ),
        },
        Some(v) => Check {
            name,
            status: Status::Fail,
            found: v.to_string(),
            needs,
            fix,
        },
    }
}

fn nofile_suggestion(need: u64) -> u64 {
    need.next_power_of_two().max(NOFILE_SUGGESTED)
}

fn check_nofile(f: &HostFacts, d: &Demand) -> Check {
    let need = d.fds();
    let effective = f.nofile.hard;
    let mut found = format!(
        "soft {}, hard {}",
        fmt_limit(f.nofile.soft),
        fmt_limit(f.nofile.hard)
    );
    if f.nofile.soft < f.nofile.hard {
        found.push_str(" (serve raises the soft limit to the hard one)");
    }
    let n = nofile_suggestion(need);
    Check {
        name: "RLIMIT_NOFILE",
        status: if effective >= need {
            Status::Ok
        } else {
            Status::Fail
        },
        found,
        needs: format!(
            ">= {need}: one descriptor per connection ({}) + {} for listeners, rings and logs",
            d.connections,
            d.reserve_fds()
        ),
        fix: format!(
            "LimitNOFILE={n} in the systemd unit (vm-tuning/systemd/ringmcp.service); in a shell, as \
             root: ulimit -n {n}; for logins: vm-tuning/limits.d/60-ringmcp.conf"
        ),
    }
}

fn check_nr_open(f: &HostFacts, d: &Demand) -> Check {
    let need = d.fds();
    let mut c = at_least(
        f,
        "fs.nr_open",
        need,
        Status::Fail,
        "no process may set RLIMIT_NOFILE above it, so LimitNOFILE= fails beyond it",
        nofile_suggestion(need) * 2,
    );
    c.needs = format!(">= {need} (the most RLIMIT_NOFILE any process may be given)");
    c
}

fn check_file_max(f: &HostFacts, d: &Demand) -> Check {
    let need = d.fds();
    let name = "fs.file-max";
    let Some(max) = num(f, name) else {
        return at_least(
            f,
            name,
            need,
            Status::Fail,
            "a system-wide cap on open files",
            need,
        );
    };
    // fs.file-nr: allocated, 0, max. Other processes' files count against the same total.
    let used = num(f, "fs.file-nr").unwrap_or(0);
    let free = max.saturating_sub(used);
    Check {
        name,
        status: if free >= need {
            Status::Ok
        } else {
            Status::Fail
        },
        found: format!("{max} ({used} open on the host, {free} free)"),
        needs: format!(">= {need} free: a system-wide cap on open files, connections included"),
        fix: sysctl_fix(name, (used + need).next_power_of_two().max(4 << 20)),
    }
}

fn check_memlock(f: &HostFacts, d: &Demand) -> Check {
    let need = d.memlock_bytes().max(GLOMMIO_MIN_MEMLOCK_BYTES);
    let effective = f.memlock.hard;
    let mut found = format!(
        "soft {}, hard {}",
        fmt_bytes(f.memlock.soft),
        fmt_bytes(f.memlock.hard)
    );
    let status = if effective < GLOMMIO_MIN_MEMLOCK_BYTES {
        Status::Fail
    } else if f.cap_ipc_lock {
        found.push_str(" (not enforced: the process has CAP_IPC_LOCK)");
        Status::Ok
    } else if effective < need {
        Status::Tune
    } else {
        Status::Ok
    };
    Check {
        name: "RLIMIT_MEMLOCK",
        status,
        found,
        needs: format!(
            ">= {} (glommio refuses to start below {}; each shard registers {} in each of its \
             {RINGS_PER_SHARD} rings, skipped with a warning when it does not fit)",
            fmt_bytes(need),
            fmt_bytes(GLOMMIO_MIN_MEMLOCK_BYTES),
            fmt_bytes(crate::runtime::IO_MEMORY_BYTES as u64),
        ),
        fix: "LimitMEMLOCK=256M in the systemd unit; ulimit -l 262144 in a shell".into(),
    }
}

fn check_ceiling(f: &HostFacts, d: &Demand) -> Check {
    let ceiling = d.ceiling();
    let fd_budget = f.nofile.hard.saturating_sub(d.reserve_fds());
    let per_shard_fit = fd_budget / d.shards.max(1) as u64;
    let found = format!(
        "limits.connections_per_shard_max {} x {} shards = {ceiling}",
        d.connections_per_shard_max, d.shards
    );
    if ceiling < d.connections {
        let per_shard = d.connections.div_ceil(d.shards.max(1) as u64);
        return Check {
            name: "connection ceiling",
            status: Status::Fail,
            found,
            needs: format!(
                ">= {} (beyond the ceiling connections are refused)",
                d.connections
            ),
            fix: format!(
                "--set limits.connections_per_shard_max={per_shard} (or in the config file)"
            ),
        };
    }
    let (status, fix) = if ceiling > fd_budget && f.nofile.hard != u64::MAX {
        (
            Status::Tune,
            format!(
                "limits.connections_per_shard_max = {per_shard_fit}, so that connections past \
                 the descriptor budget ({fd_budget}) get an explicit -32001 instead of a failed \
                 accept (EMFILE)"
            ),
        )
    } else {
        (Status::Ok, String::new())
    };
    Check {
        name: "connection ceiling",
        status,
        found,
        needs: format!(
            ">= {}, and at most {fd_budget} (the descriptors RLIMIT_NOFILE leaves for connections)",
            d.connections
        ),
        fix,
    }
}

fn check_cpus(f: &HostFacts, d: &Demand) -> Check {
    let allowed = f.cpus_allowed.len();
    let mut found = format!(
        "{} online, {allowed} allowed ({}), {} shards",
        f.cpus_online,
        format_cpu_list(&f.cpus_allowed),
        d.shards
    );
    if f.numa_nodes > 1 {
        let _ = write!(
            found,
            "; the allowed CPUs span {} of {} NUMA nodes",
            f.numa_nodes_allowed, f.numa_nodes
        );
    }
    Check {
        name: "CPUs",
        status: if d.shards <= allowed.max(1) {
            Status::Ok
        } else {
            Status::Tune
        },
        found,
        needs: "one shard per allowed CPU (more shards than CPUs share cores)".into(),
        fix: "CPUAffinity= in the unit (or taskset -c LIST ringmcp serve), server.shards or \
              --shards; NUMA and IRQs: vm-tuning/README.md"
            .into(),
    }
}

fn check_netdev_backlog(f: &HostFacts, d: &Demand) -> Check {
    let key = "net.core.netdev_max_backlog";
    // Heuristic: a burst in which a tenth of the connections send a packet to one CPU.
    let need = (d.connections / 10).clamp(1000, 16384);
    let mut c = at_least(
        f,
        key,
        need,
        Status::Tune,
        "packets queued per CPU before the stack; a full queue drops them",
        16384,
    );
    if let (Some(drops), Some(_)) = (f.netdev_drops, num(f, key)) {
        let _ = write!(c.found, " ({drops} packets dropped since boot)");
        if drops > 0 {
            c.status = Status::Tune;
        }
    }
    c
}

fn check_tcp_mem(f: &HostFacts, d: &Demand) -> Check {
    let key = "net.ipv4.tcp_mem";
    let page = f.page_bytes.max(1);
    let need_pages = (d.connections * TCP_MEM_PER_CONNECTION_BYTES).div_ceil(page);
    let needs = format!(
        "pressure >= {need_pages} pages ({} MiB: {} KiB queued on every connection at once)",
        (need_pages * page) >> 20,
        TCP_MEM_PER_CONNECTION_BYTES >> 10
    );
    match nums(f, key) {
        Some(v) if v.len() == 3 => {
            let (min, pressure, max) = (v[0], v[1], v[2]);
            let ok = pressure >= need_pages;
            let (sp, sm) = (
                need_pages.max(pressure),
                (need_pages * 2).max(max).max(need_pages),
            );
            Check {
                name: key,
                status: if ok { Status::Ok } else { Status::Tune },
                found: format!(
                    "{min} {pressure} {max} pages (pressure at {} MiB)",
                    (pressure * page) >> 20
                ),
                needs,
                fix: format!(
                    "sysctl -w {key}='{} {sp} {sm}' (at most about RAM/4 at max; {PERSIST})",
                    min.min(sp)
                ),
            }
        }
        _ => Check {
            name: key,
            status: Status::Info,
            found: "unreadable".into(),
            needs,
            fix: String::new(),
        },
    }
}

fn check_port_range(f: &HostFacts) -> Check {
    let key = "net.ipv4.ip_local_port_range";
    let (found, ports) = match nums(f, key) {
        Some(v) if v.len() == 2 && v[1] >= v[0] => {
            (format!("{} {}", v[0], v[1]), Some(v[1] - v[0] + 1))
        }
        _ => ("unreadable".to_string(), None),
    };
    Check {
        name: key,
        status: Status::Info,
        found,
        needs: format!(
            "nothing for the server (an accepted connection uses no local port); a client on \
             this host (load generator) opens at most {} connections per destination address",
            ports.map_or("?".into(), |p| p.to_string())
        ),
        fix: format!("sysctl -w {key}='10000 65535' on client hosts ({PERSIST})"),
    }
}

fn check_migrate_req(f: &HostFacts) -> Check {
    let key = "net.ipv4.tcp_migrate_req";
    let mut c = at_least(
        f,
        key,
        1,
        Status::Tune,
        "a zero-drop SO_REUSEPORT hand-over: the old process's queued connections move to the \
         new one instead of being reset",
        1,
    );
    if c.status == Status::Info {
        c.found =
            "not present (kernel before 5.14): drain through the load balancer to upgrade".into();
    }
    c
}

fn check_conntrack(f: &HostFacts, d: &Demand) -> Check {
    let key = "net.netfilter.nf_conntrack_max";
    let used = num(f, "net.netfilter.nf_conntrack_count").unwrap_or(0);
    let need = d.connections + used;
    let mut c = at_least(
        f,
        key,
        need,
        Status::Tune,
        "when a firewall tracks connections, a full table drops new ones",
        (need * 2).next_power_of_two().max(1 << 20),
    );
    if c.status == Status::Info {
        c.found = "nf_conntrack not loaded (connections are not tracked)".into();
    } else {
        let _ = write!(c.found, " ({used} tracked now)");
    }
    c
}

/// Every check of `facts` against `demand`, in report order.
pub fn evaluate(facts: &HostFacts, demand: &Demand) -> Report {
    let d = demand;
    let f = facts;
    let checks = vec![
        check_kernel(f),
        check_io_uring(f),
        check_io_uring_disabled(f),
        check_nofile(f, d),
        check_nr_open(f, d),
        check_file_max(f, d),
        check_memlock(f, d),
        check_ceiling(f, d),
        check_cpus(f, d),
        at_least(
            f,
            "net.core.somaxconn",
            LISTEN_BACKLOG,
            Status::Tune,
            "it caps each listener's accept queue; ringmcp asks for 1024 per shard",
            65535,
        ),
        at_least(
            f,
            "net.ipv4.tcp_max_syn_backlog",
            LISTEN_BACKLOG,
            Status::Tune,
            "half-open connections per listener during a reconnect storm",
            65535,
        ),
        at_least(
            f,
            "net.ipv4.tcp_syncookies",
            1,
            Status::Tune,
            "a full SYN queue answers with cookies instead of dropping",
            1,
        ),
        check_netdev_backlog(f, d),
        check_tcp_mem(f, d),
        at_least(
            f,
            "net.ipv4.tcp_max_orphans",
            d.connections,
            Status::Tune,
            "a drain closes every connection at once; past this the kernel resets them",
            (d.connections * 2).next_power_of_two().max(262_144),
        ),
        check_migrate_req(f),
        check_port_range(f),
        check_conntrack(f, d),
    ];
    Report {
        demand: *demand,
        checks,
    }
}

/// Probes this host and evaluates it for `demand`.
pub fn check(demand: &Demand) -> Report {
    evaluate(&HostFacts::probe(), demand)
}

/// Why `ringmcp serve` refused to start: the failed checks, each with its fix.
#[derive(Debug, thiserror::Error)]
#[error(
    "this host cannot hold server.connections_target = {connections} connections:{failures}\n\
     `ringmcp check-host` prints every check; lower server.connections_target, fix the host, \
     or pass --allow-unready-host to start anyway"
)]
pub struct NotReady {
    /// The demanded connections.
    pub connections: u64,
    /// One indented paragraph per failed check.
    pub failures: String,
}

/// What `ringmcp serve` does before it starts its shards: raises the soft open-file and
/// locked-memory limits to the hard ones, evaluates the host for `server.connections_target`
/// and refuses to start when a check fails (with `allow_unready`, logs the failures as
/// warnings and goes on). Settings worth tuning are named in one info line.
pub fn check_at_start(cfg: &Config, allow_unready: bool) -> Result<(), NotReady> {
    if let Err(e) = raise_soft_limits() {
        tracing::warn!("cannot raise the soft RLIMIT_NOFILE/RLIMIT_MEMLOCK: {e}");
    }
    let demand = Demand::from_config(cfg, None, None);
    let report = check(&demand);
    if report.is_ready() {
        let tune: Vec<&str> = report.tunables().map(|c| c.name).collect();
        if tune.is_empty() {
            tracing::info!("host check: ready for {} connections", demand.connections);
        } else {
            tracing::info!(
                "host check: ready for {} connections; worth tuning: {} (see `ringmcp check-host`)",
                demand.connections,
                tune.join(", ")
            );
        }
        return Ok(());
    }
    let mut failures = String::new();
    for c in report.failures() {
        let _ = write!(
            failures,
            "\n  {}: {}; needs {}\n    fix: {}",
            c.name, c.found, c.needs, c.fix
        );
    }
    if allow_unready {
        tracing::warn!(
            "starting anyway (--allow-unready-host): this host cannot hold {} connections:{failures}",
            demand.connections
        );
        return Ok(());
    }
    Err(NotReady {
        connections: demand.connections,
        failures,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good_host() -> HostFacts {
        let sysctls = [
            ("kernel.io_uring_disabled", "0"),
            ("kernel.io_uring_group", "-1"),
            ("fs.file-max", "9223372036854775807"),
            ("fs.file-nr", "1000 0 9223372036854775807"),
            ("fs.nr_open", "1073741816"),
            ("net.core.somaxconn", "65535"),
            ("net.core.netdev_max_backlog", "16384"),
            ("net.ipv4.tcp_max_syn_backlog", "65535"),
            ("net.ipv4.tcp_syncookies", "1"),
            ("net.ipv4.tcp_mem", "786432 1048576 2097152"),
            ("net.ipv4.tcp_max_orphans", "262144"),
            ("net.ipv4.tcp_migrate_req", "1"),
            ("net.ipv4.ip_local_port_range", "10000 65535"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        HostFacts {
            kernel_release: "6.1.0-18-amd64".into(),
            io_uring: Ok(()),
            sysctls,
            nofile: Rlimit {
                soft: 1 << 20,
                hard: 1 << 20,
            },
            memlock: Rlimit {
                soft: 256 << 20,
                hard: 256 << 20,
            },
            cap_ipc_lock: false,
            netdev_drops: Some(0),
            page_bytes: 4096,
            cpus_online: 16,
            cpus_allowed: (1..16).collect(),
            numa_nodes: 1,
            numa_nodes_allowed: 1,
        }
    }

    fn demand(connections: u64) -> Demand {
        Demand {
            connections,
            shards: 15,
            listeners: 1,
            connections_per_shard_max: 50_000,
        }
    }

    fn status_of(r: &Report, name: &str) -> Status {
        r.checks.iter().find(|c| c.name == name).unwrap().status
    }

    #[test]
    fn a_tuned_host_is_ready_for_100k_without_anything_to_tune() {
        let r = evaluate(&good_host(), &demand(100_000));
        assert!(r.is_ready(), "{}", r.render());
        assert_eq!(r.tunables().count(), 0, "{}", r.render());
        assert!(r.render().contains("READY: this host can hold 100000"));
    }

    #[test]
    fn the_development_box_holds_10k_but_not_100k() {
        let mut host = good_host();
        host.nofile = Rlimit {
            soft: 20_000,
            hard: 20_000,
        };
        host.cpus_allowed = vec![0, 1];
        let mut d = demand(10_000);
        d.shards = 2;
        let r = evaluate(&host, &d);
        assert!(r.is_ready(), "{}", r.render());
        // 50,000 x 2 connections allowed, but only ~20,000 descriptors.
        assert_eq!(status_of(&r, "connection ceiling"), Status::Tune);
        d.connections = 100_000;
        let r = evaluate(&host, &d);
        assert!(!r.is_ready());
        let failed: Vec<_> = r.failures().map(|c| c.name).collect();
        assert_eq!(failed, vec!["RLIMIT_NOFILE"]);
        assert!(r.render().contains("soft 20000, hard 20000"));
        assert!(r.render().contains("LimitNOFILE=1048576"));
    }

    #[test]
    fn the_soft_limit_is_raised_so_only_the_hard_limit_counts() {
        let mut host = good_host();
        host.nofile = Rlimit {
            soft: 1024,
            hard: 524_288,
        };
        let r = evaluate(&host, &demand(100_000));
        assert_eq!(status_of(&r, "RLIMIT_NOFILE"), Status::Ok);
        assert!(r.render().contains("serve raises the soft limit"));
    }

    #[test]
    fn kernel_limits_that_block_the_target_fail() {
        let mut host = good_host();
        host.sysctls.insert("fs.nr_open".into(), "65536".into());
        host.sysctls
            .insert("fs.file-nr".into(), "9000 0 100000".into());
        host.sysctls.insert("fs.file-max".into(), "100000".into());
        let r = evaluate(&host, &demand(100_000));
        let failed: Vec<_> = r.failures().map(|c| c.name).collect();
        assert_eq!(failed, vec!["fs.nr_open", "fs.file-max"]);
    }

    #[test]
    fn io_uring_refusal_and_old_kernels_fail() {
        let mut host = good_host();
        host.io_uring = Err(libc::EPERM);
        host.sysctls
            .insert("kernel.io_uring_disabled".into(), "2".into());
        host.kernel_release = "5.4.0-150-generic".into();
        let r = evaluate(&host, &demand(0));
        let failed: Vec<_> = r.failures().map(|c| c.name).collect();
        assert_eq!(
            failed,
            vec!["kernel", "io_uring", "kernel.io_uring_disabled"]
        );
        assert!(r.render().contains("kernel.io_uring_disabled=0"));
    }

    #[test]
    fn memlock_below_glommios_minimum_fails_and_short_of_buffers_tunes() {
        let mut host = good_host();
        host.memlock = Rlimit {
            soft: 64 << 10,
            hard: 64 << 10,
        };
        assert_eq!(
            status_of(&evaluate(&host, &demand(0)), "RLIMIT_MEMLOCK"),
            Status::Fail
        );
        host.memlock = Rlimit {
            soft: 8 << 20,
            hard: 8 << 20,
        };
        // 15 shards x 3 rings x 512 KiB = 22.5 MiB > 8 MiB.
        assert_eq!(
            status_of(&evaluate(&host, &demand(0)), "RLIMIT_MEMLOCK"),
            Status::Tune
        );
        host.cap_ipc_lock = true;
        assert_eq!(
            status_of(&evaluate(&host, &demand(0)), "RLIMIT_MEMLOCK"),
            Status::Ok
        );
    }

    #[test]
    fn a_ceiling_below_the_target_fails_with_the_key_to_set() {
        let mut d = demand(100_000);
        d.connections_per_shard_max = 1000;
        let r = evaluate(&good_host(), &d);
        assert_eq!(status_of(&r, "connection ceiling"), Status::Fail);
        assert!(r
            .render()
            .contains("--set limits.connections_per_shard_max=6667"));
    }

    #[test]
    fn untuned_network_settings_tune_but_do_not_fail() {
        let mut host = good_host();
        host.sysctls
            .insert("net.core.somaxconn".into(), "128".into());
        host.sysctls
            .insert("net.ipv4.tcp_mem".into(), "1000 2000 3000".into());
        host.sysctls.remove("net.ipv4.tcp_migrate_req");
        host.netdev_drops = Some(12);
        let r = evaluate(&host, &demand(100_000));
        assert!(r.is_ready());
        let tune: Vec<_> = r.tunables().map(|c| c.name).collect();
        assert_eq!(
            tune,
            vec![
                "net.core.somaxconn",
                "net.core.netdev_max_backlog",
                "net.ipv4.tcp_mem"
            ]
        );
        assert_eq!(status_of(&r, "net.ipv4.tcp_migrate_req"), Status::Info);
    }

    #[test]
    fn parses_kernel_versions_and_cpu_lists() {
        assert_eq!(kernel_version("6.18.44-fc-v657"), Some((6, 18)));
        assert_eq!(kernel_version("5.8.0"), Some((5, 8)));
        assert_eq!(kernel_version("garbage"), None);
        assert_eq!(parse_cpu_list("0-3,8,10-11"), vec![0, 1, 2, 3, 8, 10, 11]);
        assert_eq!(format_cpu_list(&[0, 1, 2, 3, 8, 10, 11]), "0-3,8,10-11");
    }

    #[test]
    fn demand_counts_listeners_and_shards() {
        let mut cfg = Config::default();
        cfg.server.shards = 4;
        cfg.tcp
            .listeners
            .insert("conformance".into(), "127.0.0.1:7071".parse().unwrap());
        let d = Demand::from_config(&cfg, Some(1000), None);
        assert_eq!(d.shards, 4);
        assert_eq!(d.listeners, 2);
        assert_eq!(d.fds(), 1000 + 64 + 4 * 18);
        assert_eq!(d.ceiling(), 200_000);
        assert_eq!(Demand::from_config(&cfg, None, Some(2)).connections, 10_000);
    }
}
