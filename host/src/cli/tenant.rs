//! `textnlp tenant ...` and `textnlp key ...`: tenants and API keys in the host's state
//! database, for an operator at the machine. The database allows one process at a time:
//! while a server runs, use its admin API (`/v1/admin/...`) instead.

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use crate::paths;
use crate::tenancy::{Scope, Tenancy, TenantLimits, keys, now};

/// Where the state database is.
#[derive(Debug, Args)]
struct StateArgs {
    /// The host's state [default: $TEXTNLP_HOME/state]
    #[arg(long, value_name = "DIR", global = true)]
    state_dir: Option<PathBuf>,
}

impl StateArgs {
    fn open(&self) -> Result<Tenancy> {
        let dir = self.state_dir.clone().unwrap_or_else(paths::state_dir);
        let db = sled::open(&dir).with_context(|| {
            format!(
                "opening {} (while `textnlp serve` runs, use its /v1/admin API)",
                dir.display()
            )
        })?;
        Ok(Tenancy::open(&db)?)
    }
}

#[derive(Debug, Args)]
pub struct TenantArgs {
    #[command(flatten)]
    state: StateArgs,
    #[command(subcommand)]
    command: TenantCommand,
}

#[derive(Debug, Subcommand)]
enum TenantCommand {
    /// Create a tenant.
    Create {
        /// Its id: a-z, 0-9, `_`, `-` (names its plugin namespace).
        id: String,
        /// A display name [default: the id].
        #[arg(long)]
        name: Option<String>,
        /// Requests per minute (0: unlimited).
        #[arg(long, default_value_t = 600)]
        requests_per_minute: u64,
        /// Tokens per minute: prompt + max_tokens of each request (0: unlimited).
        #[arg(long, default_value_t = 200_000)]
        tokens_per_minute: u64,
        /// Sequences generating at once.
        #[arg(long, default_value_t = 32)]
        max_sequences: u32,
        /// Records one dataset job may ask for.
        #[arg(long, default_value_t = 10_000)]
        max_job_records: u64,
        /// Memory of one plugin instance at most (MiB).
        #[arg(long, default_value_t = 256)]
        plugin_memory_mib: u32,
        /// Deadline of one plugin call at most (ms).
        #[arg(long, default_value_t = 30_000)]
        plugin_timeout_ms: u32,
    },
    /// List the tenants.
    List,
    /// Delete a tenant and revoke its keys.
    Delete { id: String },
}

#[derive(Debug, Args)]
pub struct KeyArgs {
    #[command(flatten)]
    state: StateArgs,
    #[command(subcommand)]
    command: KeyCommand,
}

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// Create a key for a tenant and print it (the only time it is shown).
    Create {
        #[arg(long)]
        tenant: String,
        /// Comma-separated: admin, generate, jobs, plugins:install, read.
        #[arg(long, value_delimiter = ',', required = true)]
        scopes: Vec<String>,
        #[arg(long, default_value = "")]
        name: String,
        /// Expire after this long (e.g. `90d`, `12h`).
        #[arg(long, value_name = "DURATION")]
        expires_in: Option<humantime::Duration>,
    },
    /// List keys (public ids only).
    List {
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Revoke a key by its id (the 12 hex digits after `tnlp_`).
    Revoke { id: String },
    /// Print a fresh key in the key format without storing it (for
    /// `TEXTNLP_ADMIN_KEY` in automated deployments).
    Generate,
}

pub fn run_tenant(args: TenantArgs) -> Result<()> {
    let tenancy = args.state.open()?;
    match args.command {
        TenantCommand::Create {
            id,
            name,
            requests_per_minute,
            tokens_per_minute,
            max_sequences,
            max_job_records,
            plugin_memory_mib,
            plugin_timeout_ms,
        } => {
            let limits = TenantLimits {
                requests_per_minute: (requests_per_minute > 0).then_some(requests_per_minute),
                tokens_per_minute: (tokens_per_minute > 0).then_some(tokens_per_minute),
                max_concurrent_sequences: max_sequences,
                max_job_records,
                plugin_memory_mib,
                plugin_timeout_ms,
            };
            let name = name.unwrap_or_else(|| id.clone());
            let tenant = tenancy.create_tenant("cli", &id, &name, limits)?;
            println!("{}", serde_json::to_string_pretty(&tenant)?);
        }
        TenantCommand::List => {
            for t in tenancy.store().tenants()? {
                println!("{}", serde_json::to_string(&t)?);
            }
        }
        TenantCommand::Delete { id } => {
            tenancy.delete_tenant("cli", &id)?;
            println!("deleted tenant {id} (its keys are revoked)");
        }
    }
    Ok(())
}

pub fn run_key(args: KeyArgs) -> Result<()> {
    let open = || args.state.open();
    match args.command {
        KeyCommand::Create {
            tenant,
            scopes,
            name,
            expires_in,
        } => {
            let scopes = scopes
                .iter()
                .map(|s| s.parse::<Scope>())
                .collect::<Result<BTreeSet<_>, _>>()?;
            let expires_at = expires_in.map(|d| now().saturating_add(d.as_secs()));
            let (key, full) = open()?.create_key("cli", &tenant, &name, scopes, expires_at)?;
            eprintln!("key {} for tenant {tenant}; shown this once:", key.id);
            println!("{full}");
        }
        KeyCommand::List { tenant } => {
            for key in open()?.store().keys(tenant.as_deref())? {
                println!("{}", key.summary());
            }
        }
        KeyCommand::Revoke { id } => {
            open()?.revoke_key("cli", &id)?;
            println!("revoked {}", keys::visible_prefix(&id));
        }
        KeyCommand::Generate => println!("{}", keys::generate().1),
    }
    Ok(())
}
