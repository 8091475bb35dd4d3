-- Migration 5: who this store is. A random number drawn once, when the
-- store is made (or upgraded to this version), and never changed: a
-- collector's cursor carries it, so a sensor whose data directory was
-- replaced under the same name is told apart from the one the cursor was
-- made on (its row ids start again at 1). A copy restored from a backup
-- keeps it, as it keeps the rows. See docs/store.md.
CREATE TABLE store (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    identity INTEGER NOT NULL CHECK (identity <> 0)
);
INSERT INTO store (id, identity)
    VALUES (1, (SELECT CASE WHEN r = 0 THEN 1 ELSE r END FROM (SELECT random() AS r)));
