//! PostgreSQL (Debian `postgresql`), run as an unprivileged user.
//!
//! [`PostgresServer::start`] runs `initdb` on a temporary directory (trust authentication, user
//! `postgres`) and `postgres` on a free port of 127.0.0.1. PostgreSQL refuses to run as root, so
//! when the tests run as root both run as `nobody`. The server (its whole process group) is
//! killed and its directory removed when the value is dropped; [`PostgresServer::shared`] gives
//! one server per test process, stopped when the process exits.

use std::ffi::CString;
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use crate::free_port;

/// Where Debian's `postgresql` package puts PostgreSQL 15's binaries.
pub const BIN_DIR: &str = "/usr/lib/postgresql/15/bin";

/// How long the server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A PostgreSQL server on 127.0.0.1, stopped on drop.
pub struct PostgresServer {
    dir: tempfile::TempDir,
    port: u16,
    /// The user the server runs as (`None`: the current user).
    user: Option<(u32, u32)>,
    child: Option<Child>,
}

impl PostgresServer {
    /// Initializes a cluster in a temporary directory and starts it on a free port; panics
    /// (with what to install) if PostgreSQL 15 is missing, or if it does not start within 20 s.
    pub fn start() -> Self {
        let bin = Path::new(BIN_DIR);
        if !bin.join("initdb").exists() || !bin.join("postgres").exists() {
            panic!("PostgreSQL 15 is not installed ({BIN_DIR}/initdb is missing): apt-get install postgresql");
        }
        let dir = tempfile::Builder::new().prefix("bosun-postgres-").tempdir().expect("temporary directory");
        // SAFETY: geteuid has no preconditions.
        let user = (unsafe { libc::geteuid() } == 0).then(nobody);
        std::fs::create_dir(dir.path().join("socket")).expect("socket directory");
        if let Some((uid, gid)) = user {
            chown(dir.path(), uid, gid);
            chown(&dir.path().join("socket"), uid, gid);
        }
        let mut server = Self { dir, port: 0, user, child: None };
        let log = server.log_path();
        let mut initdb = server.command("initdb");
        initdb
            .arg("-D")
            .arg(server.data_dir())
            .args(["-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C"])
            .stdin(Stdio::null())
            .stdout(Stdio::from(File::create(&log).expect("log file")))
            .stderr(Stdio::from(File::options().append(true).open(&log).expect("log file")));
        let status = initdb.status().unwrap_or_else(|e| panic!("running initdb: {e}"));
        if !status.success() {
            panic!("initdb failed ({status}):\n{}", std::fs::read_to_string(&log).unwrap_or_default());
        }
        server.launch_on_free_port();
        server
    }

