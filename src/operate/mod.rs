//! Changes to a live cluster, made by an operator: the [`ClusterActions`]
//! the console's dialogs and the `maintenance` command call, their
//! implementation over the adapters ([`LiveActions`]), and the audit file
//! every change is appended to ([`audit`]). The console only draws and
//! asks; what it changes goes through here.

mod actions;
pub mod audit;
mod live;

pub use actions::{ClusterActions, DeadLetter};
pub use audit::{AuditRecord, append_json_line, default_audit_path, operator};
pub use live::{LiveActions, to_console};
