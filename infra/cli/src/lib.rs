//! The operator CLI, `flexbridge`: everything a seller's engineer does by hand, without
//! touching DynamoDB or SQS directly. It reaches the deployed stack (or the local one) with
//! the standard AWS credentials and region (and `AWS_ENDPOINT_URL` for moto), and finds the
//! stack's resources from its name ([`resolve`]). The domain lives in `flexbridge::operate`;
//! this crate parses, calls it and prints.

pub mod commands;
pub mod doctor;
pub mod resolve;

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

pub use clap;
pub use commands::Ctx;

#[derive(Parser, Debug)]
#[command(
    name = "flexbridge",
    version,
    about = "Operate a flexbridge stack: status, settings, hubs, uploads, shipments, halted pushes, DLQs, the secret, fresh links, doctor",
    after_help = "The stack is found by name (--stack or FLEXBRIDGE_STACK) with the standard AWS \
credentials and region (AWS_PROFILE, AWS_REGION, ...; AWS_ENDPOINT_URL for a local moto). \
Commands that ask Amazon (hubs add, reconcile) use the SP-API credentials in the stack's secret, SPAPI_REGION \
(default na) and, locally, SPAPI_ENDPOINT / LWA_ENDPOINT. See docs/runbook.md."
)]
pub struct Cli {
    /// The CloudFormation stack name flexbridge was deployed as (`sam deploy --stack-name`).
    #[arg(long, env = "FLEXBRIDGE_STACK", global = true)]
    pub stack: Option<String>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Per location: last successful order poll, order and push lag, halted pushes; queue and
    /// DLQ depths; how busy the shared SP-API rate limits are.
    Status {
        /// Redraw it every `--interval` seconds until Ctrl-C.
        #[arg(long)]
        watch: bool,
        #[arg(long, default_value_t = 10)]
        interval: u64,
        /// Stop after this many frames (for scripts and tests).
        #[arg(long, hide = true)]
        times: Option<u32>,
    },
    /// Read, change and audit the seller's settings (every change is validated and logged).
    #[command(subcommand)]
    Settings(SettingsCmd),
    /// Map warehouse hubs to Amazon locations (checked with Amazon before they are enabled).
    #[command(subcommand)]
    Hubs(HubsCmd),
    /// Upload a catalog, price or inventory file, wait for its report and print it.
    Upload {
        /// The CSV file.
        file: PathBuf,
        #[arg(long, value_enum)]
        kind: UploadKind,
        /// A full file: for a catalog (`catalog/full/`) SKUs it does not list are disabled; for
        /// stock (`inventory/full/<hub>/`, with `--hub`) the hub's SKUs it does not list become 0.
        #[arg(long)]
        full: bool,
        /// The warehouse hub a full stock file covers.
        #[arg(long)]
        hub: Option<String>,
        /// How long to wait for the report.
        #[arg(long, default_value_t = 120)]
        wait_secs: u64,
    },
    /// A shipment: where it is and its history.
    Shipment {
        /// Amazon's shipment ID.
        id: String,
    },
    /// Halted inventory pushes (the safety breaker): list, release or discard.
    #[command(subcommand)]
    Inventory(InventoryCmd),
    /// Messages parked in dead-letter queues: read them, send them back.
    #[command(subcommand)]
    Dlq(DlqCmd),
    /// Read Amazon's stock back now and correct what drifted (through the safety breaker).
    Reconcile,
    /// Check the stack end to end, one line per check (ok, or what is wrong and how to fix
    /// it): the SP-API secret and Login with Amazon, each API family (a missing role by name),
    /// locations, notifications, the webhook, the alarm e-mail, schedules, DLQs, the inventory
    /// push. Exits 1 when a check fails.
    Doctor,
    /// The stack's secret: fill the SP-API credentials (keeping the keys), print or rotate the
    /// warehouse or webhook HMAC key (docs/deploy.md, step 5; docs/keys.md).
    #[command(subcommand)]
    Secret(SecretCmd),
    /// A fresh presigned link (the ones in events live only as long as the credentials that
    /// signed them: an hour in Lambda).
    #[command(subcommand)]
    Link(LinkCmd),
}