    /// One server for the whole test process, started on first use and stopped (killed, its
    /// directory removed) when the process exits.
    pub fn shared() -> &'static PostgresServer {
        static SHARED: OnceLock<PostgresServer> = OnceLock::new();
        SHARED.get_or_init(|| {
            let server = PostgresServer::start();
            SHARED_PID.store(server.pid(), Ordering::SeqCst);
            let _ = SHARED_DIR.set(server.dir.path().to_path_buf());
            // SAFETY: registering a handler that only calls async-signal-safe-enough libc and std
            // functions on static data.
            unsafe { libc::atexit(stop_shared) };
            server
        })
    }

    /// The port the server listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of the `postgres` database as the `postgres` superuser.
    pub fn url(&self) -> String {
        self.database_url("postgres")
    }

    /// The URL of database `name` on this server.
    pub fn database_url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates database `name` (lowercase letters, digits and `_`) and returns its URL.
    pub fn create_database(&self, name: &str) -> String {
        assert!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "database name {name:?}: lowercase letters, digits and _ only"
        );
        let output = Command::new(Path::new(BIN_DIR).join("psql"))
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres"])
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-c")
            .arg(format!("CREATE DATABASE {name}"))
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("running psql: {e}"));
        if !output.status.success() {
            panic!("creating database {name}: {}", String::from_utf8_lossy(&output.stderr));
        }
        self.database_url(name)
    }

    /// Kills the server (and every backend process) at once, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_group(child.id() as i32);
            let _ = child.wait();
        }
    }

    /// Kills the server if it runs and starts it again on the same data and port.
    pub fn restart(&mut self) {
        self.kill();
        self.launch(self.port).unwrap_or_else(|log| panic!("restarting PostgreSQL:\n{log}"));
    }

    fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    /// A command for one of PostgreSQL's binaries, as the server's user.
    fn command(&self, binary: &str) -> Command {
        let mut command = Command::new(Path::new(BIN_DIR).join(binary));
        command.current_dir(self.dir.path()).env("LC_ALL", "C");
        if let Some((uid, gid)) = self.user {
            command.uid(uid).gid(gid);
        }
        command
    }

    fn launch_on_free_port(&mut self) {
        let mut last = String::new();
        for _ in 0..3 {
            match self.launch(free_port()) {
                Ok(()) => return,
                Err(log) => last = log,
            }
        }
        panic!("PostgreSQL did not start:\n{last}");
    }

    /// Starts `postgres` on `port` and waits until it accepts connections; on failure returns
    /// the log.
    fn launch(&mut self, port: u16) -> Result<(), String> {
        let log = self.log_path();
        let open_log = || File::options().create(true).append(true).open(&log).expect("log file");
        let mut command = self.command("postgres");
        command
            .arg("-D")
            .arg(self.data_dir())
            .arg("-p")
            .arg(port.to_string())
            .arg("-k")
            .arg(self.dir.path().join("socket"))
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off", "-c", "max_connections=300", "-c", "logging_collector=off"])
            .stdin(Stdio::null())
            .stdout(Stdio::from(open_log()))
            .stderr(Stdio::from(open_log()))
            .process_group(0);
        let mut child = command.spawn().map_err(|e| format!("spawning postgres: {e}"))?;
        self.port = port;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "postgres exited ({status}):\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                ));
            }
            let ready = Command::new(Path::new(BIN_DIR).join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-t", "1"])
                .arg("-p")
                .arg(port.to_string())
                .stdin(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() > deadline {
                kill_group(child.id() as i32);
                let _ = child.wait();
                return Err(format!(
                    "postgres did not accept connections within {START_TIMEOUT:?}:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.kill();
    }
}

static SHARED_PID: AtomicI32 = AtomicI32::new(0);
static SHARED_DIR: OnceLock<PathBuf> = OnceLock::new();

extern "C" fn stop_shared() {
    let pid = SHARED_PID.swap(0, Ordering::SeqCst);
    if pid > 0 {
        kill_group(pid);
        let mut status = 0;
        // SAFETY: waiting for our own child; status is a valid pointer.
        unsafe { libc::waitpid(pid, &mut status, 0) };
    }
    if let Some(dir) = SHARED_DIR.get() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Kills process group `pgid` (the server and its backends).
fn kill_group(pgid: i32) {
    if pgid > 0 {
        // SAFETY: kill has no memory preconditions.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
    }
}

/// `nobody`'s uid and gid.
fn nobody() -> (u32, u32) {
    let name = CString::new("nobody").expect("no NUL");
    // SAFETY: getpwnam gets a valid C string; the result is read at once, before any other call
    // that could overwrite it.
    let entry = unsafe { libc::getpwnam(name.as_ptr()) };
    if entry.is_null() {
        panic!("running as root and there is no user nobody to run PostgreSQL as");
    }
    // SAFETY: entry is non-null and points to a passwd record.
    unsafe { ((*entry).pw_uid, (*entry).pw_gid) }
}

fn chown(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .unwrap_or_else(|e| panic!("chown {} to {uid}:{gid}: {e}", path.display()));
}
