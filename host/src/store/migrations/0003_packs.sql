-- Migration 3: artifact bodies in append-only pack files. See docs/store.md.
-- Rows with a NULL pack keep their body in the legacy blobs/ab/cd/<sha256>.zst.
ALTER TABLE artifacts ADD COLUMN pack INTEGER;
ALTER TABLE artifacts ADD COLUMN pack_offset INTEGER;

-- One row per pack file blobs/pack-<id, 6 digits>.pack; size is how many of
-- its bytes are committed (bytes past it are an uncommitted batch's tail).
CREATE TABLE packs (
    id          INTEGER PRIMARY KEY,
    size        INTEGER NOT NULL,
    created_at  TEXT NOT NULL
);
