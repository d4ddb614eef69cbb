-- Expand-only. Bumped by every run that writes the catalogue: a long-lived process keeps
-- its snapshot of the catalogue while the generation is the one it last wrote.
CREATE TABLE catalogue_state (
    id         INTEGER PRIMARY KEY NOT NULL,
    generation BIGINT NOT NULL
);
INSERT INTO catalogue_state (id, generation) VALUES (1, 0);

-- The latest scan of each source, written by every run (also one that changes nothing in
-- the catalogue): what `taskreg status` shows.
CREATE TABLE source_status (
    name        TEXT PRIMARY KEY NOT NULL,
    kind        TEXT NOT NULL,
    location    TEXT NOT NULL,
    scanned_at  BIGINT NOT NULL,
    status      TEXT NOT NULL,
    complete    BOOLEAN NOT NULL,
    rescanned   TEXT,
    duration_ms BIGINT NOT NULL,
    tasks       BIGINT NOT NULL,
    error       TEXT,
    last_ok_at  BIGINT,
    failures    BIGINT NOT NULL,
    last_error  TEXT,
    last_error_at BIGINT
);

-- Each long-lived process (`watch`, `serve --watch`) and its cache of checked tasks.
CREATE TABLE watchers (
    host         TEXT PRIMARY KEY NOT NULL,
    pid          BIGINT NOT NULL,
    started_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    cache_hits   BIGINT NOT NULL,
    cache_misses BIGINT NOT NULL,
    cache_entries BIGINT NOT NULL
);
