//! `modelfs doctor [MOUNTPOINT] [--json]`: prints the checks of `modelfs::doctor` and exits 0 only
//! if none failed (warnings do not change the exit status).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use modelfs::doctor::{self, Status};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A modelfs mountpoint to check too: live, stale ("transport endpoint is not connected") or
    /// hung.
    mountpoint: Option<PathBuf>,
    /// Print the checks as a JSON array of {name, status, finding, fix}.
    #[arg(long)]
    json: bool,
}

pub fn run(store_dir: &Path, args: Args) -> anyhow::Result<ExitCode> {
    let checks = doctor::run(store_dir, args.mountpoint.as_deref());
    if args.json {
        out!("{}", serde_json::to_string_pretty(&checks)?);
    } else {
        let width = checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
        for check in &checks {
            let status = match check.status {
                Status::Ok => "ok",
                Status::Warn => "warn",
                Status::Fail => "FAIL",
            };
            out!("{status:<5} {:<width$}  {}", check.name, check.finding);
            if check.status != Status::Ok && !check.fix.is_empty() {
                out!("{:<5} {:<width$}  fix: {}", "", "", check.fix);
            }
        }
        let count = |status| checks.iter().filter(|c| c.status == status).count();
        match (count(Status::Fail), count(Status::Warn)) {
            (0, 0) => out!("all well"),
            (0, warnings) => out!("no problems; {warnings} warning(s)"),
            (failures, warnings) => out!("{failures} problem(s), {warnings} warning(s)"),
        }
    }
    Ok(match doctor::all_well(&checks) {
        true => ExitCode::SUCCESS,
        false => ExitCode::FAILURE,
    })
}
