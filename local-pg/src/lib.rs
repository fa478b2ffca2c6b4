//! A PostgreSQL server owned by this process, run from the installed server binaries.
//!
//! `cargo run` with no `DATABASE_URL` and the test harness both use it. The server listens only
//! on a Unix socket in a 0700 folder (so `trust` authentication admits nobody but the owner),
//! keeps its data in a folder that is initialised once and reused, and stops when its owner
//! stops — also when the owner is killed, because a small shell wrapper holds a pipe from the
//! owner and stops PostgreSQL when that pipe closes. No `unsafe`, no `pre_exec`.
//!
//! PostgreSQL refuses to run as root, so when we are root the children run as the `postgres`
//! system user (or `nobody`), and the folder must be reachable by that user.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, BufRead, BufReader, Read, Seek, SeekFrom},
    os::unix::{
        fs::{MetadataExt, PermissionsExt},
        process::CommandExt,
    },
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use nix::{
    sys::signal::{Signal, kill},
    unistd::{Pid, Uid, User},
};

/// The oldest PostgreSQL major version we run.
pub const MIN_MAJOR: u32 = 13;

/// The port number PostgreSQL puts in its socket name (`.s.PGSQL.5432`); no TCP is opened.
const SOCKET_PORT: u16 = 5432;

/// The superuser name `initdb` creates.
pub const SUPERUSER: &str = "postgres";

/// Longest socket path a Unix socket address can hold, with a margin.
const MAX_SOCKET_PATH: usize = 100;

/// Runs PostgreSQL in the background and stops it when stdin (a pipe from us) closes, however
/// we end. Positional arguments are the postgres command line.
const WRAPPER_SCRIPT: &str = r#"
exec 3<&0
"$@" 3<&- </dev/null &
pg=$!
(
  read -r _ <&3 || :
  kill -INT "$pg" 2>/dev/null
  while kill -0 "$pg" 2>/dev/null; do sleep 0.05; done
  if [ -n "${TITANBAY_PG_REMOVE_1:-}" ]; then rm -rf -- "$TITANBAY_PG_REMOVE_1"; fi
  if [ -n "${TITANBAY_PG_REMOVE_2:-}" ]; then rm -rf -- "$TITANBAY_PG_REMOVE_2"; fi
) </dev/null &
exec 3<&-
wait "$pg"
"#;

/// How to start a local PostgreSQL.
#[derive(Debug, Clone)]
pub struct LocalPgOptions {
    /// Folder for `data/`, `sock/` and `postgres.log`.
    pub base_dir: PathBuf,
    /// Folder with `initdb` and `postgres`; `None` finds the newest installed.
    pub bin_dir: Option<PathBuf>,
    /// A throwaway cluster for tests: no fsync (its data does not survive a machine crash).
    pub ephemeral: bool,
    /// Delete the folder when PostgreSQL stops (when we stop it or exit).
    pub remove_on_exit: bool,
}

/// Why a local PostgreSQL could not be started.
#[derive(Debug, thiserror::Error)]
pub enum LocalPgError {
    /// No usable server binaries were found.
    #[error(
        "no PostgreSQL server binaries (initdb, postgres; version {MIN_MAJOR} or newer) were found; \
         looked in: {searched}. Ways out: install PostgreSQL (e.g. `apt install postgresql`), \
         point PG_BIN_DIR at its bin folder, set DATABASE_URL to an existing server, \
         or run `docker compose up`"
    )]
    NoBinaries {
        /// The places looked at.
        searched: String,
    },
    /// Anything else, with what was being done.
    #[error("local PostgreSQL: {0}")]
    Failed(String),
}

fn failed(context: impl std::fmt::Display, err: impl std::fmt::Display) -> LocalPgError {
    LocalPgError::Failed(format!("{context}: {err}"))
}

/// PostgreSQL server binaries of one installation.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// The bin folder.
    pub dir: PathBuf,
    /// Major version, e.g. 15.
    pub major: u32,
}

