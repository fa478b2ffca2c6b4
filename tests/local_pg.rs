//! The server-owned PostgreSQL shared by several `titanbay` processes on one data folder: the
//! real binary, real PostgreSQL, real signals.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{
    fs,
    io::{BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Output, Stdio},
    thread,
    time::{Duration, Instant},
};

use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};

const BIN: &str = env!("CARGO_BIN_EXE_titanbay");

/// A `titanbay` command on `dir` with a clean environment: no `DATABASE_URL`, so it uses the
/// server-owned PostgreSQL there.
fn titanbay(dir: &Path, port: u16, args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("LOCAL_PG_DIR", dir)
        .env("HOST", "127.0.0.1")
        .env("PORT", port.to_string())
        .env("LOG_LEVEL", "info")
        .stdin(Stdio::null());
    if let Some(bin_dir) = std::env::var_os("PG_BIN_DIR") {
        command.env("PG_BIN_DIR", bin_dir);
    }
    command
}

/// A port nobody listens on (bound and released at once).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One HTTP/1.1 request; the status code and the body.
fn http(port: u16, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .ok()?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let (_, body) = response.split_once("\r\n\r\n")?;
    Some((status, body.to_owned()))
}

fn graphql(port: u16, query: &str) -> (u16, String) {
    let body = serde_json::json!({ "query": query }).to_string();
    http(port, "POST", "/graphql", &body).expect("the server answers")
}

/// The pid in `data/postmaster.pid`.
fn postmaster_pid(dir: &Path) -> i32 {
    let text = fs::read_to_string(dir.join("data/postmaster.pid")).unwrap();
    text.lines().next().unwrap().trim().parse().unwrap()
}

fn alive(pid: i32) -> bool {
    local_pg::process_alive(pid)
}

