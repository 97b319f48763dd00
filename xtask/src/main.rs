//! The workspace's own tasks, run as `cargo xtask <task>` (the alias is in `.cargo/config.toml`).
//!
//! - `cargo xtask test [ARGS...]`: sets up what the tests need, then runs
//!   `cargo test --workspace --all-features [ARGS...]`. This is the README's test command.
//! - `cargo xtask setup`: only the set-up (CI runs it before its other steps).
//!
//! The set-up, so that the test command works on a fresh machine:
//! - **PostgreSQL.** `DATABASE_URL` names the server. When it is unset and we run as root, the
//!   machine's own cluster on 127.0.0.1:5432 is used (PostgreSQL refuses to run as root, so
//!   the tests' embedded server cannot serve root); when unset and not root, the tests start
//!   an embedded server themselves. A loopback server that does not answer is started with
//!   `pg_ctlcluster` where the machine has it (Debian's clusters); otherwise the task stops and
//!   says what to set.
//! - **PgBouncer**, for the leak tests through a transaction pooler. `PGBOUNCER_URL` names one;
//!   otherwise the `pgbouncer` binary must be installed. As root with `apt-get`, the task
//!   installs the Debian package; otherwise it stops at once with the one line to run.
//! - **Citus** 13.2.2, for the shared-schema and separate-schema suites on a Citus cluster of
//!   the tests' own. When `citus.so` is missing from `pg_config --pkglibdir`, the task builds
//!   it from the source tarball in `TENANCY_CITUS_SOURCE` (a folder holding
//!   `citus-13.2.2.tar.gz` and the PostgreSQL 15.20 patch; default: `../shared/citus` beside
//!   the workspace, then `/work/shared/citus`) and installs it, as root, with the build packages from `apt-get`: once
//!   per machine, about a minute on two idle cores. Otherwise it stops with the line to run.
//!   `CITUS_URL` (a coordinator of the user's own, which the suites then use) skips it.
//! - **Chromium and ChromeDriver**, for the page tests (the explorer and the API page in a
//!   real headless browser). `CHROMEDRIVER` and `CHROMIUM` name them; otherwise
//!   `/usr/bin/chromedriver` and `/usr/bin/chromium`, installed the same way (Debian's
//!   `chromium` and `chromium-driver`).
//!
//! No dependencies: it builds in seconds, before anything else.

use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

/// The machine's cluster, used as root when `DATABASE_URL` is unset.
const MACHINE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

const USAGE: &str =
    "usage: cargo xtask test [ARGS...]   set up, then cargo test --workspace --all-features ARGS
       cargo xtask setup            only the set-up (PostgreSQL, PgBouncer, Citus, Chromium)";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let result = match args.next().as_deref() {
        Some("test") => setup().and_then(|()| test(args.collect())),
        Some("setup") => setup(),
        Some("--help" | "-h" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => Err(USAGE.to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

fn log(what: &str) {
    eprintln!("==> {what}");
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn setup() -> Result<(), String> {
    postgres()?;
    pgbouncer()?;
    citus()?;
    chromium()
}

fn test(extra: Vec<String>) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    log("cargo test --workspace --all-features");
    let mut cmd = Command::new(cargo);
    cmd.args(["test", "--workspace", "--all-features"])
        .args(extra);
    if std::env::var_os("DATABASE_URL").is_none() && is_root() {
        cmd.env("DATABASE_URL", MACHINE_URL);
    }
    let status = cmd.status().map_err(|e| format!("cannot run cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("the tests failed ({status})"))
    }
}

// --- PostgreSQL -----------------------------------------------------------------------------------

/// Host and port of a `postgres://` URL (defaults: localhost, 5432).
fn host_port(url: &str) -> (String, u16) {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = match host_port.strip_prefix('[') {
        // [v6]:port
        Some(v6) => match v6.split_once(']') {
            Some((h, p)) => (h.to_owned(), p.trim_start_matches(':').parse().ok()),
            None => (v6.to_owned(), None),
        },
        None => match host_port.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), p.parse().ok()),
            None => (host_port.to_owned(), None),
        },
    };
    let port = port.unwrap_or(5432);
    (
        if host.is_empty() {
            "localhost".into()
        } else {
            host
        },
        port,
    )
}

fn answers(host: &str, port: u16) -> bool {
    (host, port)
        .to_socket_addrs()
        .map(|mut addrs| {
            addrs.any(|a| TcpStream::connect_timeout(&a, Duration::from_millis(500)).is_ok())
        })
        .unwrap_or(false)
}

