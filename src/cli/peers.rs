//! `modelfs peers`: stores served on the LAN, and their models.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use modelfs::peer::discover;
use modelfs::peer::remote::Remote;
use modelfs::source::Source;

use super::net::NetArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON: [{"url", "store_id", "generation", "models"}].
    #[arg(long)]
    json: bool,
    /// Seconds to listen for answers.
    #[arg(long, value_name = "SECS", default_value_t = 3)]
    wait: u64,
    #[command(flatten)]
    net: NetArgs,
}

pub fn run(_store_dir: &Path, args: Args) -> anyhow::Result<ExitCode> {
    let http = args.net.http_options()?;
    let peers = discover::browse(Duration::from_secs(args.wait))?;
    let mut listed = Vec::new();
    for peer in peers {
        // What a peer holds is asked of the peer itself, not taken from its announcement.
        let models = Remote::open(&peer.url, http.clone())
            .and_then(|remote| remote.registry())
            .map(|registry| registry.models.into_keys().collect::<Vec<_>>());
        listed.push((peer, models));
    }
    if args.json {
        let rows: Vec<serde_json::Value> = listed
            .iter()
            .map(|(peer, models)| {
                serde_json::json!({
                    "url": peer.url,
                    "store_id": peer.store_id,
                    "generation": peer.generation,
                    "models": models.as_ref().ok(),
                    "error": models.as_ref().err().map(|e| e.to_string()),
                })
            })
            .collect();
        out!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    if listed.is_empty() {
        out!("no peers answered within {} s", args.wait);
    }
    for (peer, models) in &listed {
        match models {
            Ok(models) => out!(
                "{}  store {}  models: {}",
                peer.url,
                peer.store_id,
                models.join(", ")
            ),
            Err(e) => out!("{}  store {}  unreachable: {e}", peer.url, peer.store_id),
        }
    }
    Ok(ExitCode::SUCCESS)
}