fn wait_exit(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

fn text(output: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Kills the processes still running and removes the folder and the log, however the test
/// ends.
struct Cleanup {
    dir: PathBuf,
    log: PathBuf,
    children: Vec<Child>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        // The killed owner's wrapper stops its PostgreSQL; wait for it before deleting.
        if let Ok(text) = fs::read_to_string(self.dir.join("data/postmaster.pid"))
            && let Some(pid) = text.lines().next().and_then(|l| l.trim().parse().ok())
        {
            let deadline = Instant::now() + Duration::from_secs(10);
            while alive(pid) && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = fs::remove_dir_all(&self.dir);
        let _ = fs::remove_file(&self.log);
    }
}

#[test]
fn seed_migrate_postgres_and_a_second_server_use_the_running_instance_and_never_stop_it() {
    let tmp = std::env::temp_dir();
    local_pg::sweep_stale_clusters(&tmp, "titanbay-test-");
    let dir = tmp.join(format!("titanbay-test-{}-shared", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    let port = free_port();
    let log_path = tmp.join(format!("titanbay-test-{}-serve.log", std::process::id()));
    let mut cleanup = Cleanup {
        dir: dir.clone(),
        log: log_path.clone(),
        children: Vec::new(),
    };

    // The owner: `titanbay serve`, logging to a file.
    let log = fs::File::create(&log_path).unwrap();
    let server = titanbay(&dir, port, &["serve"])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let server_pid = server.id();
    cleanup.children.push(server);
    let serve_log = || fs::read_to_string(&log_path).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(120);
    while http(port, "GET", "/readyz", "").map(|(s, _)| s) != Some(200) {
        assert!(
            Instant::now() < deadline,
            "the server never became ready:\n{}",
            serve_log()
        );
        assert!(
            cleanup.children[0].try_wait().unwrap().is_none(),
            "the server exited:\n{}",
            serve_log()
        );
        thread::sleep(Duration::from_millis(50));
    }
    let postmaster = postmaster_pid(&dir);
    assert!(alive(postmaster));

    // `seed` next to it: uses the running PostgreSQL and leaves it running.
    let seed = titanbay(&dir, port, &["seed"]).output().unwrap();
    assert!(seed.status.success(), "{}", text(&seed));
    let seed_log = String::from_utf8_lossy(&seed.stderr);
    assert!(
        seed_log.contains(&format!(
            "using the PostgreSQL already run by process {server_pid}"
        )),
        "{}",
        text(&seed)
    );
    assert!(!seed_log.contains("stopping"), "{}", text(&seed));
    // The first start said what it was waiting for; a later run of the migrations (seed's,
    // on a migrated database) shows no PostgreSQL notices such as "already exists, skipping".
    assert!(
        serve_log().contains("initialising a new PostgreSQL cluster"),
        "{}",
        serve_log()
    );
    assert!(!seed_log.contains("skipping"), "{}", text(&seed));
    assert!(!serve_log().contains("skipping"), "{}", serve_log());
    assert!(alive(postmaster), "seed stopped the server's PostgreSQL");
    assert_eq!(postmaster_pid(&dir), postmaster);

    // The server still works, and sees the demo data.
    let (status, body) = graphql(port, "{ funds(first: 5) { nodes { name } } }");
    assert_eq!(status, 200, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(body.get("errors").is_none(), "{body:#}");
    let names: Vec<&str> = body["data"]["funds"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["name"].as_str())
        .collect();
    assert!(names.contains(&"Titanbay Growth Fund I"), "{body:#}");
    assert_eq!(names.len(), 4, "{body:#}");

    // `migrate` as well.
    let migrate = titanbay(&dir, port, &["migrate"]).output().unwrap();
    assert!(migrate.status.success(), "{}", text(&migrate));
    assert!(alive(postmaster), "migrate stopped the server's PostgreSQL");

    // A second server on the same folder and port: refused on the port, PostgreSQL untouched.
    let second = titanbay(&dir, port, &["serve"]).output().unwrap();
    assert!(!second.status.success(), "{}", text(&second));
    let second_err = String::from_utf8_lossy(&second.stderr);
    assert!(
        second_err.contains(&format!("127.0.0.1:{port}"))
            && second_err.to_lowercase().contains("address already in use"),
        "the refusal must name the port: {}",
        text(&second)
    );
    assert!(!second_err.contains("stopping"), "{}", text(&second));
    assert!(alive(postmaster), "a second server stopped the PostgreSQL");
    assert_eq!(graphql(port, "{ funds { totalCount } }").0, 200);

    // `titanbay postgres` as a second process prints the running instance's URL.
    let mut postgres = titanbay(&dir, port, &["postgres"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut url = String::new();
    BufReader::new(postgres.stdout.take().unwrap())
        .read_line(&mut url)
        .unwrap();
    let socket = fs::read_to_string(dir.join("data/postmaster.pid")).unwrap();
    let socket = socket.lines().nth(4).unwrap().trim().to_owned();
    assert!(
        url.starts_with("postgres://postgres@localhost:5432/titanbay?host="),
        "{url}"
    );
    assert!(url.trim_end().ends_with(&socket), "{url} vs {socket}");
    // It installs its Ctrl-C handler right after printing the URL.
    thread::sleep(Duration::from_millis(500));
    kill(Pid::from_raw(postgres.id() as i32), Signal::SIGINT).unwrap();
    let status = wait_exit(&mut postgres, Duration::from_secs(20)).expect("postgres exits");
    assert!(status.success(), "{status}");
    assert!(
        alive(postmaster),
        "`titanbay postgres` stopped the PostgreSQL"
    );
    assert_eq!(graphql(port, "{ funds { totalCount } }").0, 200);

    // The owner stops on SIGINT, and its PostgreSQL with it.
    kill(Pid::from_raw(server_pid as i32), Signal::SIGINT).unwrap();
    let status =
        wait_exit(&mut cleanup.children[0], Duration::from_secs(30)).expect("the server exits");
    assert!(status.success(), "{status}\n{}", serve_log());
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(postmaster) {
        assert!(
            Instant::now() < deadline,
            "the owner's PostgreSQL outlived it"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn help_names_the_environment_variables() {
    let output = Command::new(BIN).arg("--help").output().unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let help = String::from_utf8_lossy(&output.stdout);
    for name in [
        "DATABASE_URL",
        "LOCAL_PG_DIR",
        "PORT",
        "APP_ENV",
        "AUTH_HS256_SECRET",
        "MAX_QUERY_DEPTH",
    ] {
        assert!(help.contains(name), "--help does not name {name}:\n{help}");
    }
}

#[test]
fn a_command_that_cannot_run_says_why_in_one_line_without_a_backtrace() {
    // `token` without AUTH settings, with backtraces asked for.
    let dir = std::env::temp_dir().join(format!("titanbay-test-{}-token", std::process::id()));
    let output = titanbay(&dir, free_port(), &["token"])
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    assert!(!output.status.success(), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.trim_start().starts_with("error:"),
        "{}",
        text(&output)
    );
    assert!(!stderr.contains("backtrace"), "{}", text(&output));
    assert!(!stderr.contains("panicked"), "{}", text(&output));
    assert!(stderr.trim().lines().count() <= 2, "{}", text(&output));
    assert!(!dir.exists(), "token created {}", dir.display());
}
