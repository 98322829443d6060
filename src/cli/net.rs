//! Options shared by the commands that reach remote stores: `pull`, `import`, `mount`, `peers`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use modelfs::peer::client::HttpOptions;
use modelfs::peer::rate::{Rate, RateLimit};

#[derive(Debug, Clone, clap::Args)]
pub struct NetArgs {
    /// File whose first line is the bearer token the remote requires.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Seconds to wait for a remote to connect, answer, or send the next piece of a reply;
    /// a remote slower than that fails over to the next source.
    #[arg(
        long,
        visible_alias = "source-timeout",
        value_name = "SECS",
        default_value_t = 20
    )]
    timeout: u64,
    /// Most bytes per second read from remotes, e.g. 20M (10^6) or 512Ki (2^10).
    #[arg(long, value_name = "RATE")]
    limit_rate: Option<Rate>,
}

impl NetArgs {
    /// How remotes are reached.
    pub fn http_options(&self) -> anyhow::Result<HttpOptions> {
        Ok(HttpOptions {
            timeout: Duration::from_secs(self.timeout.max(1)),
            token: self.token_file.as_deref().map(read_token).transpose()?,
            limit: self.limit_rate.map(|rate| Arc::new(RateLimit::new(rate))),
        })
    }
}

/// The first line of a token file.
pub fn read_token(path: &std::path::Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the token file {}", path.display()))?;
    let token = text.lines().next().unwrap_or("").trim().to_owned();
    anyhow::ensure!(
        !token.is_empty() && token.bytes().all(|b| b.is_ascii_graphic()),
        "the token file {} must hold a token of printable characters on its first line",
        path.display()
    );
    Ok(token)
}