/// Finds the newest PostgreSQL ≥ 13 installation, or uses `override_dir`.
pub fn find_binaries(override_dir: Option<&Path>) -> Result<Binaries, LocalPgError> {
    let candidates: Vec<PathBuf> = match override_dir {
        Some(dir) => vec![dir.to_path_buf()],
        None => candidate_bin_dirs(),
    };
    let best = candidates
        .iter()
        .filter_map(|dir| {
            let major = server_major_version(dir)?;
            (major >= MIN_MAJOR).then(|| Binaries {
                dir: dir.clone(),
                major,
            })
        })
        .max_by_key(|b| b.major);
    best.ok_or_else(|| LocalPgError::NoBinaries {
        searched: if candidates.is_empty() {
            "/usr/lib/postgresql/*/bin, /usr/pgsql-*/bin, /usr/local/pgsql/bin, \
             `pg_config --bindir`, PATH"
                .to_owned()
        } else {
            candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        },
    })
}

/// Every folder that might hold server binaries, in no particular order.
fn candidate_bin_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for (parent, prefix, suffix) in [
        ("/usr/lib/postgresql", "", "bin"),
        ("/usr", "pgsql-", "bin"),
        ("/opt/homebrew/opt", "postgresql@", "bin"),
        ("/usr/local/opt", "postgresql@", "bin"),
    ] {
        if let Ok(entries) = fs::read_dir(parent) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with(prefix) && (prefix.is_empty() || name.len() > prefix.len()) {
                    dirs.push(entry.path().join(suffix));
                }
            }
        }
    }
    dirs.push(PathBuf::from("/usr/local/pgsql/bin"));
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if !dir.is_empty() {
            dirs.push(PathBuf::from(dir));
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    dirs.retain(|d| d.join("postgres").is_file() && d.join("initdb").is_file());
    dirs.sort();
    dirs.dedup();
    dirs
}

/// `postgres --version` → major version.
fn server_major_version(dir: &Path) -> Option<u32> {
    if !dir.join("initdb").is_file() {
        return None;
    }
    let out = Command::new(dir.join("postgres"))
        .arg("--version")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
    let version = text.split(") ").nth(1)?.split_whitespace().next()?;
    version.split('.').next()?.parse().ok()
}

/// The OS account the database processes run as.
#[derive(Debug, Clone)]
struct RunAs {
    uid: u32,
    gid: u32,
    name: String,
}

/// When we are root, the unprivileged account to run PostgreSQL as.
fn unprivileged_account() -> Result<Option<RunAs>, LocalPgError> {
    if !Uid::effective().is_root() {
        return Ok(None);
    }
    for name in ["postgres", "nobody"] {
        if let Ok(Some(user)) = User::from_name(name) {
            return Ok(Some(RunAs {
                uid: user.uid.as_raw(),
                gid: user.gid.as_raw(),
                name: name.to_owned(),
            }));
        }
    }
    Err(LocalPgError::Failed(
        "running as root, and neither a `postgres` nor a `nobody` account exists to run \
         PostgreSQL as (it refuses to run as root)"
            .to_owned(),
    ))
}

/// The default folder for the server-owned instance of a checkout at `cwd`.
///
/// Not root: `<cwd>/.titanbay`. Root: `/var/lib/titanbay/<hash of cwd>`, because the
/// unprivileged database account cannot enter a checkout under `/root`.
pub fn default_base_dir(cwd: &Path) -> PathBuf {
    if Uid::effective().is_root() {
        PathBuf::from("/var/lib/titanbay").join(short_hash(&cwd.to_string_lossy()))
    } else {
        cwd.join(".titanbay")
    }
}

/// A short, stable, non-cryptographic hash (FNV-1a 64) as 12 hex digits.
fn short_hash(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{:012x}", h & 0xffff_ffff_ffff)
}

/// A running PostgreSQL owned by this process.
#[derive(Debug)]
pub struct LocalPostgres {
    base_dir: PathBuf,
    data_dir: PathBuf,
    socket_dir: PathBuf,
    log_path: PathBuf,
    major: u32,
    wrapper: Child,
    /// Closing this pipe tells the wrapper to stop PostgreSQL.
    stop_pipe: Option<ChildStdin>,
}

