//! textnlp host library: the model runtime, the plugin host and the CLI behind `textnlp`.

pub mod api;
pub mod cli;
pub mod engine;
pub mod jobs;
pub mod model;
pub mod paths;
pub mod plugins;
pub mod tenancy;
pub mod text;
pub mod validation;
