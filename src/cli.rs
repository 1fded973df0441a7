//! The command line (clap): `serve`, `check-config`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::app::{shutdown_signal, App};
use crate::config::Settings;

#[derive(Debug, Parser)]
#[command(
    name = "attrsync",
    version,
    about = "Writes CRM data into live Genesys Cloud conversations as participant attributes"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service.
    Serve {
        /// A TOML file layered over the embedded defaults (also ATTRSYNC_CONFIG).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Print the effective configuration (secrets redacted) and exit non-zero if it is invalid.
    CheckConfig {
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { config } => match Settings::load(config.as_deref()) {
            Ok(settings) => {
                print!("{}", settings.redacted_toml());
                eprintln!("configuration is valid");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("attrsync: {e}");
                ExitCode::from(2)
            }
        },
        Command::Serve { config } => {
            let settings = match Settings::load(config.as_deref()) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("attrsync: {e}");
                    return ExitCode::from(2);
                }
            };
            run_async(async move {
                crate::telemetry::init(&settings.telemetry);
                let app = App::build(settings).await?;
                app.run_until_stopped(shutdown_signal()).await
            })
        }
    }
}

fn run_async(fut: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("attrsync: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(fut) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = ?e, "attrsync failed");
            eprintln!("attrsync: {e:#}");
            ExitCode::FAILURE
        }
    }
}
