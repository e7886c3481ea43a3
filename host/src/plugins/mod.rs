//! The wasmtime plugin host.
//!
//! - [`runtime`]: one wasmtime engine, limits, a sandboxed store per (tenant, plugin instance),
//!   the checks every component passes before it runs ([`PluginRuntime::prepare`]);
//! - [`kind`]: the plugin kinds and what each may import;
//! - [`manifest`]: the install-time manifest a plugin carries (`textnlp-plugin.json`);
//! - [`registry`]: the installed plugins, their components and grants (sled);
//! - [`catalog`]: which plugin a name means for a tenant (its own, shared, first-party),
//!   and the loaded validators, per tenant;
//! - [`bindings`]: the generated host bindings of each world;
//! - [`host`], [`model`], [`egress`]: the host interfaces (`log`, `config`, the model through
//!   the engine, outbound HTTP for providers);
//! - [`pool`]: ready instances per (tenant, plugin), so a call does not pay instantiation;
//! - [`tokenizer`], [`strategy`], [`validator`], [`provider`]: the host side of each world,
//!   checking every value a guest returns before it is used;
//! - [`error`]: [`PluginError`] and [`TrapKind`].

pub mod bindings;
pub mod catalog;
mod contract;
pub mod egress;
pub mod error;
mod host;
pub mod kind;
pub mod manifest;
pub mod model;
pub mod pool;
pub mod provider;
pub mod registry;
pub mod runtime;
pub mod strategy;
pub mod tokenizer;
pub mod validator;

pub use catalog::{Catalog, CatalogEntry, CatalogError, PluginScope};
pub use egress::{Credential, Egress};
pub use error::{PluginError, TrapKind};
pub use kind::PluginKind;
pub use manifest::{Capabilities, Manifest, ManifestError};
pub use model::{GenerationPolicy, ModelAccess, RemoteModel, TokenUsage};
pub use provider::ProviderPlugin;
pub use registry::{Entry, GrantRequest, Grants, Registry, RegistryError};
pub use runtime::{InstanceSpec, Limits, PluginRuntime};
pub use strategy::StrategyPlugin;
pub use tokenizer::{ChatMessage, DecoderHandle, SpecialTokens, TokenizerError, TokenizerPlugin};
pub use validator::ValidatorPlugin;
