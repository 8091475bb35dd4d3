//! Offline reports over a spampot data directory.
//!
//! This crate reads what the honeypot wrote (`spampot.db`, the zstd blobs)
//! and builds the tables CERT.br's SpamPots reports showed (summary, emails
//! per ASN and country, TCP ports, request types, months) plus an analysis of
//! the captured bodies (domains, campaigns, languages). It does not depend on
//! the `spampot` host crate, so it builds and tests without wasmtime; the
//! `spampot report` and `spampot gen-fixture` subcommands call into it.
//!
//! Entry points: [`build_report`] then [`render`]; [`fixture::generate`] for
//! synthetic data directories; [`enrich::Enricher`] for IP → AS/country.
//! The JSON shape and the source of every number are in `docs/report.md`.

pub mod body;
pub mod db;
pub mod enrich;
mod error;
pub mod fixture;
pub mod render;
pub mod report;
mod time;

pub use enrich::{AsInfo, Enricher, EnrichmentPaths};
pub use error::ReportError;
pub use render::{Format, TABLE_NAMES, render};
pub use report::{Report, ReportOptions, build_report};
pub use time::{TimeBound, parse_since, parse_until};

/// Result type of this crate.
pub type Result<T, E = ReportError> = std::result::Result<T, E>;