impl LocalPostgres {
    /// Initialises (first time) and starts PostgreSQL, waiting until it accepts connections.
    /// Blocking; call it from a blocking context.
    pub fn start(options: &LocalPgOptions) -> Result<LocalPostgres, LocalPgError> {
        let bins = find_binaries(options.bin_dir.as_deref())?;
        let run_as = unprivileged_account()?;
        let base_dir = absolute(&options.base_dir)?;
        let data_dir = base_dir.join("data");
        let socket_dir = socket_dir_for(&base_dir);
        let log_path = base_dir.join("postgres.log");

        make_private_dir(&base_dir, run_as.as_ref())?;
        make_private_dir(&socket_dir, run_as.as_ref())?;
        if let Some(user) = &run_as {
            check_reachable(&base_dir, user)?;
        }
        let log = open_log(&log_path, run_as.as_ref())?;

        if data_dir.join("PG_VERSION").is_file() {
            check_data_version(&data_dir, bins.major)?;
            recover_after_crash(&data_dir)?;
        } else {
            init_cluster(&bins, &data_dir, &log, run_as.as_ref(), options.ephemeral)?;
        }

        let mut command = Command::new("/bin/sh");
        command
            .arg("-c")
            .arg(WRAPPER_SCRIPT)
            .arg("titanbay-postgres")
            .arg(bins.dir.join("postgres"))
            .arg("-D")
            .arg(&data_dir)
            .arg("-k")
            .arg(&socket_dir)
            .arg("-p")
            .arg(SOCKET_PORT.to_string())
            .args(["-c", "listen_addresses="]);
        let settings: &[&str] = if options.ephemeral {
            &[
                "fsync=off",
                "synchronous_commit=off",
                "full_page_writes=off",
                "shared_buffers=32MB",
                "max_connections=200",
                "dynamic_shared_memory_type=mmap",
            ]
        } else {
            // Room for the pool (30), psql sessions and a 128-client pgbench next to it.
            &["max_connections=200"]
        };
        for setting in settings {
            command.arg("-c").arg(setting);
        }
        if options.remove_on_exit {
            command.env("TITANBAY_PG_REMOVE_1", &base_dir);
            if !socket_dir.starts_with(&base_dir) {
                command.env("TITANBAY_PG_REMOVE_2", &socket_dir);
            }
        }
        prepare_child(&mut command, run_as.as_ref());
        command
            .stdin(Stdio::piped())
            .stdout(clone_log(&log)?)
            .stderr(clone_log(&log)?)
            // Its own process group: a Ctrl-C in the terminal reaches only us, and we stop
            // PostgreSQL after the server has drained.
            .process_group(0);
        let mut wrapper = command
            .spawn()
            .map_err(|e| failed("starting postgres", e))?;
        let stop_pipe = wrapper.stdin.take();
        let mut pg = LocalPostgres {
            base_dir,
            data_dir,
            socket_dir,
            log_path,
            major: bins.major,
            wrapper,
            stop_pipe,
        };
        pg.wait_until_ready(Duration::from_secs(60))?;
        Ok(pg)
    }

    /// Polls `postmaster.pid` until PostgreSQL reports `ready`.
    fn wait_until_ready(&mut self, timeout: Duration) -> Result<(), LocalPgError> {
        let deadline = Instant::now() + timeout;
        let pid_file = self.data_dir.join("postmaster.pid");
        loop {
            if let Ok(text) = fs::read_to_string(&pid_file)
                && text.lines().nth(7).map(str::trim) == Some("ready")
            {
                return Ok(());
            }
            if let Ok(Some(status)) = self.wrapper.try_wait() {
                return Err(LocalPgError::Failed(format!(
                    "postgres exited during start-up ({status}); its log ({}) ends with:\n{}",
                    self.log_path.display(),
                    log_tail(&self.log_path, 20)
                )));
            }
            if Instant::now() > deadline {
                return Err(LocalPgError::Failed(format!(
                    "postgres did not become ready within {timeout:?}; its log ({}) ends with:\n{}",
                    self.log_path.display(),
                    log_tail(&self.log_path, 20)
                )));
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// A connection URL for `database` as the superuser, over the private socket.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://{SUPERUSER}@localhost:{SOCKET_PORT}/{database}?host={}",
            percent_encode_path(&self.socket_dir.to_string_lossy())
        )
    }

    /// The folder holding data, socket and log.
    pub fn base_dir(&self) -> &Path {
        &self.base_dir
    }

    /// The folder holding the Unix socket.
    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    /// The PostgreSQL log file.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The server's major version.
    pub fn major_version(&self) -> u32 {
        self.major
    }

    /// Whether the server process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.wrapper.try_wait(), Ok(None))
    }

    /// Stops PostgreSQL (fast shutdown: open sessions are ended) and waits up to `timeout`.
    pub fn stop(&mut self, timeout: Duration) -> Result<(), LocalPgError> {
        self.stop_pipe.take();
        let deadline = Instant::now() + timeout;
        loop {
            match self.wrapper.try_wait() {
                Ok(Some(_)) => return Ok(()),
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(5)),
                Ok(None) => {
                    return Err(LocalPgError::Failed(format!(
                        "postgres did not stop within {timeout:?}"
                    )));
                }
                Err(e) => return Err(failed("waiting for postgres to stop", e)),
            }
        }
    }
}

