//! Running external tools from tests (the Python and TypeScript SDK clients, the official
//! conformance suite): bounded runs with their output in a log file, and npm installations
//! cached under the target directory (never in the source tree), rebuilt only when what they
//! were built from changes. Nothing here skips a test: a missing tool fails it with a message
//! that says what to install.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// What to install when node or npm is missing.
pub const NODE_HINT: &str = "install Node.js 18 or newer with npm \
     (Debian/Ubuntu: apt-get install -y nodejs npm), with access to the npm registry; \
     RINGMCP_NODE and RINGMCP_NPM may name other binaries";

/// The longest one npm installation may take.
pub const NPM_INSTALL_LIMIT: Duration = Duration::from_secs(600);

/// The target directory: the ringmcp binary lives in `<target>/<profile>/ringmcp`.
pub fn target_dir() -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_ringmcp"));
    bin.parent()
        .and_then(Path::parent)
        .unwrap_or_else(|| panic!("unexpected binary path {}", bin.display()))
        .to_path_buf()
}

/// Runs `cmd` with stdout and stderr into `log`, killing it after `limit`. Returns its
/// status (None when it was killed) and what it printed.
pub fn run_logged(
    cmd: &mut Command,
    log: &Path,
    limit: Duration,
) -> std::io::Result<(Option<ExitStatus>, String)> {
    let file = File::create(log)?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::from(file.try_clone()?))
        .stderr(Stdio::from(file))
        .spawn()?;
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = fs::read_to_string(log).unwrap_or_default();
    Ok((status, output))
}

/// Runs an SDK client (`cmd`) to its end, within `limit`, with its output in a log of its own
/// (see [`run_log`]) named `log_name`: it must exit 0 and report `checks passed`, else the
/// test fails, naming the client as `client` ("the Python SDK client"). Returns its output.
pub fn run_client_checks(
    cmd: &mut Command,
    log_name: &str,
    limit: Duration,
    client: &str,
) -> String {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let log = run_log(log_name);
    let started = Instant::now();
    let (status, output) =
        run_logged(cmd, &log, limit).unwrap_or_else(|e| panic!("could not run {program}: {e}"));
    assert!(
        status.is_some_and(|s| s.success()),
        "{client} failed ({}) after {:.1}s; its output (also in {}):\n{output}",
        describe(status),
        started.elapsed().as_secs_f64(),
        log.display()
    );
    assert!(
        output.contains("checks passed"),
        "{client} exited 0 without reporting its checks:\n{output}"
    );
    forget_log(&log);
    output
}

/// Where a run's output goes: a file of its own under the test tmp directory (so that
/// concurrent test processes never mix their logs). [`forget_log`] removes it after a run
/// that went well; a failed run's log stays for a look.
pub fn run_log(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}.log", std::process::id()))
}

/// Removes a log that is no longer needed.
pub fn forget_log(log: &Path) {
    let _ = fs::remove_file(log);
}

/// Runs `f` holding an exclusive lock on `path` (created if need be), so that test processes
/// sharing a target directory (say, a debug and a release run) never install into the same
/// directory at once. Waits at most `limit` for the lock.
pub fn with_file_lock<T>(path: &Path, limit: Duration, f: impl FnOnce() -> T) -> T {
    use std::os::fd::AsRawFd;
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("cannot open lock file {}: {e}", path.display()));
    let deadline = Instant::now() + limit;
    loop {
        // SAFETY: flock(2) on a descriptor `file` owns for the whole call.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} stayed locked by another test process for {limit:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The lock goes with the descriptor, when `file` drops (also on a panic in `f`).
    let out = f();
    drop(file);
    out
}

/// Writes `contents` to `path` atomically (a temporary file renamed over it), so that a
/// concurrent reader sees the old file or the new one, never a partial one.
pub fn write_atomic(path: &Path, contents: &str) {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    fs::write(&tmp, contents).unwrap_or_else(|e| panic!("cannot write {}: {e}", tmp.display()));
    fs::rename(&tmp, path).unwrap_or_else(|e| panic!("cannot rename to {}: {e}", path.display()));
}

/// An exit status for a message; `None` is a run killed at its time limit.
pub fn describe(status: Option<ExitStatus>) -> String {
    match status {
        Some(s) => s.to_string(),
        None => "killed: it ran past its time limit".into(),
    }
}

