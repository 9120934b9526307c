//! A cluster of real `ordo node --cluster` processes on loopback for tests: its own ports (FIX on
//! TCP, members on UDP), data directories and Aeron directory, each member started, killed,
//! paused and restarted like a process in production, and asked for its status through
//! `ordo admin status`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, ordo_bin, repo_root};

/// What `ordo admin status` says of a member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// leader, follower, cut-off, stopped.
    pub role: String,
    /// Its term.
    pub term: u64,
    /// The leader it knows of.
    pub leader: Option<u64>,
    /// Last journal seq written.
    pub last_seq: u64,
    /// Committed seq.
    pub committed_seq: u64,
    /// Whether it serves FIX now.
    pub serving: bool,
}

impl Status {
    fn parse(line: &str) -> Option<Status> {
        let mut fields = BTreeMap::new();
        for word in line.strip_prefix("OK ")?.split_whitespace() {
            let (k, v) = word.split_once('=')?;
            fields.insert(k, v);
        }
        Some(Status {
            role: fields.get("role")?.to_string(),
            term: fields.get("term")?.parse().ok()?,
            leader: fields.get("leader")?.parse().ok(),
            last_seq: fields.get("last_seq")?.parse().ok()?,
            committed_seq: fields.get("committed_seq")?.parse().ok()?,
            serving: *fields.get("serving")? == "yes",
        })
    }
}

/// A cluster of member processes.
pub struct Cluster {
    /// The cluster file.
    pub file: PathBuf,
    /// Each member's FIX port, by id (1..).
    pub fix_ports: BTreeMap<u64, u16>,
    root: PathBuf,
    aeron: PathBuf,
    members: BTreeMap<u64, Child>,
}

/// The embedded node settings, with the orders of CLIENT3 and CLIENT6 cancelled when they
/// disconnect (so a test can see the takeover's cancel-on-disconnect).
fn node_settings() -> String {
    let mut text = std::fs::read_to_string(repo_root().join("sequencer/src/default_config.toml"))
        .expect("read the embedded configuration");
    for who in ["CLIENT3", "CLIENT6"] {
        let at = text
            .find(&format!("target_comp_id = \"{who}\""))
            .unwrap_or_else(|| panic!("{who} in the defaults"));
        let (head, tail) = text.split_at(at);
        text = format!(
            "{head}{}",
            tail.replacen("cancel_on_disconnect = false", "cancel_on_disconnect = true", 1)
        );
    }
    text
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free UDP port")
}

impl Cluster {
    /// Writes the cluster file of `n` members under `root` and starts every member.
    pub fn start(root: &Path, n: u64) -> Cluster {
        Cluster::start_with(root, n, "")
    }

    /// As [`Cluster::start`], with `extra` lines in the file's `[cluster]` table.
    pub fn start_with(root: &Path, n: u64, extra: &str) -> Cluster {
        let mut text = node_settings();
        text.push_str(
            "\n[cluster]\nheartbeat_ms = 50\nleader_timeout_ms = 150\nelection_timeout_min_ms = 190\nelection_timeout_max_ms = 250\ncheckpoint_every = 50\nsnapshot_every = 200\n",
        );
        text.push_str(extra);
        let mut fix_ports = BTreeMap::new();
        for id in 1..=n {
            let fix = free_port();
            fix_ports.insert(id, fix);
            text.push_str(&format!(
                "\n[[member]]\nid = {id}\nfix = \"127.0.0.1:{fix}\"\nraft = \"127.0.0.1:{}\"\n",
                free_udp_port()
            ));
        }
        let file = root.join("cluster.toml");
        std::fs::write(&file, text).expect("write the cluster file");
        let shm = Path::new("/dev/shm");
        let aeron = if shm.is_dir() {
            shm.join(format!("ordo-test-{}-{}", std::process::id(), free_port()))
        } else {
            root.join("aeron")
        };
        std::fs::create_dir_all(&aeron).expect("aeron directory");
        let mut cluster = Cluster {
            file,
            fix_ports,
            root: root.to_path_buf(),
            aeron,
            members: BTreeMap::new(),
        };
        // All at once, as an operator starts a cluster: one started alone would campaign on its
        // own until the others are up.
        let ids: Vec<u64> = cluster.fix_ports.keys().copied().collect();
        let ready: Vec<_> = ids.iter().map(|&id| (id, cluster.launch(id))).collect();
        for (id, rx) in ready {
            cluster.wait_ready(id, &rx);
        }
        cluster
    }

