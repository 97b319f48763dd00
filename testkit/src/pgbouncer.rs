//! A PgBouncer in transaction pooling mode in front of the test server, for the leak tests.
//!
//! `PGBOUNCER_URL` names one when set (it must forward every database to the server of
//! `DATABASE_URL`). Otherwise the first test that asks starts one from the `pgbouncer` binary
//! (Debian package `pgbouncer`) with its files in the system's temporary folder
//! (`tenancy-test-pgbouncer-PORT`), and later runs reuse it while it answers. Not under
//! `target/`: as root PgBouncer runs as `postgres`, which may not reach into the checkout (a
//! clone in a folder of mode 700 is one).

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::sync::OnceCell;

static POOLER: OnceCell<String> = OnceCell::const_new();

fn find_binary() -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|d| d.join("pgbouncer"))
        .find(|p| p.is_file())
}

fn answers(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(300)).is_ok()
}

/// The URL of a PgBouncer (transaction mode) in front of the test server, with `database`
/// in place of the URL's database.
pub async fn pgbouncer_url(database: &str) -> Result<String> {
    let base = POOLER.get_or_try_init(start).await?;
    let mut u = url::Url::parse(base)?;
    u.set_path(database);
    Ok(u.to_string())
}

async fn start() -> Result<String> {
    if let Ok(url) = std::env::var("PGBOUNCER_URL") {
        return Ok(url);
    }
    let server = url::Url::parse(&crate::admin_url().await?)?;
    let binary = find_binary().context(
        "the PgBouncer tests need PgBouncer: install it (Debian: apt-get install pgbouncer) \
         or set PGBOUNCER_URL to one in transaction mode in front of DATABASE_URL's server",
    )?;
    // One port per upstream server, so a reused pooler always points at the right one.
    let upstream_port = server.port().unwrap_or(5432);
    let port = 16_000 + upstream_port % 10_000;
    let dir = std::env::temp_dir().join(format!("tenancy-test-pgbouncer-{port}"));
    std::fs::create_dir_all(&dir)?;
    let user = server.username().to_owned();
    let url = format!("postgres://{user}@127.0.0.1:{port}/postgres");
    if answers(port) {
        return Ok(url);
    }
    let password = server.password().unwrap_or("");
    std::fs::write(
        dir.join("userlist.txt"),
        format!("\"{user}\" \"{password}\"\n"),
    )?;
    std::fs::write(
        dir.join("pgbouncer.ini"),
        format!(
            "[databases]\n* = host={host} port={upstream_port}\n\n[pgbouncer]\n\
             listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n\
             auth_type = trust\nauth_file = {dir}/userlist.txt\n\
             pool_mode = transaction\ndefault_pool_size = 4\nmax_client_conn = 500\n\
             server_reset_query = DEALLOCATE ALL\nserver_reset_query_always = 1\n\
             ignore_startup_parameters = extra_float_digits,options\n\
             logfile = {dir}/pgbouncer.log\npidfile = {dir}/pgbouncer.pid\n",
            host = server.host_str().unwrap_or("127.0.0.1"),
            dir = dir.display(),
        ),
    )?;
    let mut cmd = Command::new(&binary);
    cmd.arg("-d");
    if tenancy_core::embedded::running_as_root() {
        // PgBouncer will not run as root; let it switch to the postgres user.
        cmd.args(["-u", "postgres"]);
        Command::new("chmod")
            .args(["-R", "a+rwX"])
            .arg(&dir)
            .status()?;
    }
    let status = cmd
        .arg(dir.join("pgbouncer.ini"))
        .status()
        .context("starting pgbouncer")?;
    if !status.success() {
        bail!(
            "pgbouncer failed to start ({status}); see {}/pgbouncer.log",
            dir.display()
        );
    }
    for _ in 0..50 {
        if answers(port) {
            return Ok(url);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!(
        "pgbouncer did not answer on port {port}; see {}/pgbouncer.log",
        dir.display()
    )
}