impl Drop for LocalPostgres {
    fn drop(&mut self) {
        // Closing the pipe is enough: the wrapper stops PostgreSQL on its own.
        self.stop_pipe.take();
    }
}

fn absolute(path: &Path) -> Result<PathBuf, LocalPgError> {
    std::path::absolute(path).map_err(|e| failed(format!("resolving {}", path.display()), e))
}

/// `base/sock`, or a short folder under the temp dir when that path is too long for a socket.
fn socket_dir_for(base_dir: &Path) -> PathBuf {
    let preferred = base_dir.join("sock");
    // The socket file is "<dir>/.s.PGSQL.5432".
    if preferred.as_os_str().len() + "/.s.PGSQL.5432".len() <= MAX_SOCKET_PATH {
        preferred
    } else {
        std::env::temp_dir().join(format!(
            "titanbay-sock-{}",
            short_hash(&base_dir.to_string_lossy())
        ))
    }
}

/// Creates `dir` (mode 0700) owned by the account PostgreSQL runs as.
fn make_private_dir(dir: &Path, run_as: Option<&RunAs>) -> Result<(), LocalPgError> {
    fs::create_dir_all(dir).map_err(|e| failed(format!("creating {}", dir.display()), e))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .map_err(|e| failed(format!("setting permissions of {}", dir.display()), e))?;
    if let Some(user) = run_as {
        std::os::unix::fs::chown(dir, Some(user.uid), Some(user.gid))
            .map_err(|e| failed(format!("handing {} to {}", dir.display(), user.name), e))?;
    }
    Ok(())
}

/// Every ancestor of `dir` must be enterable by the database account.
fn check_reachable(dir: &Path, user: &RunAs) -> Result<(), LocalPgError> {
    for ancestor in dir.ancestors().skip(1) {
        let Ok(meta) = fs::metadata(ancestor) else {
            continue;
        };
        let mode = meta.mode();
        let can_enter = mode & 0o001 != 0
            || (meta.uid() == user.uid && mode & 0o100 != 0)
            || (meta.gid() == user.gid && mode & 0o010 != 0);
        if !can_enter {
            return Err(LocalPgError::Failed(format!(
                "the `{}` account that runs PostgreSQL cannot enter {} (mode {:o}); set \
                 LOCAL_PG_DIR to a folder it can reach, such as /var/lib/titanbay or /tmp",
                user.name,
                ancestor.display(),
                mode & 0o777
            )));
        }
    }
    Ok(())
}

fn open_log(path: &Path, run_as: Option<&RunAs>) -> Result<File, LocalPgError> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| failed(format!("opening {}", path.display()), e))?;
    if let Some(user) = run_as {
        let _ = std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid));
    }
    Ok(file)
}

fn clone_log(log: &File) -> Result<File, LocalPgError> {
    log.try_clone()
        .map_err(|e| failed("duplicating the log file handle", e))
}

/// Clean environment and, when root, the unprivileged account.
fn prepare_child(command: &mut Command, run_as: Option<&RunAs>) {
    for var in [
        "PGDATA",
        "PGHOST",
        "PGPORT",
        "PGUSER",
        "PGDATABASE",
        "PGOPTIONS",
        "PGPASSWORD",
    ] {
        command.env_remove(var);
    }
    if let Some(user) = run_as {
        command.uid(user.uid).gid(user.gid);
    }
}

fn init_cluster(
    bins: &Binaries,
    data_dir: &Path,
    log: &File,
    run_as: Option<&RunAs>,
    ephemeral: bool,
) -> Result<(), LocalPgError> {
    let mut command = Command::new(bins.dir.join("initdb"));
    command.arg("-D").arg(data_dir).args([
        "-U",
        SUPERUSER,
        "--auth=trust",
        "-E",
        "UTF8",
        "--locale=C",
    ]);
    if ephemeral {
        command.arg("--no-sync");
    }
    prepare_child(&mut command, run_as);
    let status = command
        .stdin(Stdio::null())
        .stdout(clone_log(log)?)
        .stderr(clone_log(log)?)
        .status()
        .map_err(|e| failed("running initdb", e))?;
    if !status.success() {
        return Err(LocalPgError::Failed(format!(
            "initdb failed ({status}) for {}; see the log",
            data_dir.display()
        )));
    }
    Ok(())
}