/// FNV-1a, 64 bits: a hash that stays the same across Rust releases (a marker outlives the
/// toolchain that wrote it).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The first line `program args` prints, or why it could not be run.
pub fn tool_version(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("`{program}` could not be run: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .to_string())
}

/// The system `node` (or `RINGMCP_NODE`); fails the test, saying what to install, when there
/// is none.
pub fn system_node() -> (String, String) {
    let node = std::env::var("RINGMCP_NODE").unwrap_or_else(|_| "node".into());
    let version =
        tool_version(&node, &["--version"]).unwrap_or_else(|e| panic!("{e}: {NODE_HINT}"));
    (node, version)
}

/// The system `npm` (or `RINGMCP_NPM`) and its version; fails the test when there is none.
pub fn system_npm() -> (String, String) {
    let npm = std::env::var("RINGMCP_NPM").unwrap_or_else(|_| "npm".into());
    let version = tool_version(&npm, &["--version"]).unwrap_or_else(|e| panic!("{e}: {NODE_HINT}"));
    (npm, version)
}

/// A directory under the target directory holding `npm ci` of a committed `package.json` and
/// `package-lock.json`. Reused while its marker matches both files (and `installed` accepts
/// it); otherwise removed and installed anew, under a file lock (test processes sharing the
/// target directory take turns).
pub fn npm_ci_dir(
    name: &str,
    package_json: &str,
    package_lock: &str,
    installed: impl Fn(&Path) -> bool,
) -> PathBuf {
    let lock = target_dir().join(format!("{name}.lock"));
    with_file_lock(&lock, NPM_INSTALL_LIMIT + Duration::from_secs(60), || {
        npm_ci_dir_locked(name, package_json, package_lock, installed)
    })
}

fn npm_ci_dir_locked(
    name: &str,
    package_json: &str,
    package_lock: &str,
    installed: impl Fn(&Path) -> bool,
) -> PathBuf {
    let dir = target_dir().join(name);
    let marker = dir.join(".ringmcp-npm-install");
    let fingerprint = format!(
        "package.json fnv1a64 {:016x}\npackage-lock.json fnv1a64 {:016x}\n",
        fnv1a64(package_json.as_bytes()),
        fnv1a64(package_lock.as_bytes())
    );
    if marker_matches(&marker, &fingerprint) && installed(&dir) {
        return dir;
    }
    let (npm, npm_version) = system_npm();
    eprintln!(
        "installing {} with npm {npm_version} (once; reused while its marker matches)",
        dir.display()
    );
    remove_stale(&dir);
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    fs::write(dir.join("package.json"), package_json).expect("write package.json");
    fs::write(dir.join("package-lock.json"), package_lock).expect("write package-lock.json");
    let log = target_dir().join(format!("{name}-install.log"));
    let started = Instant::now();
    let (status, output) = run_logged(
        Command::new(&npm)
            .args(["ci", "--no-audit", "--no-fund", "--no-update-notifier"])
            .current_dir(&dir),
        &log,
        NPM_INSTALL_LIMIT,
    )
    .unwrap_or_else(|e| panic!("could not run {npm}: {e}; {NODE_HINT}"));
    assert!(
        status.is_some_and(|s| s.success()),
        "`npm ci` in {} failed ({}) after {:.0}s; it needs access to the npm registry; \
         {NODE_HINT}.\n{output}",
        dir.display(),
        describe(status),
        started.elapsed().as_secs_f64()
    );
    assert!(
        installed(&dir),
        "`npm ci` in {} succeeded, yet the installation is not what package.json pins:\n{output}",
        dir.display()
    );
    write_marker(&marker, &fingerprint);
    eprintln!(
        "installed {} in {:.1}s",
        dir.display(),
        started.elapsed().as_secs_f64()
    );
    dir
}

/// Whether a cached installation's marker file holds `fingerprint` (what the installation
/// was built from).
pub fn marker_matches(marker: &Path, fingerprint: &str) -> bool {
    fs::read_to_string(marker).ok().as_deref() == Some(fingerprint)
}

/// Writes a cached installation's marker, once the installation is complete.
pub fn write_marker(marker: &Path, fingerprint: &str) {
    fs::write(marker, fingerprint)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", marker.display()));
}

/// Removes what is left of an older installation in `dir`, if anything.
pub fn remove_stale(dir: &Path) {
    if dir.exists() {
        fs::remove_dir_all(dir)
            .unwrap_or_else(|e| panic!("cannot remove stale {}: {e}", dir.display()));
    }
}

/// The `version` field of an installed package's package.json.
pub fn installed_version(dir: &Path, package: &str) -> Option<String> {
    let path = dir.join("node_modules").join(package).join("package.json");
    let text = fs::read_to_string(path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["version"].as_str().map(str::to_string)
}

/// The exact version `package` is pinned to in a package.json.
pub fn pinned_version(package_json: &str, package: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(package_json).expect("package.json is JSON");
    v["dependencies"][package]
        .as_str()
        .unwrap_or_else(|| panic!("package.json does not pin {package}"))
        .to_string()
}
