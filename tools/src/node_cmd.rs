//! `ordo node`: one node on embedded defaults or a configuration file.

use std::path::PathBuf;
use std::process::ExitCode;

use ordo_replica::cluster_file::ClusterFile;
use ordo_sequencer::config::NodeConfig;
use ordo_sequencer::member::cluster::ClusterSpec;

/// Arguments of `ordo node`.
#[derive(Debug, clap::Args)]
pub struct NodeArgs {
    /// Configuration file (TOML); default: the embedded configuration.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Data directory (journal, snapshots, admin socket); overrides the configuration.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// FIX listen address; overrides the configuration.
    #[arg(long)]
    pub listen: Option<std::net::SocketAddr>,
    /// Idle strategy of the sequencer and engine threads (spin, yield, backoff); overrides the
    /// configuration. `spin` needs a free core per spinning thread.
    #[arg(long)]
    pub idle: Option<String>,
    /// Threads of the sequencer and engine (shared, dedicated); overrides the configuration.
    #[arg(long)]
    pub pipeline: Option<String>,
    /// Journal durability before an ExecutionReport leaves (none, batch, interval:<us>);
    /// overrides the configuration.
    #[arg(long)]
    pub durability: Option<String>,
    /// Test-only echo application (QuickFIX acceptance suite): D and d are echoed back.
    #[arg(long)]
    pub echo: bool,
    /// Cluster file (TOML): run as member `--id` of the cluster it describes. Its node settings
    /// (sessions, instruments, limits) are those of `--config`; with none, the embedded
    /// defaults. FIX listens on the member's `fix` address.
    #[arg(long, requires = "id", conflicts_with_all = ["config", "listen", "echo"])]
    pub cluster: Option<PathBuf>,
    /// This member's id in the cluster file.
    #[arg(long, requires = "cluster")]
    pub id: Option<u64>,
    /// Where the member's embedded Aeron media driver keeps its files (default /dev/shm, else
    /// the temporary directory).
    #[arg(long, requires = "cluster")]
    pub aeron_dir: Option<PathBuf>,
}

/// The node settings and cluster spec of `--cluster FILE --id N`.
fn load_cluster(
    path: &std::path::Path,
    id: u64,
    args: &NodeArgs,
) -> Result<(NodeConfig, ClusterSpec), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    let file = ClusterFile::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let member = file
        .members
        .iter()
        .find(|m| m.id == id)
        .ok_or_else(|| format!("{}: no member with id {id}", path.display()))?
        .clone();
    // What is not [cluster] or [[member]] is the node configuration every member shares.
    let mut table: toml::Table = text.parse().map_err(|e| format!("{}: {e}", path.display()))?;
    table.remove("cluster");
    table.remove("member");
    let mut cfg = if table.is_empty() {
        NodeConfig::embedded()
    } else {
        NodeConfig::from_toml(&table.to_string()).map_err(|e| format!("{}: {e}", path.display()))?
    };
    cfg.listen = member.fix;
    cfg.data_dir = match (&args.data_dir, &member.data_dir) {
        (Some(d), _) => d.clone(),
        (None, Some(d)) => d.clone(),
        (None, None) => PathBuf::from(format!("ordo-data-m{id}")),
    };
    let aeron_root = args.aeron_dir.clone().unwrap_or_else(|| {
        let shm = std::path::Path::new("/dev/shm");
        if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        }
    });
    Ok((cfg, ClusterSpec { file, id, aeron_root }))
}

fn load(args: &NodeArgs) -> Result<(NodeConfig, Option<ClusterSpec>), String> {
    if let (Some(path), Some(id)) = (&args.cluster, args.id) {
        let (mut cfg, spec) = load_cluster(path, id, args)?;
        overrides(&mut cfg, args);
        return Ok((cfg, Some(spec)));
    }
    let mut cfg = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| format!("read {}: {e}", path.display()))?;
            NodeConfig::from_toml(&text).map_err(|e| format!("{}: {e}", path.display()))?
        }
        None => NodeConfig::embedded(),
    };
    if let Some(d) = &args.data_dir {
        cfg.data_dir = d.clone();
    }
    if let Some(l) = args.listen {
        cfg.listen = l;
    }
    overrides(&mut cfg, args);
    if args.echo {
        return Ok((cfg, None));
    }
    // A single node is a cluster of one, on the same code path as every member
    // (`docs/REPLICATION.md`, 7): its commit is its own append under its durability policy.
    let spec = ClusterSpec {
        file: ClusterFile::single(cfg.listen),
        id: 1,
        aeron_root: std::env::temp_dir(),
    };
    Ok((cfg, Some(spec)))
}

/// The flags every node takes over its configuration.
fn overrides(cfg: &mut NodeConfig, args: &NodeArgs) {
    if let Some(i) = &args.idle {
        cfg.idle = i.clone();
    }
    if let Some(p) = &args.pipeline {
        cfg.pipeline = p.clone();
    }
    if let Some(d) = &args.durability {
        cfg.durability = d.clone();
    }
}

/// Runs the node until SIGTERM or SIGINT.
pub fn run(args: &NodeArgs) -> ExitCode {
    let (cfg, cluster) = match load(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        // Bound now (a port in use is an error at once), listening once the node can answer.
        let port = ordo_sequencer::leader::fix_port::FixPort::bind(cfg.listen)
            .map_err(|e| format!("listen on {}: {e}", cfg.listen))?;
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
            let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
            tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
            let _ = tx.send(true);
        });
        if args.echo {
            let listener = port
                .listen()
                .map_err(|e| format!("listen on {}: {e}", cfg.listen))?;
            println!(
                "ordo node ready: FIX echo application on {} ({} session(s))",
                cfg.listen,
                cfg.sessions.len()
            );
            ordo_sequencer::node::run_echo(cfg, listener, rx).await;
            Ok(())
        } else {
            let spec = cluster.expect("every node but the echo application is a cluster member");
            ordo_sequencer::node::run_member(cfg, &spec, port, rx).await
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Arguments of `ordo admin`.
#[derive(Debug, clap::Args)]
pub struct AdminArgs {
    /// The node's data directory (where admin.sock and admin.token are).
    #[arg(long, default_value = "ordo-data")]
    pub data_dir: PathBuf,
    /// The command: `halt SYM`, `resume SYM`, `kill ACCOUNT on|off`,
    /// `limits ACCOUNT max_order_qty=N max_order_notional=N max_open_orders=N max_position=N credit_limit=N`,
    /// `add SYM tick=DECIMAL reference=DECIMAL [min_price= max_price= collar_bps= breaker_bps=
    /// breaker_window_s= breaker_halt_s=]`, `status`, `transfer-leader ID` (cluster members:
    /// hand leadership to member ID; answers `OK to= term= pause_ms= quiet_ms= caught_up_ms=`), `ping`.
    #[arg(required = true, num_args = 1..)]
    pub command: Vec<String>,
}

/// Sends one operator command to a running node. Exit 0 on OK, 1 on ERROR, 2 if unreachable.
pub fn admin(args: &AdminArgs) -> ExitCode {
    match ordo_sequencer::admin::request(&args.data_dir, &args.command.join(" ")) {
        Ok(answer) => {
            println!("{answer}");
            if answer.starts_with("OK") {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
