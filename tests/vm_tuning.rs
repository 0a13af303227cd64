//! vm-tuning/: the systemd units pass `systemd-analyze verify`, and `apply.sh` changes
//! nothing without `--apply` (on this host), raises but never lowers with it (on a scratch
//! tree given by `--root`, never on this host).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_ringmcp");

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A directory under the system's temporary directory, removed when dropped (also when the
/// test fails).
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

fn scratch(name: &str) -> Scratch {
    let dir = std::env::temp_dir().join(format!("ringmcp-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    Scratch(dir)
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn has_command(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `systemd-analyze`, installed from Debian's `systemd` package when missing (CI starts from
/// a bare Debian 12; installing needs root and the network).
fn ensure_systemd_analyze() {
    if has_command("systemd-analyze") {
        return;
    }
    let install = "apt-get update -q && \
                   DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends systemd";
    let out = Command::new("sh").args(["-c", install]).output().unwrap();
    assert!(
        out.status.success() && has_command("systemd-analyze"),
        "systemd-analyze is missing and `{install}` failed (needs root):\n{}",
        text(&out)
    );
}

/// The dotted keys of the sysctl file.
fn sysctl_keys() -> Vec<String> {
    let conf = std::fs::read_to_string(repo().join("vm-tuning/sysctl.d/60-ringmcp.conf")).unwrap();
    conf.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
        .map(|l| {
            let l = l.strip_prefix('-').unwrap_or(l);
            l.split('=').next().unwrap().trim().to_string()
        })
        .collect()
}

#[test]
fn units_pass_systemd_analyze_verify() {
    ensure_systemd_analyze();
    let dir = scratch("units");
    let units = repo().join("vm-tuning/systemd");
    let mut verified = Vec::new();
    for (file, name) in [
        ("ringmcp.service", "ringmcp.service"),
        ("ringmcp@.service", "ringmcp@.service"),
        // An instance of the template, as `systemctl start ringmcp@blue` loads it.
        ("ringmcp@.service", "ringmcp@blue.service"),
    ] {
        let unit = std::fs::read_to_string(units.join(file)).unwrap();
        for directive in [
            "Type=notify",
            "WatchdogSec=",
            "LimitNOFILE=1048576",
            "LimitMEMLOCK=",
            "CPUAffinity=",
            "Restart=on-failure",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "PrivateTmp=yes",
            "User=ringmcp",
        ] {
            assert!(
                unit.lines().any(|l| l.starts_with(directive)),
                "{file} lacks {directive}"
            );
        }
        // verify checks that ExecStart= is executable: point it at the binary just built.
        assert!(unit.contains("ExecStart=/usr/local/bin/ringmcp serve"));
        let unit = unit.replace("/usr/local/bin/ringmcp", BIN);
        let path = dir.join(name);
        std::fs::write(&path, unit).unwrap();
        let out = Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(&path)
            .output()
            .unwrap();
        let all = text(&out);
        assert!(
            out.status.success(),
            "systemd-analyze verify {name}:\n{all}"
        );
        // verify exits 0 on unknown keys and bad values, and only warns: any line about our
        // unit is a defect.
        assert!(
            !all.lines().any(|l| l.contains("ringmcp")),
            "systemd-analyze verify {name} complained:\n{all}"
        );
        verified.push(name);
    }
    assert_eq!(verified.len(), 3);
}

/// What apply.sh could touch on this host: the running values of its keys, and the files
/// (names, sizes, modification times, contents) of the two configuration directories.
fn host_snapshot() -> BTreeMap<String, String> {
    let mut snap = BTreeMap::new();
    for key in sysctl_keys() {
        let path = Path::new("/proc/sys").join(key.replace('.', "/"));
        snap.insert(
            key,
            std::fs::read_to_string(path).unwrap_or_else(|e| format!("unreadable: {e}")),
        );
    }
    for dir in ["/etc/sysctl.d", "/etc/security/limits.d"] {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) => {
                snap.insert(dir.into(), format!("unreadable: {e}"));
                continue;
            }
        };
        for e in entries {
            let e = e.unwrap();
            let meta = std::fs::symlink_metadata(e.path()).unwrap();
            let content = std::fs::read(e.path()).unwrap_or_default();
            snap.insert(
                e.path().display().to_string(),
                format!("{} {:?} {:?}", meta.len(), meta.modified().ok(), content),
            );
        }
    }
    snap
}

#[test]
fn apply_without_apply_changes_nothing() {
    let before = host_snapshot();
    let out = Command::new("bash")
        .arg(repo().join("vm-tuning/apply.sh"))
        .output()
        .unwrap();
    let after = host_snapshot();
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert_eq!(before, after, "apply.sh (dry run) changed the host:\n{all}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("dry run: nothing changed"), "{all}");
    // It shows every setting with its running value, and the files as a diff.
    for key in sysctl_keys() {
        assert!(stdout.contains(&key), "{key} not shown:\n{all}");
    }
    assert!(
        stdout.contains("--- /etc/sysctl.d/60-ringmcp.conf (installed)")
            || stdout.contains("identical")
    );

    // A mistyped flag is refused before anything is read or written.
    let before = host_snapshot();
    let out = Command::new("bash")
        .arg(repo().join("vm-tuning/apply.sh"))
        .arg("--aply")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert_eq!(before, host_snapshot());
}

fn write(root: &Path, rel: &str, content: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

fn read(root: &Path, rel: &str) -> String {
    std::fs::read_to_string(root.join(rel)).unwrap()
}

#[test]
fn apply_raises_values_and_never_lowers_them() {
    // A scratch "host": apply.sh --root reads and writes only under it.
    let root = scratch("apply-root");
    // Higher than ours: must stay (systemd sets file-max to the maximum at boot).
    write(&root, "proc/sys/fs/file-max", "9223372036854775807\n");
    // Lower than ours: must be raised.
    write(&root, "proc/sys/fs/nr_open", "1048576\n");
    write(&root, "proc/sys/net/core/somaxconn", "4096\n");
    write(&root, "proc/sys/net/ipv4/tcp_max_syn_backlog", "2048\n");
    write(&root, "proc/sys/net/ipv4/tcp_syncookies", "1\n");
    write(&root, "proc/sys/net/core/netdev_max_backlog", "1000\n");
    write(&root, "proc/sys/net/ipv4/tcp_max_orphans", "131072\n");
    write(&root, "proc/sys/net/ipv4/tcp_migrate_req", "0\n");
    // Wider than ours at the bottom: the union is kept.
    write(
        &root,
        "proc/sys/net/ipv4/ip_local_port_range",
        "1024\t60999\n",
    );
    // A 4 GiB host: our tcp_mem max (4 GiB) is over a quarter of RAM, so the kernel's stays.
    write(&root, "proc/sys/net/ipv4/tcp_mem", "45000\t60000\t90000\n");
    write(&root, "proc/meminfo", "MemTotal:        4194304 kB\n");
    // nf_conntrack not loaded: no net/netfilter.

    let run = |args: &[&str]| {
        Command::new("bash")
            .arg(repo().join("vm-tuning/apply.sh"))
            .arg("--root")
            .arg(&*root)
            .args(args)
            .output()
            .unwrap()
    };
    let dry = run(&[]);
    assert!(dry.status.success(), "{}", text(&dry));
    assert!(!root.join("etc").exists(), "a dry run wrote files");
    assert_eq!(read(&root, "proc/sys/net/core/somaxconn"), "4096\n");

    let out = run(&["--apply"]);
    assert!(out.status.success(), "{}", text(&out));
    let live = |rel: &str| {
        read(&root, rel)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(live("proc/sys/fs/file-max"), "9223372036854775807");
    assert_eq!(live("proc/sys/fs/nr_open"), "2097152");
    assert_eq!(live("proc/sys/net/core/somaxconn"), "65535");
    assert_eq!(live("proc/sys/net/core/netdev_max_backlog"), "16384");
    assert_eq!(live("proc/sys/net/ipv4/tcp_migrate_req"), "1");
    assert_eq!(live("proc/sys/net/ipv4/ip_local_port_range"), "1024 65535");
    assert_eq!(live("proc/sys/net/ipv4/tcp_mem"), "45000 60000 90000");

    // The installed file says the same, so a reboot does not lower anything either.
    let installed = read(&root, "etc/sysctl.d/60-ringmcp.conf");
    for line in [
        "fs.file-max = 9223372036854775807",
        "fs.nr_open = 2097152",
        "net.core.somaxconn = 65535",
        "net.ipv4.ip_local_port_range = 1024 65535",
        "net.ipv4.tcp_mem = 45000 60000 90000",
        "-net.ipv4.tcp_migrate_req = 1",
        "-net.netfilter.nf_conntrack_max = 1048576",
    ] {
        assert!(
            installed.lines().any(|l| l == line),
            "{line:?} not in:\n{installed}"
        );
    }
    assert_eq!(
        read(&root, "etc/security/limits.d/60-ringmcp.conf"),
        read(&repo(), "vm-tuning/limits.d/60-ringmcp.conf")
    );

    // Applying again changes nothing.
    let again = run(&[]);
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(
        stdout.contains("(0 kernel setting(s) would change)"),
        "{}",
        text(&again)
    );
    assert!(
        stdout.matches("(already installed, identical)").count() == 2,
        "{stdout}"
    );
}
