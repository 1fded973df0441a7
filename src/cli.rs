//! The command line (clap): `serve`, `check-config`, `demo`, `simulate-genesys` (with the CRM
//! and vendor CRM simulators beside it on request).

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
    /// Show the whole job with no Genesys account: a Genesys simulator, attrsync on the embedded
    /// defaults, a handful of realistic events, their before/after attributes and costs.
    Demo {
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Exit after the scripted events instead of serving until Ctrl-C.
        #[arg(long)]
        once: bool,
    },
    /// Serve the Genesys Cloud simulator (the API subset attrsync uses, plus a /sim admin API).
    SimulateGenesys(SimulateArgs),
}

#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// Address to serve the Genesys simulator on.
    #[arg(long, default_value = "127.0.0.1:9100", value_name = "ADDR")]
    pub listen: String,
    /// Also serve the CRM simulator (with sample customers) on this address.
    #[arg(long, value_name = "ADDR")]
    pub crm_listen: Option<String>,
    /// Also serve the Zendesk simulator (sample users; API token `sim-api-token` for
    /// `agent@example.com`) on this address, e.g. 127.0.0.1:9093.
    #[arg(long, value_name = "ADDR")]
    pub zendesk_listen: Option<String>,
    /// Also serve the HubSpot simulator (sample contacts; token `pat-na1-sim-token`) on this
    /// address, e.g. 127.0.0.1:9094.
    #[arg(long, value_name = "ADDR")]
    pub hubspot_listen: Option<String>,
    /// OAuth client id the token endpoint accepts.
    #[arg(long, default_value = "attrsync-sim", env = "SIM_CLIENT_ID")]
    pub client_id: String,
    /// OAuth client secret the token endpoint accepts.
    #[arg(
        long,
        default_value = "sim-secret",
        env = "SIM_CLIENT_SECRET",
        hide_env_values = true
    )]
    pub client_secret: String,
    /// Lifetime of issued tokens (Genesys allows 300 to 172800; default 86400).
    #[arg(long, default_value_t = 86_400)]
    pub token_lifetime_secs: u64,
    /// Requests per minute per token before 429 + Retry-After; 0 disables the limit.
    #[arg(long, default_value_t = 300)]
    pub rate_limit_per_minute: u32,
    /// Requests per minute for all tokens together (an org-wide cap); 0 (default) for none.
    #[arg(long, default_value_t = 0)]
    pub org_rate_limit_per_minute: u32,
    /// Latency added to every API request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Fraction of API requests answered 503 (0.0 to 1.0).
    #[arg(long, default_value_t = 0.0)]
    pub error_rate: f64,
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
        Command::Demo { config, once } => run_async(async move {
            crate::demo::run(crate::demo::DemoOptions {
                config: config.as_deref(),
                once,
            })
            .await
        }),
        Command::SimulateGenesys(args) => run_async(simulate(args)),
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
                let served = app.run_until_stopped(shutdown_signal()).await;
                crate::telemetry::flush_traces().await;
                served
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

async fn simulate(args: SimulateArgs) -> anyhow::Result<()> {
    use crate::simulator::{CrmSim, CrmSimConfig, GenesysSim, GenesysSimConfig};
    use anyhow::Context as _;

    crate::telemetry::init(&crate::config::TelemetrySettings {
        log_format: crate::config::LogFormat::Pretty,
        log_level: "info".to_owned(),
        redact: crate::redact::RedactMode::Mask,
        otlp_endpoint: String::new(),
    });
    if !(0.0..=1.0).contains(&args.error_rate) {
        anyhow::bail!("--error-rate must be between 0.0 and 1.0");
    }
    let config = GenesysSimConfig {
        client_id: args.client_id,
        client_secret: args.client_secret,
        token_lifetime: std::time::Duration::from_secs(args.token_lifetime_secs),
        rate_limit_per_minute: (args.rate_limit_per_minute > 0)
            .then_some(args.rate_limit_per_minute),
        org_rate_limit_per_minute: (args.org_rate_limit_per_minute > 0)
            .then_some(args.org_rate_limit_per_minute),
        extra_clients: Vec::new(),
        latency: std::time::Duration::from_millis(args.latency_ms),
        error_rate: args.error_rate,
    };
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("binding --listen {}", args.listen))?;
    let sim = GenesysSim::start(config, listener).await?;
    println!("Genesys Cloud simulator on {}", sim.base_url());
    println!(
        "  token:  POST {}/oauth/token (Basic client id:secret, grant_type=client_credentials)",
        sim.base_url()
    );
    println!(
        "  admin:  POST {}/sim/conversations  GET {}/sim/stats",
        sim.base_url(),
        sim.base_url()
    );
    let crm = match &args.crm_listen {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding --crm-listen {addr}"))?;
            let crm = CrmSim::start(CrmSimConfig::default(), listener).await?;
            for customer in CrmSim::sample_customers() {
                crm.insert(customer);
            }
            println!(
                "CRM simulator on {} (GET /api/customers?phone=...)",
                crm.base_url()
            );
            Some(crm)
        }
        None => None,
    };
    let vendors = vendor_simulators(
        args.zendesk_listen.as_deref(),
        args.hubspot_listen.as_deref(),
    )
    .await?;
    shutdown_signal().await;
    sim.shutdown();
    if let Some(crm) = crm {
        crm.shutdown();
    }
    for stop in vendors {
        stop();
    }
    Ok(())
}

/// The vendor CRM simulators asked for (`--zendesk-listen`, `--hubspot-listen`), seeded with
/// their samples; returns how to stop each.
async fn vendor_simulators(
    zendesk_listen: Option<&str>,
    hubspot_listen: Option<&str>,
) -> anyhow::Result<Vec<Box<dyn FnOnce()>>> {
    use crate::simulator::{HubSpotSim, HubSpotSimConfig, ZendeskSim, ZendeskSimConfig};
    use anyhow::Context as _;
    let mut stops: Vec<Box<dyn FnOnce()>> = Vec::new();
    if let Some(addr) = zendesk_listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding --zendesk-listen {addr}"))?;
        let sim = ZendeskSim::start(ZendeskSimConfig::default(), listener).await?;
        for user in ZendeskSim::sample_users() {
            sim.seed_user(user);
        }
        println!(
            "Zendesk simulator on {} (GET /api/v2/search.json?query=...)",
            sim.base_url()
        );
        stops.push(Box::new(move || sim.shutdown()));
    }
    if let Some(addr) = hubspot_listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding --hubspot-listen {addr}"))?;
        let sim = HubSpotSim::start(HubSpotSimConfig::default(), listener).await?;
        for contact in HubSpotSim::sample_contacts() {
            sim.seed_contact(contact);
        }
        println!(
            "HubSpot simulator on {} (POST /crm/v3/objects/contacts/search)",
            sim.base_url()
        );
        stops.push(Box::new(move || sim.shutdown()));
    }
    Ok(stops)
}
