-- Expand. Each long-lived process (`watch`, `serve`) under its own identity: a UUIDv7 made
-- when it starts, with its host name and process id for people. `watchers` was keyed by
-- host name, so two watchers on one host overwrote each other's row; it is no longer
-- written, and a later migration drops it (older taskregs may still write it meanwhile).
-- A process refreshes its row while it runs and removes it when it ends; rows nobody
-- refreshed for a while (a process that was killed) are removed by the others.
CREATE TABLE processes (
    process_id    TEXT NOT NULL,
    role          TEXT NOT NULL,
    host          TEXT NOT NULL,
    pid           BIGINT NOT NULL,
    started_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    cache_hits    BIGINT NOT NULL,
    cache_misses  BIGINT NOT NULL,
    cache_entries BIGINT NOT NULL,
    PRIMARY KEY (process_id, role)
);
