-- Migration 1: the tables. See docs/store.md for every column.
PRAGMA application_id = 1397772372;

CREATE TABLE sessions (
    session     TEXT PRIMARY KEY,
    sensor      TEXT,
    src_ip      TEXT,
    src_port    INTEGER,
    dst_port    INTEGER,
    plugin      TEXT,
    started_at  TEXT,
    ended_at    TEXT,
    duration_ms INTEGER,
    bytes_in    INTEGER,
    bytes_out   INTEGER,
    reason      TEXT
) WITHOUT ROWID;

CREATE TABLE requests (
    id          INTEGER PRIMARY KEY,
    session     TEXT,
    ts          TEXT NOT NULL,
    sensor      TEXT,
    src_ip      TEXT,
    dst_port    INTEGER,
    plugin      TEXT,
    module      TEXT,
    kind        TEXT,
    target_host TEXT,
    target_port INTEGER
);

CREATE TABLE credentials (
    id          INTEGER PRIMARY KEY,
    session     TEXT,
    ts          TEXT NOT NULL,
    sensor      TEXT,
    src_ip      TEXT,
    dst_port    INTEGER,
    plugin      TEXT,
    protocol    TEXT,
    mechanism   TEXT,
    username    TEXT,
    password    TEXT
);

CREATE TABLE artifacts (
    sha256      TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    size        INTEGER NOT NULL,
    stored_size INTEGER NOT NULL DEFAULT 0,
    stored      INTEGER NOT NULL DEFAULT 0,
    first_seen  TEXT NOT NULL,
    last_seen   TEXT NOT NULL,
    seen_count  INTEGER NOT NULL DEFAULT 1
) WITHOUT ROWID;

CREATE TABLE artifact_sightings (
    id          INTEGER PRIMARY KEY,
    sha256      TEXT NOT NULL REFERENCES artifacts(sha256),
    session     TEXT,
    ts          TEXT NOT NULL,
    sensor      TEXT,
    src_ip      TEXT,
    src_port    INTEGER,
    dst_port    INTEGER,
    plugin      TEXT,
    kind        TEXT NOT NULL,
    meta        TEXT NOT NULL
);

CREATE TABLE messages (
    id          INTEGER PRIMARY KEY,
    session     TEXT,
    ts          TEXT NOT NULL,
    sensor      TEXT,
    src_ip      TEXT,
    src_port    INTEGER,
    dst_port    INTEGER,
    plugin      TEXT,
    helo        TEXT,
    mail_from   TEXT,
    rcpt_count  INTEGER NOT NULL,
    size        INTEGER NOT NULL,
    sha256      TEXT NOT NULL REFERENCES artifacts(sha256),
    stored      INTEGER NOT NULL,
    via         TEXT,
    target_host TEXT,
    probe       INTEGER,
    queue_id    TEXT,
    persona     TEXT,
    extra_meta  TEXT
);

CREATE TABLE recipients (
    message_id  INTEGER NOT NULL REFERENCES messages(id),
    position    INTEGER NOT NULL,
    address     TEXT NOT NULL,
    PRIMARY KEY (message_id, position)
) WITHOUT ROWID;
