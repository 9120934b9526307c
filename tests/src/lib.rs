//! Support for the workspace-level tests: starting `ordo node` on a free port with its own data
//! directory, finding the real FIX peers (`../shared/fix`, the Python venv the test command
//! installs), and a small blocking FIX initiator for the tests that need to see raw messages.

pub mod cluster;
pub mod fix_client;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the repository")
        .to_path_buf()
}

/// The `ordo` binary of the profile these tests were built with (`cargo build --bin ordo`
/// first; the test command does).
pub fn ordo_bin() -> PathBuf {
    if let Ok(p) = std::env::var("ORDO_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>");
    let bin = profile_dir.join("ordo");
    assert!(
        bin.exists(),
        "{} not built: run `cargo build --bin ordo` (cargo xtask test does)",
        bin.display()
    );
    bin
}

/// `../shared/fix` (the QuickFIX client and the acceptance runner).
pub fn shared_fix() -> PathBuf {
    let dir = repo_root().join("..").join("shared").join("fix");
    assert!(
        dir.join("run_acceptance.py").exists(),
        "{} missing: the FIX test peers are not where the project expects them",
        dir.display()
    );
    dir
}

/// The Python with the `quickfix` package (installed by `cargo xtask test` into target/tools/venv).
pub fn python() -> PathBuf {
    let p = repo_root()
        .join("target")
        .join("tools")
        .join("venv")
        .join("bin")
        .join("python");
    assert!(
        p.exists(),
        "{} missing: run `cargo xtask test`, which installs the Python test peers",
        p.display()
    );
    p
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A running `ordo node`.
pub struct Node {
    /// The process.
    pub child: Child,
    /// Its FIX port.
    pub port: u16,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// Its ready line.
    pub ready_line: String,
}

impl Node {
    /// Starts `ordo node` with `args`, on a free port and `data_dir`, and waits for its ready line.
    pub fn start(data_dir: &Path, args: &[&str]) -> Node {
        Self::start_on(data_dir, free_port(), args)
    }

    /// [`Node::start`] on a given port (restarts keep the port).
    pub fn start_on(data_dir: &Path, port: u16, args: &[&str]) -> Node {
        let mut child = Command::new(ordo_bin())
            .arg("node")
            .args(args)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(data_dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start ordo node");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            while let Some(Ok(line)) = lines.next() {
                if line.starts_with("ordo node ready") {
                    let _ = tx.send(line);
                }
            }
        });
        let ready_line = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                panic!("ordo node did not print its ready line within 60 s");
            }
        };
        Node {
            child,
            port,
            data_dir: data_dir.to_path_buf(),
            ready_line,
        }
    }

    /// SIGTERM, then the exit status (within 30 s).
    pub fn terminate(mut self) -> std::process::ExitStatus {
        // SAFETY: signalling our own child process.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "node did not stop within 30 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL (a crash).
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().expect("wait").is_none()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
