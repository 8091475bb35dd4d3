use std::path::PathBuf;

/// Everything that can go wrong building a report or a fixture.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("database {path}: {source}")]
    Db {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("no spampot database at {path} (start the honeypot once on the directory)")]
    NoDatabase { path: PathBuf },
    #[error("{path} is not a spampot database (foreign application_id)")]
    NotSpampotDb { path: PathBuf },
    #[error("{path}:{line}: {msg}")]
    Parse {
        path: PathBuf,
        line: usize,
        msg: String,
    },
    #[error("{path}: {source}")]
    Mmdb {
        path: PathBuf,
        source: maxminddb::MaxMindDbError,
    },
    #[error("invalid --{what} {value:?}: expected RFC 3339 (2026-11-27T04:40:21Z) or YYYY-MM-DD")]
    BadTime { what: &'static str, value: String },
    #[error("unknown table {0:?}; one of: {tables}", tables = crate::render::TABLE_NAMES.join(", "))]
    UnknownTable(String),
    #[error("{0}")]
    Invalid(String),
    #[error("writing the report: {0}")]
    Output(#[source] std::io::Error),
}

impl ReportError {
    pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> ReportError + use<> {
        let path = path.to_path_buf();
        move |source| ReportError::Io { path, source }
    }

    pub(crate) fn db(path: &std::path::Path) -> impl Fn(rusqlite::Error) -> ReportError + use<> {
        let path = path.to_path_buf();
        move |source| ReportError::Db {
            path: path.clone(),
            source,
        }
    }
}
