//! Logging through the host. Messages are attributed to the plugin (and tenant) by the host,
//! which may truncate long messages or drop them when a plugin logs too much.

pub use crate::bindings::host::textnlp::plugin::log::Level;

/// Sends one message to the host log.
pub fn log(level: Level, message: &str) {
    crate::bindings::host::textnlp::plugin::log::log(level, message);
}
/// Logs at `trace` level.
pub fn trace(message: &str) {
    log(Level::Trace, message);
}
/// Logs at `debug` level.
pub fn debug(message: &str) {
    log(Level::Debug, message);
}
/// Logs at `info` level.
pub fn info(message: &str) {
    log(Level::Info, message);
}
/// Logs at `warn` level.
pub fn warn(message: &str) {
    log(Level::Warn, message);
}
/// Logs at `error` level.
pub fn error(message: &str) {
    log(Level::Error, message);
}
