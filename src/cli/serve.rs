//! `modelfs serve`: share this machine's store with peers on the LAN, read-only.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use ipnet::IpNet;
use modelfs::Access;
use modelfs::peer::rate::Rate;
use modelfs::peer::server::{self, ServeOptions};

use super::net::read_token;
use super::open_store;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address and port to listen on (port 0: any free port).
    #[arg(long, default_value = "0.0.0.0:7420")]
    listen: SocketAddr,
    /// Serve only these models, comma-separated [default: all].
    #[arg(long, value_delimiter = ',')]
    models: Vec<String>,
    /// Require `Authorization: Bearer TOKEN`, TOKEN being the first line of FILE.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Answer only these client networks, comma-separated CIDRs (e.g. 10.0.0.0/8,127.0.0.1/32).
    #[arg(long, value_delimiter = ',', value_name = "CIDR")]
    allow: Vec<IpNet>,
    /// Most bytes per second sent, all clients together, e.g. 20M (10^6) or 512Ki (2^10).
    #[arg(long, value_name = "RATE")]
    limit_rate: Option<Rate>,
    /// Do not announce the store on the LAN (mDNS).
    #[arg(long)]
    no_mdns: bool,
    /// Seconds after which a connection that makes no progress is closed.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    idle_timeout: u64,
}

pub fn run(store_dir: &Path, args: Args) -> anyhow::Result<ExitCode> {
    let store = open_store(store_dir, Access::Read)?;
    let registry = store.registry()?;
    for model in &args.models {
        anyhow::ensure!(
            registry.models.contains_key(model),
            "no model named {model:?} to serve; `modelfs ls` lists the models"
        );
    }
    let options = ServeOptions {
        models: (!args.models.is_empty()).then_some(args.models),
        token: args.token_file.as_deref().map(read_token).transpose()?,
        allow: args.allow,
        limit: args.limit_rate,
        idle_timeout: Duration::from_secs(args.idle_timeout.max(1)),
        announce: !args.no_mdns,
    };
    let listener = std::net::TcpListener::bind(args.listen)
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let root = store.root().to_owned();
    let shutdown = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            },
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    };
    server::serve(store, listener, options, shutdown, |address| {
        let mut stdout = std::io::stdout();
        let _ = writeln!(stdout, "serving {} at http://{address}", root.display());
        let _ = stdout.flush();
    })?;
    Ok(ExitCode::SUCCESS)
}
