//! A real PgBouncer in transaction mode in front of the test cluster, for the runs with
//! `TITANBAY_TEST_POOLER=pgbouncer` (CI runs the contract, race, pooler and idempotency tests
//! once that way). The applications of those runs connect through it with
//! `DB_POOLER=transaction`; the tests' own SQL stays on a direct connection.
//!
//! One PgBouncer per test binary, from Debian's `pgbouncer` package (`PGBOUNCER_BIN`
//! overrides the path): a small server pool (5 connections per database), listening only on a
//! Unix socket in a private folder. A wrapper shell holding a pipe from this process stops it
//! when the test binary exits, however it exits.

use std::{
    fs,
    os::unix::{fs::PermissionsExt, process::CommandExt},
    path::PathBuf,
    process::{Child, ChildStdin, Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use nix::unistd::{Uid, User};
use sea_orm::sqlx::postgres::PgConnectOptions;

/// Server connections PgBouncer opens per database (its `default_pool_size`).
pub const SERVER_POOL_SIZE: usize = 5;

/// The port in PgBouncer's socket name (`.s.PGSQL.6432`); no TCP is opened.
const PORT: u16 = 6432;

/// A running PgBouncer.
pub struct Bouncer {
    dir: PathBuf,
    _child: Child,
    _stdin: ChildStdin,
}

static BOUNCER: OnceLock<Result<Bouncer, String>> = OnceLock::new();

/// Whether this run sends the applications through PgBouncer.
pub fn requested() -> bool {
    std::env::var("TITANBAY_TEST_POOLER").is_ok_and(|v| v == "pgbouncer")
}

/// The PgBouncer of this test binary, started on first use in front of `admin_url`'s server.
pub fn bouncer(admin_url: &str) -> &'static Bouncer {
    match BOUNCER.get_or_init(|| start(admin_url)) {
        Ok(b) => b,
        Err(e) => panic!("{e}"),
    }
}

const WRAPPER: &str = r#"
"$@" </dev/null &
pid=$!
cat >/dev/null
kill -INT "$pid" 2>/dev/null
wait "$pid"
"#;

fn start(admin_url: &str) -> Result<Bouncer, String> {
    let bin = std::env::var_os("PGBOUNCER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/sbin/pgbouncer"));
    if !bin.exists() {
        return Err(format!(
            "TITANBAY_TEST_POOLER=pgbouncer, but {} is not installed: `apt-get install pgbouncer` \
             (or set PGBOUNCER_BIN)",
            bin.display()
        ));
    }
    let target: PgConnectOptions = admin_url
        .parse()
        .map_err(|e| format!("test cluster URL: {e}"))?;
    let host = match target.get_socket() {
        Some(dir) => dir.to_string_lossy().into_owned(),
        None => target.get_host().to_owned(),
    };
    let user = target.get_username().to_owned();
    let dir = std::env::temp_dir().join(format!("titanbay-pgbouncer-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).map_err(|e| e.to_string())?;
    fs::write(dir.join("users.txt"), format!("\"{user}\" \"\"\n")).map_err(|e| e.to_string())?;
    let ini = format!(
        "[databases]\n\
         * = host={host} port={port}\n\
         [pgbouncer]\n\
         listen_addr =\n\
         listen_port = {PORT}\n\
         unix_socket_dir = {dir}\n\
         auth_type = trust\n\
         auth_file = {dir}/users.txt\n\
         pool_mode = transaction\n\
         default_pool_size = {SERVER_POOL_SIZE}\n\
         min_pool_size = 0\n\
         reserve_pool_size = 0\n\
         max_client_conn = 2000\n\
         ignore_startup_parameters = extra_float_digits, options\n\
         admin_users = {user}\n\
         logfile = {dir}/pgbouncer.log\n\
         pidfile = {dir}/pgbouncer.pid\n",
        port = target.get_port(),
        dir = dir.display(),
    );
    fs::write(dir.join("pgbouncer.ini"), ini).map_err(|e| e.to_string())?;
    let mut command = Command::new("/bin/sh");
    command
        .arg("-c")
        .arg(WRAPPER)
        .arg("titanbay-pgbouncer")
        .arg(&bin)
        .arg(dir.join("pgbouncer.ini"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if Uid::effective().is_root() {
        // PgBouncer refuses to run as root.
        let account = User::from_name("postgres")
            .ok()
            .flatten()
            .or_else(|| User::from_name("nobody").ok().flatten())
            .ok_or("no `postgres` or `nobody` account to run PgBouncer as")?;
        for path in ["", "users.txt", "pgbouncer.ini"] {
            std::os::unix::fs::chown(
                dir.join(path),
                Some(account.uid.as_raw()),
                Some(account.gid.as_raw()),
            )
            .map_err(|e| e.to_string())?;
        }
        command.uid(account.uid.as_raw()).gid(account.gid.as_raw());
    }
    let mut child = command
        .spawn()
        .map_err(|e| format!("starting {}: {e}", bin.display()))?;
    let stdin = child.stdin.take().ok_or("no pipe to PgBouncer's wrapper")?;
    let socket = dir.join(format!(".s.PGSQL.{PORT}"));
    let started = Instant::now();
    while !socket.exists() {
        if started.elapsed() > Duration::from_secs(20) || child.try_wait().ok().flatten().is_some()
        {
            let log = fs::read_to_string(dir.join("pgbouncer.log")).unwrap_or_default();
            return Err(format!("PgBouncer did not start:\n{log}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(Bouncer {
        dir,
        _child: child,
        _stdin: stdin,
    })
}

impl Bouncer {
    /// A URL of `database` through PgBouncer.
    pub fn url(&self, user: &str, database: &str) -> String {
        let mut encoded = String::new();
        for b in self.dir.to_string_lossy().bytes() {
            if b.is_ascii_alphanumeric() || b"/-_.".contains(&b) {
                encoded.push(b as char);
            } else {
                encoded.push_str(&format!("%{b:02X}"));
            }
        }
        format!("postgres://{user}@localhost:{PORT}/{database}?host={encoded}")
    }

    /// PgBouncer's log so far (for failure messages).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("pgbouncer.log")).unwrap_or_default()
    }
}
