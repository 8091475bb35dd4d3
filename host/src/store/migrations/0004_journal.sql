-- Migration 4: the journal batches are acknowledged on. See docs/store.md.
-- One row: the journal segment and the offset after the last batch whose
-- rows are in this database; a replay after a crash starts there.
CREATE TABLE journal (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    segment    INTEGER NOT NULL,
    end_offset INTEGER NOT NULL
);
