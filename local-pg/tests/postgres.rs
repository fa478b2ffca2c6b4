//! `local-pg` on real PostgreSQL from the installed binaries: start, reuse, stop, sharing a
//! folder between processes, crashes of the owner, socket paths, and the root case.
//!
//! The crash tests need an owner in another process: they run this test binary again with
//! `LOCAL_PG_TEST_CHILD_OWNER_DIR` set, which makes the ignored `child_owner` test own a
//! PostgreSQL there until its stdin closes or it is killed.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{
    fs::{self, File, OpenOptions},
    io::{BufRead, BufReader, Read, Write},
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    process::{Child, ChildStdout, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use local_pg::{LocalPgOptions, LocalPostgres, find_binaries, process_alive};
use nix::{
    fcntl::{Flock, FlockArg},
    sys::signal::{Signal, kill},
    unistd::{Pid, Uid, User},
};

const CHILD_OWNER_DIR: &str = "LOCAL_PG_TEST_CHILD_OWNER_DIR";

/// A folder for one test, removed at the end (declare it first, so it is dropped last).
struct TestDir(PathBuf);

impl TestDir {
    fn new(name: &str) -> TestDir {
        let tmp = std::env::temp_dir();
        local_pg::sweep_stale_clusters(&tmp, "local-pg-test-");
        let dir = tmp.join(format!("local-pg-test-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        TestDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn options(base_dir: &Path) -> LocalPgOptions {
    LocalPgOptions {
        base_dir: base_dir.to_path_buf(),
        bin_dir: std::env::var_os("PG_BIN_DIR").map(Into::into),
        ephemeral: true,
        remove_on_exit: false,
        settings: Vec::new(),
    }
}

fn start(base_dir: &Path) -> LocalPostgres {
    LocalPostgres::start(&options(base_dir)).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs SQL with the installed `psql`; its unaligned, tuples-only output.
fn psql(url: &str, sql: &str) -> Result<String, String> {
    let bins = find_binaries(std::env::var_os("PG_BIN_DIR").as_deref().map(Path::new))
        .map_err(|e| e.to_string())?;
    // Next to the server binaries, or in the version's own folder (the bin folder found may
    // hold only links to initdb and postgres), or on PATH.
    let psql = [
        bins.dir.join("psql"),
        PathBuf::from(format!("/usr/lib/postgresql/{}/bin/psql", bins.major)),
    ]
    .into_iter()
    .find(|p| p.is_file())
    .unwrap_or_else(|| PathBuf::from("psql"));
    let out = Command::new(psql)
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            sql,
        ])
        .env_remove("PGHOST")
        .env_remove("PGPORT")
        .env_remove("PGUSER")
        .env_remove("PGDATABASE")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn sql(url: &str, sql: &str) -> String {
    psql(url, sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        thread::sleep(Duration::from_millis(10));
    }
}

fn pid(p: u32) -> Pid {
    Pid::from_raw(i32::try_from(p).unwrap())
}

/// The log written since byte `from`.
fn log_since(pg: &LocalPostgres, from: u64) -> String {
    let text = fs::read(pg.log_path()).unwrap_or_default();
    String::from_utf8_lossy(&text[usize::try_from(from).unwrap().min(text.len())..]).into_owned()
}

/// An owner in another process: this test binary, running `child_owner`.
struct ChildOwner {
    child: Child,
    postmaster: u32,
    url: String,
}

impl ChildOwner {
    fn spawn(base_dir: &Path) -> ChildOwner {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "child_owner",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_OWNER_DIR, base_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout: ChildStdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        thread::spawn(move || {
            // libtest writes "test child_owner ... " before our line.
            let line = BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .find(|line| line.contains("OWNER "));
            let _ = tx.send(line);
        });
        let line = match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(Some(line)) => line,
            Ok(None) => panic!("the child owner ended before it was ready"),
            Err(e) => panic!("the child owner did not get ready: {e}"),
        };
        let mut words = line.split("OWNER ").nth(1).unwrap().split_whitespace();
        let postmaster = words.next().unwrap().parse().unwrap();
        let url = words.next().unwrap().to_owned();
        ChildOwner {
            child,
            postmaster,
            url,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn kill_9(&mut self) {
        kill(pid(self.child.id()), Signal::SIGKILL).unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for ChildOwner {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
#[ignore = "the owner process of the crash tests; they start it themselves"]
fn child_owner() {
    let Some(dir) = std::env::var_os(CHILD_OWNER_DIR) else {
        return;
    };
    let pg = start(Path::new(&dir));
    assert!(pg.is_owner());
    println!(
        "OWNER {} {}",
        pg.postmaster_pid().unwrap(),
        pg.url("postgres")
    );
    std::io::stdout().flush().unwrap();
    // Until the test closes our stdin (or kills us).
    let _ = std::io::stdin().read(&mut [0u8; 1]);
}

#[test]
fn it_starts_stops_and_reuses_an_initialised_folder() {
    let dir = TestDir::new("reuse");
    let mut pg = start(dir.path());
    assert!(pg.is_owner());
    assert_eq!(pg.owner_pid(), Some(std::process::id()));
    assert!(pg.major_version() >= local_pg::MIN_MAJOR);
    assert!(pg.is_running());
    let postmaster = pg.postmaster_pid().unwrap();
    assert!(process_alive(postmaster as i32));
    let url = pg.url("postgres");
    sql(
        &url,
        "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('still here')",
    );
    let socket = pg.socket_dir().join(".s.PGSQL.5432");
    assert!(socket.exists());
    let version_file = pg.data_dir().join("PG_VERSION");
    let initialised = fs::metadata(&version_file).unwrap().modified().unwrap();

    pg.stop(Duration::from_secs(15)).unwrap();
    assert!(!pg.is_running());
    assert!(!process_alive(postmaster as i32), "the postmaster is gone");
    assert!(!socket.exists(), "the socket is gone");
    assert!(psql(&url, "SELECT 1").is_err());
    drop(pg);

    // Again on the same folder: no second initdb, the data is there.
    let pg = start(dir.path());
    assert!(pg.is_owner(), "the stopped owner let the folder go");
    assert_eq!(
        fs::metadata(&version_file).unwrap().modified().unwrap(),
        initialised
    );
    assert_ne!(pg.postmaster_pid(), Some(postmaster));
    assert_eq!(sql(&pg.url("postgres"), "SELECT v FROM kept"), "still here");
    let postmaster = pg.postmaster_pid().unwrap();
    drop(pg);
    assert!(
        !process_alive(postmaster as i32),
        "dropping the owner stops it"
    );
}

#[test]
fn a_second_user_of_the_folder_uses_the_running_instance_and_leaves_it_running() {
    let dir = TestDir::new("guest");
    let owner = start(dir.path());
    let postmaster = owner.postmaster_pid().unwrap();
    sql(&owner.url("postgres"), "CREATE TABLE shared (v int)");

    let mut guest = start(dir.path());
    assert!(!guest.is_owner());
    assert_eq!(guest.owner_pid(), Some(std::process::id()));
    assert_eq!(guest.postmaster_pid(), Some(postmaster));
    assert_eq!(guest.url("postgres"), owner.url("postgres"));
    assert_eq!(guest.socket_dir(), owner.socket_dir());
    assert_eq!(guest.major_version(), owner.major_version());
    assert!(guest.is_running());
    sql(&guest.url("postgres"), "INSERT INTO shared VALUES (7)");

    // A guest's stop and drop leave the owner's PostgreSQL alone.
    guest.stop(Duration::from_secs(5)).unwrap();
    assert!(process_alive(postmaster as i32));
    drop(guest);
    thread::sleep(Duration::from_millis(200));
    assert!(process_alive(postmaster as i32));
    assert_eq!(sql(&owner.url("postgres"), "SELECT v FROM shared"), "7");

    drop(owner);
    assert!(!process_alive(postmaster as i32));
}

#[test]
fn a_live_owner_in_another_process_is_shared_and_a_killed_one_is_replaced() {
    let dir = TestDir::new("killed");
    let mut child = ChildOwner::spawn(dir.path());
    sql(
        &child.url,
        "CREATE TABLE t (v text); INSERT INTO t VALUES ('from the child')",
    );

    // While the child lives, we are its guest.
    let guest = start(dir.path());
    assert!(!guest.is_owner());
    assert_eq!(guest.owner_pid(), Some(child.pid()));
    assert_eq!(guest.postmaster_pid(), Some(child.postmaster));
    assert_eq!(
        sql(&guest.url("postgres"), "SELECT v FROM t"),
        "from the child"
    );
    drop(guest);
    thread::sleep(Duration::from_millis(200));
    assert!(process_alive(child.postmaster as i32), "a guest stopped it");

    // kill -9 the owner: the folder is free, and the next start owns it.
    child.kill_9();
    let pg = start(dir.path());
    assert!(pg.is_owner());
    assert_ne!(pg.postmaster_pid(), Some(child.postmaster));
    assert!(
        !process_alive(child.postmaster as i32),
        "the old postmaster is gone"
    );
    assert_eq!(
        sql(&pg.url("postgres"), "SELECT v FROM t"),
        "from the child"
    );
}

/// The parent pid of `pid`, from `/proc/<pid>/stat`.
fn parent_of(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The live children of `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&p| parent_of(p) == Some(pid) && process_alive(p as i32))
        .collect()
}

#[test]
fn a_postmaster_left_running_by_a_dead_owner_is_stopped_by_the_next_owner() {
    let dir = TestDir::new("orphan");
    let mut child = ChildOwner::spawn(dir.path());
    sql(
        &child.url,
        "CREATE TABLE t (v text); INSERT INTO t VALUES ('kept')",
    );
    // Kill the wrapper that would stop PostgreSQL (and its watcher), then the owner: the
    // postmaster runs on with no owner, as after a crash of the whole group but itself.
    let wrapper = parent_of(child.postmaster).unwrap();
    for watcher in children_of(wrapper) {
        if watcher != child.postmaster {
            kill(pid(watcher), Signal::SIGKILL).unwrap();
        }
    }
    kill(pid(wrapper), Signal::SIGKILL).unwrap();
    child.kill_9();
    thread::sleep(Duration::from_millis(300));
    assert!(
        process_alive(child.postmaster as i32),
        "the orphaned postmaster still runs"
    );

    let pg = start(dir.path());
    assert!(pg.is_owner(), "nobody owns the folder, so we do");
    assert!(
        !process_alive(child.postmaster as i32),
        "the leftover was stopped"
    );
    assert_ne!(pg.postmaster_pid(), Some(child.postmaster));
    assert_eq!(sql(&pg.url("postgres"), "SELECT v FROM t"), "kept");
}

#[test]
fn after_the_owner_and_its_postmaster_are_killed_postgres_recovers_the_data() {
    let dir = TestDir::new("crash");
    let mut child = ChildOwner::spawn(dir.path());
    sql(
        &child.url,
        "CREATE TABLE t (v text); INSERT INTO t VALUES ('committed'); CHECKPOINT; \
         INSERT INTO t VALUES ('after the checkpoint')",
    );
    // Let the WAL writer write the last commit (synchronous_commit is off here).
    thread::sleep(Duration::from_millis(600));
    let postmaster = child.postmaster;
    kill(pid(postmaster), Signal::SIGKILL).unwrap();
    child.kill_9();
    wait_until("the postmaster is gone", Duration::from_secs(10), || {
        !process_alive(postmaster as i32)
    });
    assert!(
        dir.path().join("data/postmaster.pid").exists(),
        "a killed postmaster leaves its pid file"
    );

    let log_from = fs::metadata(dir.path().join("postgres.log"))
        .map(|m| m.len())
        .unwrap_or(0);
    let pg = start(dir.path());
    assert!(pg.is_owner());
    let log = log_since(&pg, log_from);
    assert!(
        log.contains("not properly shut down") || log.contains("automatic recovery"),
        "PostgreSQL ran crash recovery:\n{log}"
    );
    assert_eq!(
        sql(
            &pg.url("postgres"),
            "SELECT string_agg(v, ',' ORDER BY v) FROM t"
        ),
        "after the checkpoint,committed"
    );
}

#[test]
fn a_stale_pid_file_and_an_unfinished_initdb_do_not_block_the_next_start() {
    let dir = TestDir::new("stale");
    let mut pg = start(dir.path());
    let run_as_uid = fs::metadata(pg.data_dir()).unwrap().uid();
    pg.stop(Duration::from_secs(15)).unwrap();
    let data_dir = pg.data_dir().to_path_buf();
    drop(pg);
    // A pid file naming a live process that is no postmaster (a reused pid; PostgreSQL itself
    // would refuse to start over it), as a crash leaves it, and the staging folder of an owner
    // killed during initdb.
    // (As the account PostgreSQL runs as, so that PostgreSQL could signal it.)
    let mut unrelated = Command::new("sleep");
    if Uid::effective().is_root() {
        std::os::unix::process::CommandExt::uid(&mut unrelated, run_as_uid);
    }
    let mut unrelated = unrelated.arg("60").spawn().unwrap();
    let pid_file = data_dir.join("postmaster.pid");
    fs::write(
        &pid_file,
        format!(
            "{}\n{}\n1700000000\n5432\n/nowhere\n\n  1234     5678\nready   \n",
            unrelated.id(),
            data_dir.display()
        ),
    )
    .unwrap();
    let _ = std::os::unix::fs::chown(&pid_file, Some(run_as_uid), None);
    let staging = dir.path().join("data.init-1");
    fs::create_dir_all(staging.join("base")).unwrap();

    let pg = start(dir.path());
    assert!(pg.is_owner());
    assert!(
        process_alive(unrelated.id() as i32),
        "the unrelated process was not signalled"
    );
    assert_ne!(pg.postmaster_pid(), Some(unrelated.id()));
    let _ = unrelated.kill();
    let _ = unrelated.wait();
    assert_eq!(sql(&pg.url("postgres"), "SELECT 1"), "1");
    assert!(!staging.exists(), "the unfinished initdb was removed");
}

#[test]
fn starts_at_the_same_time_make_one_owner_and_one_guest() {
    let dir = TestDir::new("race");
    let path = dir.path().to_path_buf();
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let path = path.clone();
            thread::spawn(move || start(&path))
        })
        .collect();
    let pgs: Vec<LocalPostgres> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(pgs.iter().filter(|p| p.is_owner()).count(), 1);
    assert_eq!(pgs[0].postmaster_pid(), pgs[1].postmaster_pid());
    for pg in &pgs {
        assert_eq!(sql(&pg.url("postgres"), "SELECT 1"), "1");
    }
}

#[test]
fn a_folder_whose_owner_is_not_ready_is_refused_with_a_clear_message() {
    let dir = TestDir::new("busy");
    fs::create_dir_all(dir.path()).unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).unwrap();
    // An owner that holds the folder but has not started PostgreSQL (say, during initdb).
    let file: File = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(dir.path().join("owner.lock"))
        .unwrap();
    let mut held = Flock::lock(file, FlockArg::LockExclusiveNonblock).unwrap();
    writeln!(held, "{}", std::process::id()).unwrap();

    let started = Instant::now();
    let err = LocalPostgres::start_with_timeout(&options(dir.path()), Duration::from_millis(500))
        .expect_err("refused");
    let text = err.to_string();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        text.contains(&format!("belongs to process {}", std::process::id()))
            && text.contains("initialising"),
        "{text}"
    );
    assert!(!dir.path().join("data/postmaster.pid").exists());

    // Once that owner goes, the folder is free.
    drop(held);
    let pg = start(dir.path());
    assert!(pg.is_owner());
}

#[test]
fn a_long_folder_path_puts_the_socket_in_a_short_folder() {
    let dir = TestDir::new("long");
    let base = dir.path().join("d".repeat(90));
    let owner = start(&base);
    let socket_dir = owner.socket_dir().to_path_buf();
    let _socket_dir = TestDir(socket_dir.clone());
    assert!(!socket_dir.starts_with(&base));
    assert!(socket_dir.join(".s.PGSQL.5432").as_os_str().len() <= 107);
    assert_eq!(sql(&owner.url("postgres"), "SELECT 1"), "1");
    let guest = start(&base);
    assert!(!guest.is_owner());
    assert_eq!(guest.socket_dir(), socket_dir);
    assert_eq!(sql(&guest.url("postgres"), "SELECT 1"), "1");
    drop(guest);
    drop(owner);

    // A short path keeps it inside the folder.
    let short = start(&dir.path().join("s"));
    assert_eq!(short.socket_dir(), dir.path().join("s/sock"));
    drop(short);
}

#[test]
fn as_root_postgres_runs_as_the_postgres_account_in_a_folder_it_can_reach() {
    if !Uid::effective().is_root() {
        eprintln!("not root: nothing to check");
        return;
    }
    let account = User::from_name("postgres")
        .unwrap()
        .or_else(|| User::from_name("nobody").unwrap())
        .expect("a postgres or nobody account");
    let dir = TestDir::new("root");
    let pg = start(dir.path());
    let status =
        fs::read_to_string(format!("/proc/{}/status", pg.postmaster_pid().unwrap())).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    let real_uid: u32 = uid_line.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert_eq!(real_uid, account.uid.as_raw(), "{uid_line}");
    for folder in [pg.base_dir(), pg.data_dir(), pg.socket_dir()] {
        let meta = fs::metadata(folder).unwrap();
        assert_eq!(meta.uid(), account.uid.as_raw(), "{}", folder.display());
        assert_eq!(meta.mode() & 0o777, 0o700, "{}", folder.display());
    }
    // Root (the guest here) reaches the socket in the postgres account's 0700 folder.
    let guest = start(dir.path());
    assert_eq!(
        sql(&guest.url("postgres"), "SELECT current_user"),
        "postgres"
    );
    drop(guest);
    drop(pg);

    // A folder the postgres account cannot enter is refused with the way out.
    let closed = TestDir::new("closed");
    fs::create_dir_all(closed.path()).unwrap();
    fs::set_permissions(closed.path(), fs::Permissions::from_mode(0o700)).unwrap();
    let err = LocalPostgres::start(&options(&closed.path().join("pg"))).expect_err("refused");
    assert!(err.to_string().contains("cannot enter"), "{err}");
}

#[test]
fn a_lasting_cluster_runs_with_settings_sized_to_the_machine_and_overrides_win() {
    let dir = TestDir::new("settings");
    let mut options = options(dir.path());
    options.ephemeral = false;
    options.remove_on_exit = true;
    options.settings = vec![("work_mem".to_owned(), "7MB".to_owned())];
    let pg = LocalPostgres::start(&options).unwrap_or_else(|e| panic!("{e}"));
    let url = pg.url("postgres");
    let recommended = local_pg::recommended_settings();
    let shared_mb: u64 = recommended
        .iter()
        .find(|(n, _)| n == "shared_buffers")
        .and_then(|(_, v)| v.trim_end_matches("MB").parse().ok())
        .unwrap();
    // shared_buffers is counted in 8 kB pages.
    assert_eq!(
        sql(
            &url,
            "SELECT setting FROM pg_settings WHERE name = 'shared_buffers'"
        ),
        (shared_mb * 128).to_string()
    );
    assert_eq!(sql(&url, "SHOW random_page_cost"), "1.1");
    assert_eq!(sql(&url, "SHOW work_mem"), "7MB", "the override wins");
    drop(pg);
}

#[test]
fn recommended_settings_follow_the_design_guide() {
    let gib = 1u64 << 30;
    let of = |memory: u64| local_pg::recommended_for(memory);
    let value = |settings: &[(String, String)], name: &str| {
        settings
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    let s = of(24 * gib);
    assert_eq!(value(&s, "shared_buffers"), "6144MB");
    assert_eq!(value(&s, "effective_cache_size"), "18432MB");
    assert_eq!(value(&s, "work_mem"), "64MB");
    assert_eq!(value(&s, "random_page_cost"), "1.1");
    assert_eq!(value(&of(64 * gib), "shared_buffers"), "8192MB", "capped");
    assert_eq!(value(&of(256 << 20), "shared_buffers"), "128MB", "at least");
}
