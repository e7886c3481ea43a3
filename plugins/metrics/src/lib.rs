//! Reference-exact text metrics, shared by the validator plugins.
//!
//! Pure Rust with no host or WIT dependency, so each metric is unit-tested natively against the
//! golden values of the Python packages it reproduces (`../shared/golden/metrics/`).

pub mod bleu;
pub mod distinct;
pub mod nltk_bleu;
pub mod porter;
pub mod rouge;
pub mod text;
