//! Reference-exact text metrics and MinHash deduplication, shared by the validator plugins and
//! the host (which links it natively for its dataset jobs).
//!
//! Pure Rust with no host or WIT dependency, so each metric is unit-tested natively against the
//! golden values of the Python packages it reproduces (`../shared/golden/metrics/`).

pub mod bleu;
pub mod dedup;
pub mod distinct;
pub mod nltk_bleu;
pub mod porter;
pub mod rouge;
pub mod text;