fn postgres() -> Result<(), String> {
    let url = match std::env::var("DATABASE_URL") {
        Ok(url) => url,
        Err(_) if is_root() => MACHINE_URL.to_owned(),
        Err(_) => {
            log("PostgreSQL: DATABASE_URL is unset; the tests start an embedded server");
            return Ok(());
        }
    };
    let (host, port) = host_port(&url);
    if answers(&host, port) {
        log(&format!("PostgreSQL answers on {host}:{port}"));
        return Ok(());
    }
    let loopback = matches!(host.as_str(), "127.0.0.1" | "localhost" | "::1");
    if loopback && start_machine_cluster(port) {
        for _ in 0..30 {
            if answers(&host, port) {
                log(&format!("PostgreSQL started on {host}:{port}"));
                return Ok(());
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    Err(format!(
        "no PostgreSQL answers on {host}:{port} (from DATABASE_URL or the default {MACHINE_URL}): \
         start one, or set DATABASE_URL to a server the tests may create databases on"
    ))
}

/// Starts a Debian cluster on `port` with `pg_ctlcluster`; whether it tried.
fn start_machine_cluster(port: u16) -> bool {
    let Ok(versions) = std::fs::read_dir("/etc/postgresql") else {
        return false;
    };
    for version in versions.flatten() {
        let Ok(clusters) = std::fs::read_dir(version.path()) else {
            continue;
        };
        for cluster in clusters.flatten() {
            let conf = cluster.path().join("postgresql.conf");
            let text = std::fs::read_to_string(&conf).unwrap_or_default();
            let cluster_port = text
                .lines()
                .filter_map(|l| l.trim().strip_prefix("port"))
                .filter_map(|l| l.trim_start().strip_prefix('='))
                .filter_map(|v| v.split('#').next()?.trim().parse::<u16>().ok())
                .next_back()
                .unwrap_or(5432);
            if cluster_port != port {
                continue;
            }
            let (v, c) = (version.file_name(), cluster.file_name());
            log(&format!(
                "starting PostgreSQL cluster {} {}",
                v.to_string_lossy(),
                c.to_string_lossy()
            ));
            return Command::new("pg_ctlcluster")
                .arg("--skip-systemctl-redirect")
                .arg(&v)
                .arg(&c)
                .arg("start")
                .status()
                .is_ok_and(|s| s.success());
        }
    }
    false
}

// --- PgBouncer ------------------------------------------------------------------------------------

fn pgbouncer_binary() -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|d| d.join("pgbouncer"))
        .find(|p| p.is_file())
}

fn pgbouncer() -> Result<(), String> {
    if std::env::var_os("PGBOUNCER_URL").is_some() {
        log("PgBouncer: PGBOUNCER_URL is set");
        return Ok(());
    }
    if let Some(binary) = pgbouncer_binary() {
        log(&format!("PgBouncer: {}", binary.display()));
        return Ok(());
    }
    apt_install(
        "PgBouncer (the leak tests run through it)",
        &["pgbouncer"],
        "or install pgbouncer another way, or set PGBOUNCER_URL to one in transaction mode",
    )?;
    match pgbouncer_binary() {
        Some(binary) => {
            log(&format!("PgBouncer: installed {}", binary.display()));
            Ok(())
        }
        None => Err("installing pgbouncer gave no pgbouncer binary".into()),
    }
}

/// Installs Debian `packages` with `apt-get` as root; otherwise stops with the line to run.
fn apt_install(what: &str, packages: &[&str], otherwise: &str) -> Result<(), String> {
    let line = format!("sudo apt-get install {}", packages.join(" "));
    let apt = Command::new("apt-get").arg("--version").output().is_ok();
    if !(apt && is_root()) {
        return Err(format!(
            "{what} is missing: run `{line}` ({otherwise}), then `cargo xtask test` again"
        ));
    }
    log(&format!("installing {} (apt-get)", packages.join(" ")));
    let ok = Command::new("apt-get")
        .args(["update", "-qq"])
        .status()
        .is_ok_and(|s| s.success())
        && Command::new("apt-get")
            .args(["install", "-y", "-qq"])
            .args(packages)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "installing {what} failed: run `{line}` and try again"
        ))
    }
}

// --- Citus ----------------------------------------------------------------------------------------

const CITUS_TARBALL: &str = "citus-13.2.2.tar.gz";
const CITUS_PATCH: &str = "pg15.20-have_createdb_privilege.patch";
/// What Citus needs to build (its README), from Debian's packages.
const CITUS_BUILD_PACKAGES: &[&str] = &[
    "postgresql-server-dev-15",
    "libcurl4-openssl-dev",
    "liblz4-dev",
    "libzstd-dev",
    "libkrb5-dev",
    "libssl-dev",
    "libselinux1-dev",
    "libxslt1-dev",
    "libpam0g-dev",
    "libreadline-dev",
    "libicu-dev",
    "uuid-dev",
    "autoconf",
    "flex",
    "make",
    "gcc",
];

fn pg_config(flag: &str) -> Option<PathBuf> {
    let out = Command::new("pg_config").arg(flag).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (out.status.success() && !text.is_empty()).then(|| PathBuf::from(text))
}