#[derive(Subcommand, Debug)]
pub enum SecretCmd {
    /// Put the SP-API credentials in FILE (a JSON object of any of client_id, client_secret,
    /// refresh_token, seller_id, application_id) into the secret as a new version; every other
    /// field, the signing key included, is kept. Prints the names of the fields it changed.
    Set {
        file: PathBuf,
        /// Put it even though a key's rotation window is open (the new version ends it: the
        /// key from before that rotation stops counting at once).
        #[arg(long)]
        end_window: bool,
    },
    /// Print a key (the current one): the warehouse key goes into your warehouse system, the
    /// webhook key into your webhook receiver.
    ShowKey {
        #[arg(value_enum)]
        key: KeyName,
    },
    /// Put a new random key for one side alone (the other key and the credentials are kept),
    /// or `both`: a new signing key both are derived from. The old key counts for 24 hours
    /// more (docs/keys.md).
    Rotate {
        #[arg(value_enum)]
        key: RotateKey,
        /// Take the new key (warehouse or webhook) from this file instead of a random one
        /// (e.g. a key your systems already hold).
        #[arg(long)]
        from_file: Option<PathBuf>,
        /// Rotate even though a key's rotation window is open (ends it, see `set`).
        #[arg(long)]
        end_window: bool,
    },
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyName {
    /// The key the warehouse signs its requests with.
    Warehouse,
    /// The key flexbridge signs webhook deliveries with.
    Webhook,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotateKey {
    Warehouse,
    Webhook,
    /// Both keys at once (a new `signing_key`).
    Both,
}

impl KeyName {
    pub fn role(self) -> flexbridge::warehouse::keys::KeyRole {
        match self {
            KeyName::Warehouse => flexbridge::warehouse::keys::KeyRole::Warehouse,
            KeyName::Webhook => flexbridge::warehouse::keys::KeyRole::Webhook,
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum LinkCmd {
    /// Links to a shipment's label and invoice files.
    Labels {
        /// Amazon's shipment ID.
        id: String,
    },
    /// A link to the daily health report.
    Report {
        /// `latest`, or the report's date (YYYY-MM-DD).
        #[arg(default_value = "latest")]
        date: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum SettingsCmd {
    /// Every setting (stored value or default), or one.
    Get { name: Option<String> },
    /// Change a setting. VALUE is JSON (`true`, `0.2`, `{"cheapest": {...}}`) or plain text.
    Set {
        name: String,
        value: String,
        /// Change it for one location only (per-location settings).
        #[arg(long)]
        location: Option<String>,
        /// Who makes the change (default $USER).
        #[arg(long, env = "USER")]
        by: Option<String>,
    },
    /// The change log of a setting (`hub:<locationId>` for a hub mapping), newest first.
    Log { name: String },
}

#[derive(Subcommand, Debug)]
pub enum HubsCmd {
    /// Every mapping.
    List,
    /// Add or change a mapping; Amazon must answer for the location before it is enabled.
    Add {
        /// Amazon's location ID (4 characters for Seller Flex).
        location_id: String,
        /// The warehouse hub's own code.
        #[arg(long)]
        hub: String,
        /// A readable name (default: the hub code).
        #[arg(long)]
        name: Option<String>,
        #[arg(long, env = "MARKETPLACE_ID", default_value = "ATVPDKIKX0DER")]
        marketplace: String,
        #[arg(long, value_enum, default_value_t = Channel::Fba)]
        channel: Channel,
        /// Do not accept Amazon's shipments for it (yet).
        #[arg(long)]
        no_orders: bool,
        /// Do not push its stock to Amazon (yet).
        #[arg(long)]
        no_inventory: bool,
        /// Do not handle its returns.
        #[arg(long)]
        no_returns: bool,
        #[arg(long, env = "USER")]
        by: Option<String>,
    },
    /// Switch orders, inventory and returns off for a location (the mapping stays).
    Disable {
        location_id: String,
        #[arg(long, env = "USER")]
        by: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum InventoryCmd {
    /// Halted pushes, per location.
    Halts,
    /// Push the halted change anyway, once.
    Release {
        location_id: String,
        #[arg(long, env = "USER")]
        by: Option<String>,
    },
    /// Drop the halted change; Amazon keeps what it has.
    Discard {
        location_id: String,
        #[arg(long, env = "USER")]
        by: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum DlqCmd {
    /// Depth of every DLQ and a look at the parked messages (why, which function, when).
    List {
        /// Only this queue (`UploadsQueue` or `UploadsDLQ`).
        queue: Option<String>,
        /// Messages to show per DLQ (at most 10).
        #[arg(long, default_value_t = 10)]
        max: i32,
    },
    /// Send what a DLQ holds now back to its queue (fix the cause first), with progress; a
    /// message that fails again meanwhile stays parked.
    Redrive {
        /// The queue (`UploadsQueue`) or its DLQ (`UploadsDLQ`).
        queue: String,
    },
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadKind {
    Catalog,
    Prices,
    Inventory,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    #[value(name = "FBA", alias = "fba")]
    Fba,
    #[value(name = "MFN", alias = "mfn")]
    Mfn,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Fba => "FBA",
            Channel::Mfn => "MFN",
        }
    }
}

#[derive(Debug)]
pub enum CliError {
    /// Bad arguments, `--help`, `--version`: clap prints and exits.
    Usage(clap::Error),
    Failed(anyhow::Error),
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::Usage(e) => write!(f, "{e}"),
            CliError::Failed(e) => write!(f, "{e:#}"),
        }
    }
}

impl std::error::Error for CliError {}

/// Parses `args` and runs the command with `vars` as its environment (the process's in
/// `main`; tests and the local main job pass their own). Returns what to print.
pub async fn run_with<I, T>(args: I, vars: HashMap<String, String>) -> Result<String, CliError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = Cli::try_parse_from(args).map_err(CliError::Usage)?;
    run(cli, vars).await.map_err(CliError::Failed)
}

pub async fn run(cli: Cli, vars: HashMap<String, String>) -> anyhow::Result<String> {
    let stack = cli
        .stack
        .clone()
        .or_else(|| vars.get("FLEXBRIDGE_STACK").cloned())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| anyhow::anyhow!("which stack? pass --stack NAME or set FLEXBRIDGE_STACK"))?;
    let ctx = Ctx::connect(&stack, vars).await?;
    if let Command::Doctor = cli.command {
        let report = doctor::run(&ctx).await?;
        let out = if cli.json {
            format!("{:#}\n", serde_json::to_value(&report)?)
        } else {
            report.text()
        };
        // A failed check fails the command (exit 1), with the whole report as the message.
        return if report.passed() {
            Ok(out)
        } else {
            Err(anyhow::anyhow!("{}", out.trim_end()))
        };
    }
    let out = commands::execute(&ctx, &cli.command).await?;
    Ok(if cli.json {
        format!("{:#}\n", out.json)
    } else {
        out.text
    })
}
