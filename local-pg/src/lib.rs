//! A PostgreSQL server owned by one process, run from the installed server binaries, and shared
//! with any other process that wants the same data folder.
//!
//! The titanbay server (`cargo run` with no `DATABASE_URL`) and its test harness both use it.
//! The server listens only on a Unix socket in a 0700 folder (so `trust` authentication admits
//! nobody but the owner's OS account), keeps its data in a folder that is initialised once and
//! reused, and stops when its owner stops — also when the owner is killed, because a small shell
//! wrapper holds a pipe from the owner and stops PostgreSQL when that pipe closes. No `unsafe`,
//! no `pre_exec`.
//!
//! **One owner per folder.** The process that starts PostgreSQL holds an `flock` on
//! `<base>/owner.lock` until that PostgreSQL has stopped; the kernel releases it when the owner
//! dies, even by `kill -9`. A second process on the same folder (a `seed` or `migrate` next to a
//! running server, a second server, a test) finds the lock taken and **attaches**: it waits until
//! the owner's PostgreSQL is ready, connects to its socket, and never stops it. Only a process
//! holding the lock stops a PostgreSQL it finds running on the folder — one whose owner is gone.
//!
//! PostgreSQL refuses to run as root, so when we are root the children run as the `postgres`
//! system user (or `nobody`), and the folder must be reachable by that user.

mod owner;

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

use crate::owner::{Claim, OwnerLock};

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
    /// Folder for `data/`, `sock/`, `postgres.log` and `owner.lock` (who runs it).
    pub base_dir: PathBuf,
    /// Folder with `initdb` and `postgres`; `None` finds the newest installed.
    pub bin_dir: Option<PathBuf>,
    /// A throwaway cluster for tests: no fsync (its data does not survive a machine crash).
    pub ephemeral: bool,
    /// Delete the folder when PostgreSQL stops (when we stop it or exit). Only an owner does;
    /// a process using another's PostgreSQL never deletes anything.
    pub remove_on_exit: bool,
    /// Settings (`name`, `value`) given to `postgres -c` after the defaults, so they win:
    /// for a lasting cluster the defaults are [`recommended_settings`], sized to the machine.
    pub settings: Vec<(String, String)>,
}

/// The design guide's PostgreSQL settings sized to this machine's memory: `shared_buffers` a
/// quarter of it (at least 128 MB, at most 8 GB, past which PostgreSQL gains little over the
/// OS cache), `effective_cache_size` three quarters, `work_mem` 64 MB, `random_page_cost` 1.1
/// (SSD storage). A lasting server-owned cluster runs with these unless overridden.
pub fn recommended_settings() -> Vec<(String, String)> {
    recommended_for(total_memory_bytes().unwrap_or(4 << 30))
}

/// [`recommended_settings`] for a machine with `memory` bytes.
pub fn recommended_for(memory: u64) -> Vec<(String, String)> {
    let mib = memory / (1 << 20);
    let shared = (mib / 4).clamp(128, 8 * 1024);
    let cache = (mib * 3 / 4).max(shared);
    vec![
        ("shared_buffers".to_owned(), format!("{shared}MB")),
        ("effective_cache_size".to_owned(), format!("{cache}MB")),
        ("work_mem".to_owned(), "64MB".to_owned()),
        ("random_page_cost".to_owned(), "1.1".to_owned()),
    ]
}

/// `MemTotal` of `/proc/meminfo`, or the cgroup's memory limit when lower (a container).
fn total_memory_bytes() -> Option<u64> {
    let meminfo = fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    let total = kib * 1024;
    let limit = fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok());
    Some(limit.map_or(total, |l| l.min(total)))
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

/// How long [`LocalPostgres::start`] waits for PostgreSQL to become ready, its own or the one
/// another process is starting on the same folder.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How long dropping an owner waits for its PostgreSQL to stop before letting the folder go.
const DROP_STOP_WAIT: Duration = Duration::from_secs(10);

/// A running PostgreSQL: one this process owns (started, and stops), or one another process
/// owns on the same folder, which this one uses and leaves running.
#[derive(Debug)]
pub struct LocalPostgres {
    base_dir: PathBuf,
    data_dir: PathBuf,
    socket_dir: PathBuf,
    port: u16,
    log_path: PathBuf,
    major: u32,
    /// The postmaster's pid.
    postmaster: Option<i32>,
    role: Role,
}