    /// Member `id`'s data directory.
    pub fn data_dir(&self, id: u64) -> PathBuf {
        self.root.join(format!("m{id}"))
    }

    /// Starts (or restarts) member `id` and waits for its ready line, which it returns.
    pub fn spawn(&mut self, id: u64) -> String {
        let rx = self.launch(id);
        self.wait_ready(id, &rx)
    }

    /// Starts member `id`; its ready line arrives on the receiver.
    fn launch(&mut self, id: u64) -> std::sync::mpsc::Receiver<String> {
        let mut child = Command::new(ordo_bin())
            .arg("node")
            .arg("--cluster")
            .arg(&self.file)
            .arg("--id")
            .arg(id.to_string())
            .arg("--data-dir")
            .arg(self.data_dir(id))
            .arg("--aeron-dir")
            .arg(&self.aeron)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start ordo node --cluster");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("ordo node ready") {
                    let _ = tx.send(line);
                }
            }
        });
        self.members.insert(id, child);
        rx
    }

    fn wait_ready(&mut self, id: u64, rx: &std::sync::mpsc::Receiver<String>) -> String {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => line,
            Err(_) => {
                self.kill9(id);
                panic!("member {id} printed no ready line within 60 s");
            }
        }
    }

    /// SIGKILL member `id` (a crash).
    pub fn kill9(&mut self, id: u64) {
        if let Some(mut c) = self.members.remove(&id) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends `signal` to member `id` (SIGSTOP, SIGCONT).
    pub fn signal(&self, id: u64, signal: i32) {
        let pid = self.members[&id].id() as i32;
        // SAFETY: signalling our own child process.
        unsafe {
            libc::kill(pid, signal);
        }
    }

    /// `ordo admin COMMAND...` on member `id`: its exit code and its answer line.
    pub fn admin(&self, id: u64, command: &[&str]) -> (i32, String) {
        let out = Command::new(ordo_bin())
            .args(["admin", "--data-dir"])
            .arg(self.data_dir(id))
            .args(command)
            .output()
            .expect("run ordo admin");
        (
            out.status.code().unwrap_or(-1),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout).trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        )
    }

    /// Member `id`'s status, None when it does not answer.
    pub fn status(&self, id: u64) -> Option<Status> {
        status_in(&self.data_dir(id))
    }

    /// Waits until one of `among` leads and serves FIX, and every other one of them follows it
    /// in its term; returns the leader's id.
    pub fn leader_among(&self, among: &[u64], within: Duration) -> u64 {
        let deadline = Instant::now() + within;
        let mut last = Vec::new();
        while Instant::now() < deadline {
            last = among.iter().map(|&id| (id, self.status(id))).collect::<Vec<_>>();
            let leaders: Vec<(u64, u64)> = last
                .iter()
                .filter_map(|(id, s)| {
                    s.as_ref()
                        .filter(|s| s.role == "leader" && s.serving)
                        .map(|s| (*id, s.term))
                })
                .collect();
            if let [(leader, term)] = leaders[..] {
                let agreed = last.iter().all(|(_, s)| {
                    s.as_ref()
                        .is_some_and(|s| s.term == term && s.leader == Some(leader))
                });
                if agreed {
                    return leader;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("no agreed leader among {among:?} within {within:?}: {last:?}");
    }

    /// Waits until every member of `among` has committed at least `seq`.
    pub fn committed_on(&self, among: &[u64], seq: u64, within: Duration) {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if among
                .iter()
                .all(|&id| self.status(id).is_some_and(|s| s.committed_seq >= seq))
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("seq {seq} not committed on all of {among:?} within {within:?}");
    }

    /// `ordo journal diff --committed` of members `a` and `b`: its exit code and output.
    pub fn diff_committed(&self, a: u64, b: u64) -> (i32, String) {
        let out = Command::new(ordo_bin())
            .args(["journal", "diff", "--committed"])
            .arg(self.data_dir(a).join("journal"))
            .arg(self.data_dir(b).join("journal"))
            .output()
            .expect("run ordo journal diff");
        (
            out.status.code().unwrap_or(-1),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for (_, mut c) in std::mem::take(&mut self.members) {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.aeron);
    }
}

/// A TCP front door for clients that know one address only (QuickFIX's initiator through
/// `qf_client.py`): each connection it accepts is joined to the FIX port of the member that
/// leads and serves at that moment (asked with `ordo admin status`), and closed when that side
/// closes. A client that reconnects after a failover thus reaches the new leader, as it would
/// through a venue's load balancer or its own list of hosts.
pub struct LeaderProxy {
    /// The port clients connect to.
    pub port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// How long the proxy looks for a serving leader for one connection before it closes it.
const PROXY_LEADER_WAIT: Duration = Duration::from_secs(10);

impl Cluster {
    /// Starts a [`LeaderProxy`] in front of this cluster's members.
    pub fn leader_proxy(&self) -> LeaderProxy {
        let members: Vec<(PathBuf, u16)> = self
            .fix_ports
            .iter()
            .map(|(&id, &port)| (self.data_dir(id), port))
            .collect();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("proxy port");
        listener.set_nonblocking(true).expect("non-blocking accept");
        let port = listener.local_addr().expect("proxy address").port();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = std::sync::Arc::clone(&stop);
        std::thread::spawn(move || {
            while !stopping.load(std::sync::atomic::Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let members = members.clone();
                        std::thread::spawn(move || join_to_leader(client, &members));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        LeaderProxy { port, stop }
    }
}

impl Drop for LeaderProxy {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// What `ordo admin status` says of the member whose data directory is `dir`; None when it
/// does not answer.
fn status_in(dir: &Path) -> Option<Status> {
    let out = Command::new(ordo_bin())
        .args(["admin", "--data-dir"])
        .arg(dir)
        .arg("status")
        .output()
        .ok()?;
    Status::parse(String::from_utf8_lossy(&out.stdout).trim())
}

/// The FIX port of the member that leads and serves now, if one does.
fn serving_leader(members: &[(PathBuf, u16)]) -> Option<u16> {
    members.iter().find_map(|(dir, port)| {
        let status = status_in(dir)?;
        (status.role == "leader" && status.serving).then_some(*port)
    })
}

/// Joins `client` to the serving leader's FIX port and copies bytes both ways until either
/// side closes; then closes both.
fn join_to_leader(client: std::net::TcpStream, members: &[(PathBuf, u16)]) {
    let deadline = Instant::now() + PROXY_LEADER_WAIT;
    let upstream = loop {
        if let Some(s) =
            serving_leader(members).and_then(|port| std::net::TcpStream::connect(("127.0.0.1", port)).ok())
        {
            break s;
        }
        if Instant::now() > deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let pump = |mut from: std::net::TcpStream, mut to: std::net::TcpStream| {
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut from, &mut to);
            let _ = from.shutdown(std::net::Shutdown::Both);
            let _ = to.shutdown(std::net::Shutdown::Both);
        })
    };
    let (Ok(c2), Ok(u2)) = (client.try_clone(), upstream.try_clone()) else {
        return;
    };
    let a = pump(client, upstream);
    let b = pump(u2, c2);
    let _ = a.join();
    let _ = b.join();
}
