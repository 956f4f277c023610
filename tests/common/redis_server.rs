//! A real `redis-server` for the backplane's tests, on 127.0.0.1 and a free port, stopped (and
//! restarted, for the outage tests) by the test.
//!
//! `redis-server` comes from Debian's `redis-server` package (`.ci/run` installs it), or from
//! `$REDIS_SERVER`. The tests that use it are `#[ignore]`d (libtest reports them as ignored); run
//! with `--ignored`, a missing server fails them with a message saying so, never a silent pass.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

pub(crate) struct RedisServer {
    binary: PathBuf,
    port: u16,
    args: Vec<String>,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts `redis-server` with `args` (e.g. `--requirepass x`); fails the test, saying how to
    /// install it, when it is not installed.
    pub(crate) fn start(args: &[&str]) -> Self {
        let binary = match std::env::var_os("REDIS_SERVER") {
            Some(path) => PathBuf::from(path),
            None => {
                let found = std::env::var_os("PATH").and_then(|paths| {
                    std::env::split_paths(&paths)
                        .map(|dir| dir.join("redis-server"))
                        .find(|path| path.is_file())
                });
                found.unwrap_or_else(|| {
                    panic!(
                        "redis-server is not installed (apt-get install redis-server, or set REDIS_SERVER)"
                    )
                })
            }
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let mut server =
            Self { binary, port, args: args.iter().map(|arg| (*arg).to_owned()).collect(), child: None };
        server.restart();
        server
    }

    /// `redis://127.0.0.1:PORT/`, with `credentials` (`:password@`) if given.
    pub(crate) fn url(&self, credentials: &str) -> String {
        format!("redis://{credentials}127.0.0.1:{}/", self.port)
    }

    /// Kills the server, as a crash would.
    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server (again) on the same port, and waits until it accepts connections.
    pub(crate) fn restart(&mut self) {
        self.stop();
        let child = Command::new(&self.binary)
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &self.port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.binary.display()));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not listen on port {}", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