/// The folder with Citus' source tarball and patch: `TENANCY_CITUS_SOURCE`, or the first of
/// `../shared/citus` beside the workspace and `/work/shared/citus` that holds the tarball.
fn citus_source() -> PathBuf {
    if let Some(dir) = std::env::var_os("TENANCY_CITUS_SOURCE") {
        return PathBuf::from(dir);
    }
    let beside: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/citus")
        .components()
        .collect();
    [beside.clone(), PathBuf::from("/work/shared/citus")]
        .into_iter()
        .find(|d| d.join(CITUS_TARBALL).is_file())
        .unwrap_or(beside)
}

fn citus() -> Result<(), String> {
    if std::env::var_os("CITUS_URL").is_some() {
        log("Citus: CITUS_URL is set");
        return Ok(());
    }
    let Some(libdir) = pg_config("--pkglibdir") else {
        return Err("pg_config is not on PATH: install PostgreSQL's server packages".into());
    };
    if libdir.join("citus.so").is_file() {
        log(&format!("Citus: {}", libdir.join("citus.so").display()));
        return Ok(());
    }
    let source = citus_source();
    let line = format!(
        "sudo cargo xtask setup (it builds Citus from {} into {})",
        source.display(),
        libdir.display()
    );
    if !source.join(CITUS_TARBALL).is_file() || !source.join(CITUS_PATCH).is_file() {
        return Err(format!(
            "Citus is not installed and its source is not at {} ({CITUS_TARBALL} and \
             {CITUS_PATCH}): set TENANCY_CITUS_SOURCE to the folder that holds them, or \
             set CITUS_URL to a Citus coordinator of your own",
            source.display()
        ));
    }
    if !is_root() {
        return Err(format!("Citus is not installed: run `{line}`"));
    }
    apt_install(
        "Citus' build packages",
        CITUS_BUILD_PACKAGES,
        "they build Citus from source",
    )?;
    let build = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/citus-build");
    log(&format!(
        "building Citus from {} in {} (about a minute on two idle cores, once per machine)",
        source.display(),
        build.display()
    ));
    let script = format!(
        "set -e; rm -rf '{b}'; mkdir -p '{b}'; cd '{b}'; tar xzf '{t}'; cd citus-13.2.2; \
         patch -p1 < '{p}'; ./configure PG_CONFIG='{c}' >configure.log; \
         make -j2 with_llvm=no >make.log; make install with_llvm=no >install.log",
        b = build.display(),
        t = source.join(CITUS_TARBALL).display(),
        p = source.join(CITUS_PATCH).display(),
        c = pg_config("--bindir")
            .map(|d| d.join("pg_config"))
            .unwrap_or_else(|| PathBuf::from("pg_config"))
            .display(),
    );
    let ok = Command::new("bash")
        .args(["-c", &script])
        .status()
        .is_ok_and(|s| s.success());
    if ok && libdir.join("citus.so").is_file() {
        log(&format!(
            "Citus: installed {}",
            libdir.join("citus.so").display()
        ));
        Ok(())
    } else {
        Err(format!(
            "building Citus failed (logs in {}/citus-13.2.2): run `{line}` after fixing it",
            build.display()
        ))
    }
}

// --- Chromium and ChromeDriver -----------------------------------------------------------------

fn chromium() -> Result<(), String> {
    let path = |var: &str, default: &str| {
        PathBuf::from(std::env::var(var).unwrap_or_else(|_| default.to_owned()))
    };
    let driver = path("CHROMEDRIVER", "/usr/bin/chromedriver");
    let browser = path("CHROMIUM", "/usr/bin/chromium");
    if !(driver.is_file() && browser.is_file()) {
        apt_install(
            "Chromium with ChromeDriver (the page tests drive it)",
            &["chromium", "chromium-driver"],
            "or set CHROMEDRIVER and CHROMIUM to a ChromeDriver and its browser",
        )?;
    }
    if driver.is_file() && browser.is_file() {
        log(&format!(
            "Chromium: {} with {}",
            browser.display(),
            driver.display()
        ));
        Ok(())
    } else {
        Err(format!(
            "no Chromium at {} or no ChromeDriver at {}: set CHROMIUM and CHROMEDRIVER",
            browser.display(),
            driver.display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::host_port;

    #[test]
    fn host_and_port_come_from_the_url() {
        assert_eq!(
            host_port("postgres://postgres@127.0.0.1:5432/postgres"),
            ("127.0.0.1".into(), 5432)
        );
        assert_eq!(
            host_port("postgres://u:p@db.example:6543/x?sslmode=disable"),
            ("db.example".into(), 6543)
        );
        assert_eq!(
            host_port("postgres://localhost/x"),
            ("localhost".into(), 5432)
        );
        assert_eq!(host_port("postgres://[::1]:5433/x"), ("::1".into(), 5433));
        assert_eq!(host_port("postgres://[::1]/x"), ("::1".into(), 5432));
    }
}