#[derive(Debug)]
enum Role {
    /// We started it and stop it.
    Owner {
        wrapper: Child,
        /// Closing this pipe tells the wrapper to stop PostgreSQL.
        stop_pipe: Option<ChildStdin>,
        /// Held until PostgreSQL has stopped; `None` once it has.
        lock: Option<OwnerLock>,
    },
    /// Another process (this pid, when it said) owns it; we only connect.
    Guest { owner: Option<i32> },
}

/// A PostgreSQL found ready on a folder owned by another process.
struct Running {
    postmaster: i32,
    socket_dir: PathBuf,
    port: u16,
}

impl LocalPostgres {
    /// Starts PostgreSQL on `options.base_dir` (initialising the folder the first time) and
    /// waits until it accepts connections — or, when another live process already owns that
    /// folder, waits until the owner's PostgreSQL is ready and uses it ([`is_owner`] is then
    /// false, and [`stop`] and drop leave it running). Each wait is bounded by
    /// [`START_TIMEOUT`]. Blocking; call it from a blocking context.
    ///
    /// [`is_owner`]: LocalPostgres::is_owner
    /// [`stop`]: LocalPostgres::stop
    pub fn start(options: &LocalPgOptions) -> Result<LocalPostgres, LocalPgError> {
        LocalPostgres::start_with_timeout(options, START_TIMEOUT)
    }