fn check_data_version(data_dir: &Path, major: u32) -> Result<(), LocalPgError> {
    let text = fs::read_to_string(data_dir.join("PG_VERSION"))
        .map_err(|e| failed("reading PG_VERSION", e))?;
    let data_major: u32 = text.trim().parse().unwrap_or(0);
    if data_major != major {
        return Err(LocalPgError::Failed(format!(
            "{} holds data of PostgreSQL {data_major}, but the binaries found are version \
             {major}; remove the folder to start afresh, or set PG_BIN_DIR to PostgreSQL \
             {data_major}'s bin folder",
            data_dir.display()
        )));
    }
    Ok(())
}

/// Handles a `postmaster.pid` left by an owner that died: stops a postmaster still running on
/// this data folder, or removes a stale file. PostgreSQL runs crash recovery itself.
fn recover_after_crash(data_dir: &Path) -> Result<(), LocalPgError> {
    let pid_file = data_dir.join("postmaster.pid");
    let Ok(text) = fs::read_to_string(&pid_file) else {
        return Ok(());
    };
    let pid = text
        .lines()
        .next()
        .and_then(|l| l.trim().parse::<i32>().ok());
    if let Some(pid) = pid
        && is_postmaster_of(pid, data_dir)
    {
        tracing::warn!(
            pid,
            "stopping a PostgreSQL left running by an earlier owner"
        );
        let _ = kill(Pid::from_raw(pid), Signal::SIGINT);
        let deadline = Instant::now() + Duration::from_secs(30);
        while process_alive(pid) {
            if Instant::now() > deadline {
                return Err(LocalPgError::Failed(format!(
                    "a PostgreSQL (pid {pid}) left by an earlier run still uses {} and did not \
                     stop",
                    data_dir.display()
                )));
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
    match fs::remove_file(&pid_file) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(failed("removing a stale postmaster.pid", e)),
    }
}

/// A live (not zombie) process whose working directory is `data_dir`.
fn is_postmaster_of(pid: i32, data_dir: &Path) -> bool {
    if !process_alive(pid) {
        return false;
    }
    let cwd = fs::read_link(format!("/proc/{pid}/cwd")).ok();
    let data = fs::canonicalize(data_dir).ok();
    cwd.is_some() && cwd == data
}

/// Whether `pid` exists and is not a zombie.
pub fn process_alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state letter follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Removes leftovers of ephemeral clusters named `<prefix><pid>-…` in `parent` whose owning
/// process is gone (a killed test run).
pub fn sweep_stale_clusters(parent: &Path, prefix: &str) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(prefix) else {
            continue;
        };
        let owner = rest.split('-').next().and_then(|p| p.parse::<i32>().ok());
        if let Some(owner) = owner
            && !process_alive(owner)
        {
            let _ = recover_after_crash(&entry.path().join("data"));
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

fn log_tail(path: &Path, lines: usize) -> String {
    let Ok(mut file) = File::open(path) else {
        return String::from("(no log)");
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(16 * 1024)));
    let mut text = String::new();
    let _ = BufReader::new(file).read_to_string(&mut text);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Reads the first line of `path`, for diagnostics.
pub fn first_line(path: &Path) -> Option<String> {
    let file = File::open(path).ok()?;
    BufReader::new(file).lines().next()?.ok()
}

/// Percent-encodes a filesystem path for a URL query value.
fn percent_encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_of_a_folder_is_stable_and_short() {
        assert_eq!(short_hash("/root/work"), short_hash("/root/work"));
        assert_ne!(short_hash("/root/work"), short_hash("/root/work2"));
        assert_eq!(short_hash("/x").len(), 12);
    }

    #[test]
    fn socket_paths_stay_short() {
        let deep = PathBuf::from(format!("/{}", "d".repeat(150)));
        let dir = socket_dir_for(&deep);
        assert!(dir.as_os_str().len() + 14 <= MAX_SOCKET_PATH);
        assert_eq!(socket_dir_for(Path::new("/a")), PathBuf::from("/a/sock"));
    }

    #[test]
    fn paths_are_percent_encoded_in_urls() {
        assert_eq!(percent_encode_path("/tmp/a b%"), "/tmp/a%20b%25");
    }

    #[test]
    fn our_own_process_is_alive() {
        assert!(process_alive(std::process::id() as i32));
    }
}
