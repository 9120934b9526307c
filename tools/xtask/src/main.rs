//! The README's two commands.
//!
//! * `cargo xtask demo`: installs what is missing, builds in release mode and runs `ordo demo`:
//!   a 3-member local cluster driven by `ordo loadgen`, its leader killed midway, ending with the
//!   `DEMO ...` line (orders, acknowledged, lost, duplicates, failover time, latency).
//! * `cargo xtask test`: installs what is missing, then runs `cargo fmt --check`, clippy with
//!   `-D warnings` and the whole test suite (cargo-nextest), ending with the runner's summary.
//!   Exits non-zero if any step fails.
//!
//! Installation is idempotent, quick when everything is present, and says what it installs:
//! Debian packages through apt-get, cmake >= 3.30 from PyPI into a venv under `target/tools/`
//! (Debian 12's cmake is too old for Aeron's C build), cargo-nextest from crates.io.
//!
//! Only the standard library is used, so this compiles in a second on a fresh machine.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// Debian packages the build needs (Aeron's C client and driver through rusteron: bindgen needs
/// libclang, the crates link -lbsd and -luuid).
const DEBIAN_PACKAGES: &[&str] = &["libclang-dev", "libbsd-dev", "uuid-dev"];
/// Oldest cmake that builds Aeron 1.54.
const CMAKE_MIN: (u32, u32) = (3, 30);
/// The QuickFIX Python binding ../shared/fix/README.md names.
const QUICKFIX_VERSION: &str = "1.16.0";

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let root = workspace_root();
    let result = match args.first().map(String::as_str) {
        Some("demo") => demo(&root, &args[1..]),
        Some("test") => test(&root, &args[1..]),
        Some("setup") => setup(&root).map(|_| ()),
        _ => {
            eprintln!(
                "usage: cargo xtask <command>\n\n\
                 commands:\n  \
                 demo    install what is missing, build (release) and run `ordo demo` (3 members, a failover)\n  \
                 test    install what is missing, run fmt, clippy and the whole test suite\n  \
                 setup   only install what is missing"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn workspace_root() -> PathBuf {
    // tools/xtask -> the workspace root.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("xtask lives two levels below the root")
        .to_path_buf()
}

/// Runs a command, echoing it; Err if it cannot start or exits non-zero.
fn run(cmd: &mut Command) -> Result<(), String> {
    eprintln!("xtask: $ {}", describe(cmd));
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run {}: {e}", describe(cmd)))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{} failed ({status})", describe(cmd)))
    }
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

fn output_of(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The environment every later step runs in: the tools venv first on PATH.
struct Env {
    path: String,
}

impl Env {
    fn cargo(&self, root: &Path) -> Command {
        let mut cmd = Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.current_dir(root).env("PATH", &self.path);
        cmd
    }
}

fn setup(root: &Path) -> Result<Env, String> {
    ensure_debian_packages()?;
    let venv = root.join("target").join("tools").join("venv");
    ensure_cmake(&venv)?;
    let path = format!(
        "{}:{}",
        venv.join("bin").display(),
        env::var("PATH").unwrap_or_default()
    );
    let env = Env { path };
    ensure_nextest(&env, root)?;
    Ok(env)
}

fn ensure_debian_packages() -> Result<(), String> {
    let missing: Vec<&str> = DEBIAN_PACKAGES
        .iter()
        .copied()
        .filter(|pkg| {
            output_of(Command::new("dpkg-query").args(["-W", "-f=${Status}", pkg]))
                .is_none_or(|status| !status.contains("install ok installed"))
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("xtask: installing Debian packages: {}", missing.join(" "));
    let sudo = !is_root();
    let apt = |args: &[&str]| {
        let mut cmd = if sudo {
            Command::new("sudo")
        } else {
            Command::new("apt-get")
        };
        if sudo {
            cmd.arg("apt-get");
        }
        cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        cmd
    };
    run(&mut apt(&["update", "-qq"]))?;
    let mut install = apt(&["install", "-y", "-qq", "--no-install-recommends"]);
    install.args(&missing);
    run(&mut install)
}

fn is_root() -> bool {
    output_of(Command::new("id").arg("-u")).is_some_and(|uid| uid.trim() == "0")
}

fn cmake_version(cmake: &Path) -> Option<(u32, u32)> {
    let out = output_of(Command::new(cmake).arg("--version"))?;
    let version = out.split_whitespace().nth(2)?;
    let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
    Some((parts.next()??, parts.next()??))
}

fn ensure_cmake(venv: &Path) -> Result<(), String> {
    let cmake = venv.join("bin").join("cmake");
    if cmake_version(&cmake).is_some_and(|v| v >= CMAKE_MIN) {
        return Ok(());
    }
    eprintln!(
        "xtask: installing cmake >= {}.{} from PyPI into {}",
        CMAKE_MIN.0,
        CMAKE_MIN.1,
        venv.display()
    );
    if !venv.join("bin").join("pip").exists() {
        run(Command::new("python3").arg("-m").arg("venv").arg(venv))?;
    }
    run(Command::new(venv.join("bin").join("pip")).args([
        "install",
        "--quiet",
        "--disable-pip-version-check",
        &format!("cmake>={}.{}", CMAKE_MIN.0, CMAKE_MIN.1),
    ]))?;
    match cmake_version(&cmake) {
        Some(v) if v >= CMAKE_MIN => Ok(()),
        other => Err(format!(
            "cmake in {} is {other:?} after installing",
            venv.display()
        )),
    }
}

/// The QuickFIX Python binding the FIX test peers (`../shared/fix/qf_client.py`) need. PyPI has
/// only the sdist for 1.16.0: pip compiles it (about 5.5 minutes on 2 cores) and caches the wheel.
fn ensure_quickfix(venv: &Path) -> Result<(), String> {
    let python = venv.join("bin").join("python");
    let probe = output_of(Command::new(&python).args([
        "-c",
        "import importlib.metadata as m; print(m.version('quickfix'))",
    ]));
    if probe.is_some_and(|v| v.trim() == QUICKFIX_VERSION) {
        return Ok(());
    }
    eprintln!(
        "xtask: installing quickfix=={QUICKFIX_VERSION} from PyPI into {} (compiles C++: ~5 minutes)",
        venv.display()
    );
    run(Command::new(venv.join("bin").join("pip")).args([
        "install",
        "--quiet",
        "--disable-pip-version-check",
        &format!("quickfix=={QUICKFIX_VERSION}"),
    ]))
}

fn ensure_nextest(env: &Env, root: &Path) -> Result<(), String> {
    if output_of(env.cargo(root).args(["nextest", "--version"])).is_some() {
        return Ok(());
    }
    eprintln!("xtask: installing cargo-nextest from crates.io");
    run(env.cargo(root).args(["install", "--locked", "cargo-nextest"]))
}

/// The main job: `ordo demo` from a release build: the 3-member local cluster
/// (`tests/cluster/local3.toml`, FIX on 127.0.0.1:9881-9883) in a temporary directory, driven by
/// `ordo loadgen`, its leader killed with SIGKILL midway; it ends with the `DEMO ...` line.
/// Extra arguments go to `ordo demo` (e.g. `--rate 20000 --duration-s 30`).
fn demo(root: &Path, extra: &[String]) -> Result<(), String> {
    let env = setup(root)?;
    run(env.cargo(root).args(["build", "--release", "--bin", "ordo"]))?;
    let ordo = root.join("target").join("release").join("ordo");
    run(Command::new(&ordo).arg("demo").args(extra))
}

fn test(root: &Path, extra: &[String]) -> Result<(), String> {
    let env = setup(root)?;
    ensure_quickfix(&root.join("target").join("tools").join("venv"))?;
    let mut failures = Vec::new();
    if let Err(e) = run(env.cargo(root).args(["fmt", "--all", "--", "--check"])) {
        failures.push(e);
    }
    if let Err(e) =
        run(env
            .cargo(root)
            .args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))
    {
        failures.push(e);
    }
    // The workspace tests start the real `ordo` binary, built as it ships (release): three
    // cluster members and a load generator on two cores, twenty failovers in one test, need the
    // product's speed, not a debug build's (tests/src/lib.rs takes ORDO_BIN).
    run(env.cargo(root).args(["build", "--release", "--bin", "ordo"]))?;
    let ordo = root.join("target").join("release").join("ordo");
    let tests = run(env
        .cargo(root)
        .env("ORDO_BIN", &ordo)
        .args(["nextest", "run", "--workspace", "--no-fail-fast"])
        .args(extra));
    for f in &failures {
        eprintln!("xtask: FAILED before the tests: {f}");
    }
    tests?;
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!("{} check(s) failed", failures.len()))
    }
}