    /// As [`LocalPostgres::start`], with each wait bounded by `timeout`.
    pub fn start_with_timeout(
        options: &LocalPgOptions,
        timeout: Duration,
    ) -> Result<LocalPostgres, LocalPgError> {
        let run_as = unprivileged_account()?;
        let base_dir = absolute(&options.base_dir)?;
        make_private_dir(&base_dir, run_as.as_ref())?;
        if let Some(user) = &run_as {
            check_reachable(&base_dir, user)?;
        }
        let deadline = Instant::now() + timeout;
        let mut told = false;
        loop {
            match owner::claim(&base_dir)? {
                Claim::Owner(lock) => {
                    return LocalPostgres::start_owned(
                        options,
                        base_dir,
                        run_as.as_ref(),
                        lock,
                        timeout,
                    );
                }
                Claim::Taken => {
                    let record = owner::read_record(&base_dir);
                    if let Some(running) = ready_instance(&base_dir, record) {
                        return Ok(LocalPostgres::guest(base_dir, record.owner, running));
                    }
                    if Instant::now() >= deadline {
                        return Err(not_shareable(&base_dir, record.owner, timeout));
                    }
                    if !told {
                        told = true;
                        tracing::info!(
                            owner = record.owner,
                            data = %base_dir.display(),
                            "waiting for the PostgreSQL that {} is starting (or stopping)",
                            describe_owner(record.owner)
                        );
                    }
                    // The owner may also have exited meanwhile: then the next claim succeeds.
                    thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }

    /// With the folder's lock held: recovers what a dead owner left, initialises the first
    /// time, starts PostgreSQL and waits until it is ready.
    fn start_owned(
        options: &LocalPgOptions,
        base_dir: PathBuf,
        run_as: Option<&RunAs>,
        mut lock: OwnerLock,
        timeout: Duration,
    ) -> Result<LocalPostgres, LocalPgError> {
        let previous_owner = owner::read_record(&base_dir).owner;
        lock.record(None)?;
        let bins = find_binaries(options.bin_dir.as_deref())?;
        let data_dir = base_dir.join("data");
        let socket_dir = socket_dir_for(&base_dir);
        let log_path = base_dir.join("postgres.log");

        make_private_dir(&socket_dir, run_as)?;
        let log = open_log(&log_path, run_as)?;

        remove_staging_dirs(&data_dir);
        if data_dir.join("PG_VERSION").is_file() {
            check_data_version(&data_dir, bins.major)?;
            recover_after_crash(&data_dir, previous_owner)?;
        } else {
            // The first start takes a few seconds (initdb); say so before the wait.
            if !options.ephemeral {
                tracing::info!(
                    data = %data_dir.display(),
                    version = bins.major,
                    "initialising a new PostgreSQL cluster (first start only; a few seconds)"
                );
            }
            init_cluster(&bins, &data_dir, &log, run_as, options.ephemeral)?;
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
        let sized = if options.ephemeral {
            Vec::new()
        } else {
            recommended_settings()
        };
        for (name, value) in sized.iter().chain(&options.settings) {
            command.arg("-c").arg(format!("{name}={value}"));
        }
        if !options.ephemeral {
            tracing::info!(
                settings = %sized.iter().chain(&options.settings)
                    .map(|(n, v)| format!("{n}={v}"))
                    .collect::<Vec<_>>()
                    .join(" "),
                "PostgreSQL settings (LOCAL_PG_SETTINGS overrides them)"
            );
        }
        if options.remove_on_exit {
            command.env("TITANBAY_PG_REMOVE_1", &base_dir);
            if !socket_dir.starts_with(&base_dir) {
                command.env("TITANBAY_PG_REMOVE_2", &socket_dir);
            }
        }
        prepare_child(&mut command, run_as);
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
            port: SOCKET_PORT,
            log_path,
            major: bins.major,
            postmaster: None,
            role: Role::Owner {
                wrapper,
                stop_pipe,
                lock: Some(lock),
            },
        };
        let postmaster = pg.wait_until_ready(timeout)?;
        pg.postmaster = Some(postmaster);
        if let Role::Owner {
            lock: Some(lock), ..
        } = &mut pg.role
        {
            lock.record(Some(postmaster))?;
        }
        Ok(pg)
    }

    /// A handle on another process's PostgreSQL.
    fn guest(base_dir: PathBuf, owner: Option<i32>, running: Running) -> LocalPostgres {
        let data_dir = base_dir.join("data");
        let major = first_line(&data_dir.join("PG_VERSION"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        tracing::info!(
            owner,
            postmaster = running.postmaster,
            "using the PostgreSQL already run by {}",
            describe_owner(owner)
        );
        LocalPostgres {
            log_path: base_dir.join("postgres.log"),
            base_dir,
            data_dir,
            socket_dir: running.socket_dir,
            port: running.port,
            major,
            postmaster: Some(running.postmaster),
            role: Role::Guest { owner },
        }
    }

    /// Polls `postmaster.pid` until our postmaster (the wrapper's child) reports `ready`;
    /// returns its pid.
    fn wait_until_ready(&mut self, timeout: Duration) -> Result<i32, LocalPgError> {
        let deadline = Instant::now() + timeout;
        let pid_file = self.data_dir.join("postmaster.pid");
        let Role::Owner { wrapper, .. } = &mut self.role else {
            return Err(LocalPgError::Failed(
                "only an owner starts PostgreSQL".to_owned(),
            ));
        };
        let wrapper_pid = i32::try_from(wrapper.id()).unwrap_or(-1);
        loop {
            if let Ok(text) = fs::read_to_string(&pid_file)
                && text.lines().nth(7).map(str::trim) == Some("ready")
                && let Some(pid) = text.lines().next().and_then(|l| l.trim().parse().ok())
                && is_child_of(pid, wrapper_pid)
            {
                return Ok(pid);
            }
            if let Ok(Some(status)) = wrapper.try_wait() {
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
            "postgres://{SUPERUSER}@localhost:{}/{database}?host={}",
            self.port,
            percent_encode_path(&self.socket_dir.to_string_lossy())
        )
    }

    /// The folder holding data, socket and log.
    pub fn base_dir(&self) -> &Path {
        &self.base_dir
    }

    /// The PostgreSQL data folder (`<base>/data`).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
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

    /// Whether this process owns the PostgreSQL (started it and stops it). False when it uses
    /// one another process owns on the same folder.
    pub fn is_owner(&self) -> bool {
        matches!(self.role, Role::Owner { .. })
    }

    /// The pid of the process that owns the PostgreSQL: ours when [`LocalPostgres::is_owner`];
    /// `None` when the owner did not record it.
    pub fn owner_pid(&self) -> Option<u32> {
        match &self.role {
            Role::Owner { .. } => Some(std::process::id()),
            Role::Guest { owner } => owner.and_then(|pid| u32::try_from(pid).ok()),
        }
    }

    /// The pid of the PostgreSQL server process (the postmaster).
    pub fn postmaster_pid(&self) -> Option<u32> {
        self.postmaster.and_then(|pid| u32::try_from(pid).ok())
    }

    /// Whether the server process is still running.
    pub fn is_running(&mut self) -> bool {
        match &mut self.role {
            Role::Owner { wrapper, .. } => matches!(wrapper.try_wait(), Ok(None)),
            Role::Guest { .. } => self
                .postmaster
                .is_some_and(|pid| is_postmaster_of(pid, &self.data_dir)),
        }
    }

    /// Stops PostgreSQL (fast shutdown: open sessions are ended) and waits up to `timeout`;
    /// then the folder is free for the next owner. A guest leaves the owner's PostgreSQL
    /// running: for it this does nothing.
    pub fn stop(&mut self, timeout: Duration) -> Result<(), LocalPgError> {
        let Role::Owner {
            wrapper,
            stop_pipe,
            lock,
        } = &mut self.role
        else {
            return Ok(());
        };
        stop_pipe.take();
        let deadline = Instant::now() + timeout;
        loop {
            match wrapper.try_wait() {
                Ok(Some(_)) => {
                    lock.take();
                    return Ok(());
                }
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
        // A guest leaves the owner's PostgreSQL alone.
        let Role::Owner {
            wrapper,
            stop_pipe,
            lock,
        } = &mut self.role
        else {
            return;
        };
        // Closing the pipe is enough: the wrapper stops PostgreSQL on its own. Keep the lock
        // until it is down (briefly), so the next owner finds the folder at rest.
        stop_pipe.take();
        if lock.is_some() {
            let deadline = Instant::now() + DROP_STOP_WAIT;
            while matches!(wrapper.try_wait(), Ok(None)) && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

/// "process N", or a stand-in when the owner did not say.
fn describe_owner(owner: Option<i32>) -> String {
    match owner {
        Some(pid) => format!("process {pid}"),
        None => "another process".to_owned(),
    }
}

/// The PostgreSQL the live owner of `base_dir` has made ready, if it has: the postmaster it
/// recorded is the one in `postmaster.pid`, alive on this data folder and `ready`.
fn ready_instance(base_dir: &Path, record: owner::OwnerRecord) -> Option<Running> {
    let data_dir = base_dir.join("data");
    let postmaster = record.postmaster?;
    let text = fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    if lines.first()?.parse::<i32>().ok()? != postmaster || lines.get(7) != Some(&"ready") {
        return None;
    }
    if !is_postmaster_of(postmaster, &data_dir) {
        return None;
    }
    // Line 4 is the port, line 5 the first socket folder.
    let port = lines.get(3)?.parse().ok()?;
    let socket_dir = PathBuf::from(lines.get(4)?);
    socket_dir.is_absolute().then_some(Running {
        postmaster,
        socket_dir,
        port,
    })
}

/// The error when another process owns `base_dir` but its PostgreSQL is not ready in time.
fn not_shareable(base_dir: &Path, owner: Option<i32>, waited: Duration) -> LocalPgError {
    let data_dir = base_dir.join("data");
    let state = if !data_dir.join("PG_VERSION").is_file() {
        "is initialising it".to_owned()
    } else {
        match fs::read_to_string(data_dir.join("postmaster.pid"))
            .ok()
            .and_then(|t| t.lines().nth(7).map(|s| s.trim().to_owned()))
        {
            Some(status) if !status.is_empty() => format!("has it in state `{status}`"),
            _ => "has not started it yet".to_owned(),
        }
    };
    LocalPgError::Failed(format!(
        "the PostgreSQL in {} belongs to {}, which {state}; it was not ready to be shared \
         within {waited:?}. Try again once that process is serving, or stop it; this process \
         never stops a PostgreSQL whose owner is alive",
        base_dir.display(),
        describe_owner(owner),
    ))
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

/// Runs `initdb` into a staging folder next to `data_dir` and renames it into place, so that a
/// `data_dir` with `PG_VERSION` is always complete (an owner killed during `initdb` leaves only
/// a staging folder, which the next owner removes).
fn init_cluster(
    bins: &Binaries,
    data_dir: &Path,
    log: &File,
    run_as: Option<&RunAs>,
    ephemeral: bool,
) -> Result<(), LocalPgError> {
    let staging = staging_dir(data_dir);
    let mut command = Command::new(bins.dir.join("initdb"));
    command.arg("-D").arg(&staging).args([
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
    // An empty `data` folder may be in the way; anything else there is not ours to delete.
    if data_dir.exists() && fs::remove_dir(data_dir).is_err() {
        let _ = fs::remove_dir_all(&staging);
        return Err(LocalPgError::Failed(format!(
            "{} exists but is not a PostgreSQL data folder (it has no PG_VERSION); move it \
             away, or set LOCAL_PG_DIR to another folder",
            data_dir.display()
        )));
    }
    fs::rename(&staging, data_dir).map_err(|e| {
        failed(
            format!("moving the new cluster to {}", data_dir.display()),
            e,
        )
    })
}

/// `<base>/data.init-<our pid>`.
fn staging_dir(data_dir: &Path) -> PathBuf {
    data_dir.with_file_name(format!("data.init-{}", std::process::id()))
}

/// Removes every `data.init-*` folder next to `data_dir`: the owner lock is held, so they are
/// leftovers of owners that died during `initdb`.
fn remove_staging_dirs(data_dir: &Path) {
    let Some(parent) = data_dir.parent() else {
        return;
    };
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with("data.init-")
        {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
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

/// Handles a `postmaster.pid` left by an owner that died. Only the holder of the folder's owner
/// lock calls this, so whatever runs on `data_dir` has no live owner: a postmaster still running
/// is stopped; the children of a postmaster that was killed are waited for (they exit on their
/// own, and a new postmaster must not start while they still use the old shared memory); then
/// the stale file is removed (its pid may have been reused by an unrelated process, which would
/// make PostgreSQL refuse to start). PostgreSQL runs crash recovery itself.
fn recover_after_crash(data_dir: &Path, previous_owner: Option<i32>) -> Result<(), LocalPgError> {
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
            previous_owner,
            "stopping a PostgreSQL whose owner ({}) is gone",
            describe_owner(previous_owner)
        );
        let _ = kill(Pid::from_raw(pid), Signal::SIGINT);
        wait_for(Duration::from_secs(30), || !process_alive(pid)).map_err(|()| {
            LocalPgError::Failed(format!(
                "a PostgreSQL (pid {pid}) whose owner is gone still uses {} and did not stop",
                data_dir.display()
            ))
        })?;
    }
    wait_for(Duration::from_secs(30), || {
        processes_in(data_dir).is_empty()
    })
    .map_err(|()| {
        LocalPgError::Failed(format!(
            "processes {:?} of a PostgreSQL that is gone still use {}",
            processes_in(data_dir),
            data_dir.display()
        ))
    })?;
    match fs::remove_file(&pid_file) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(failed("removing a stale postmaster.pid", e)),
    }
}

/// Polls `done` every 10 ms until it holds, or gives up after `timeout`.
fn wait_for(timeout: Duration, mut done: impl FnMut() -> bool) -> Result<(), ()> {
    let deadline = Instant::now() + timeout;
    while !done() {
        if Instant::now() > deadline {
            return Err(());
        }
        thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// Live processes other than ours whose working directory is `data_dir` (a postmaster and its
/// children all run there).
fn processes_in(data_dir: &Path) -> Vec<i32> {
    let Ok(data) = fs::canonicalize(data_dir) else {
        return Vec::new();
    };
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let me = i32::try_from(std::process::id()).unwrap_or(-1);
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| {
            pid != me
                && fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd == data)
                && process_alive(pid)
        })
        .collect()
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

/// Whether `pid` is a child of `parent` (where `/proc` cannot tell, assumed so).
fn is_child_of(pid: i32, parent: i32) -> bool {
    if !Path::new("/proc/self/stat").exists() {
        return true;
    }
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            // The parent pid is the second field after the parenthesised command name.
            let (_, rest) = stat.rsplit_once(')')?;
            rest.split_whitespace().nth(1)?.parse::<i32>().ok()
        })
        .is_some_and(|ppid| ppid == parent)
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
/// process is gone (a killed test run), stopping what still runs there. A folder whose owner
/// lock is held is left alone.
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
            && entry.path().is_dir()
            && let Ok(Claim::Owner(_lock)) = owner::claim(&entry.path())
        {
            let _ = recover_after_crash(&entry.path().join("data"), Some(owner));
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
#[allow(clippy::unwrap_used)]
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
