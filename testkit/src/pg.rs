//! A PostgreSQL server of its own for a test or a benchmark (servers'
//! store and cluster tests, `bench im_cluster`): Debian's `initdb` in a
//! fresh temporary directory, `pg_ctl start` on a loopback port (and a unix
//! socket in the same directory), one database `im` (`createdb`); stopped
//! and removed when dropped. PostgreSQL refuses to run as root, so as root
//! the commands run as the `postgres` user (`runuser`), which owns the
//! directory. Needs Debian's `postgresql` package.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;

/// A running temporary PostgreSQL server.
pub struct TempPostgres {
    dir: PathBuf,
    /// Its port (on loopback and [`listen`](Self::start_on)).
    pub port: u16,
    /// Addresses it listens on.
    listen: String,
    as_postgres: bool,
}

fn bin(name: &str) -> String {
    // Debian puts the server programs in /usr/lib/postgresql/<v>/bin.
    if let Ok(rd) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut versions: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        versions.sort();
        if let Some(v) = versions.last() {
            let p = v.join("bin").join(name);
            if p.exists() {
                return p.to_string_lossy().into_owned();
            }
        }
    }
    name.to_string()
}

/// Whether Debian's PostgreSQL server programs are installed (what
/// [`TempPostgres`] needs), for a caller that would rather say why it
/// skips than panic.
pub fn available() -> bool {
    std::path::Path::new(&bin("initdb")).is_absolute()
}

impl TempPostgres {
    /// Starts one on loopback (panics with the server's log if it cannot).
    pub fn start() -> TempPostgres {
        TempPostgres::start_on(None)
    }

    /// Starts one listening on loopback and, with `Some((ip, cidr))`, on
    /// `ip` too, trusting clients from `cidr` (test namespaces).
    pub fn start_on(also: Option<(&str, &str)>) -> TempPostgres {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("im-pg-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let as_postgres = unsafe { libc::geteuid() } == 0;
        let mut pg = TempPostgres {
            dir,
            port: free_port(),
            listen: match also {
                Some((ip, _)) => format!("127.0.0.1,{ip}"),
                None => "127.0.0.1".into(),
            },
            as_postgres,
        };
        if as_postgres {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&pg.dir)
                .status()
                .unwrap()
                .success();
            assert!(ok, "chown of the postgres directory");
        }
        let data = pg.dir.join("data");
        pg.must(
            &bin("initdb"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        );
        if let Some((_, cidr)) = also {
            use std::io::Write;
            let mut hba = std::fs::OpenOptions::new()
                .append(true)
                .open(data.join("pg_hba.conf"))
                .unwrap();
            writeln!(hba, "host all all {cidr} trust").unwrap();
        }
        // The port was free a moment ago; another test may have taken it
        // since: try a few.
        for attempt in 1.. {
            match pg.pg_ctl_start() {
                Ok(()) => break,
                Err(e) if attempt >= 3 => panic!("{e}"),
                Err(e) => {
                    eprintln!("temporary postgres did not start, trying another port: {e}");
                    pg.port = free_port();
                }
            }
        }
        let port = pg.port.to_string();
        pg.must(
            &bin("createdb"),
            &["-h", "127.0.0.1", "-p", &port, "-U", "postgres", "im"],
        );
        pg
    }

    fn pg_ctl_start(&self) -> Result<(), String> {
        let opts = format!(
            "-p {} -k {} -c listen_addresses={} -c fsync=off -c max_connections=50",
            self.port,
            self.dir.display(),
            self.listen
        );
        let (data, log) = (self.dir.join("data"), self.dir.join("log"));
        self.run(
            &bin("pg_ctl"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-w",
                "-t",
                "60",
                "-o",
                &opts,
                "start",
            ],
        )
    }

    /// Stops the server (fast shutdown: sessions are cut); [`resume`](Self::resume)
    /// starts it again on the same port with the same data.
    pub fn pause(&self) {
        let data = self.dir.join("data");
        self.must(
            &bin("pg_ctl"),
            &["-D", data.to_str().unwrap(), "-m", "fast", "-w", "stop"],
        );
    }

    /// Starts a [`pause`](Self::pause)d server again.
    pub fn resume(&self) {
        if let Err(e) = self.pg_ctl_start() {
            panic!("{e}");
        }
    }

    fn must(&self, program: &str, args: &[&str]) {
        if let Err(e) = self.run(program, args) {
            panic!("{e}");
        }
    }

    fn run(&self, program: &str, args: &[&str]) -> Result<(), String> {
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", program]);
            c
        } else {
            Command::new(program)
        };
        let out = cmd
            .args(args)
            .current_dir(&self.dir)
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e} (is Debian's postgresql installed?)"));
        let log = std::fs::read_to_string(self.dir.join("log")).unwrap_or_default();
        if out.status.success() {
            return Ok(());
        }
        Err(format!(
            "{program} {args:?} failed: {}{}\n{log}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }

    /// Connection string of database `db`.
    pub fn url_of(&self, db: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname={db}",
            self.port
        )
    }

    /// Connection string of the test database `im` at `host`.
    pub fn url_on(&self, host: &str) -> String {
        format!("host={host} port={} user=postgres dbname=im", self.port)
    }

    /// Connection string of the test database `im`.
    pub fn url(&self) -> String {
        self.url_of("im")
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let stopped = self.run(
            &bin("pg_ctl"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
        if let Err(e) = stopped {
            eprintln!(
                "temporary postgres in {} did not stop: {e}",
                self.dir.display()
            );
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
