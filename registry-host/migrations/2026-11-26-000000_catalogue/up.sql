-- The catalogue. Portable SQL: the same migration runs on SQLite and PostgreSQL.
-- Times are Unix milliseconds (BIGINT). JSON documents are canonical JSON text.

CREATE TABLE sources (
    name         TEXT PRIMARY KEY NOT NULL,
    kind         TEXT NOT NULL,
    location     TEXT NOT NULL,
    first_seen   BIGINT NOT NULL,
    last_scan_at BIGINT,
    last_status  TEXT
);

-- One row per task name; the UUID belongs to the name for good.
CREATE TABLE tasks (
    name       TEXT PRIMARY KEY NOT NULL,
    uuid       TEXT NOT NULL,
    first_seen BIGINT NOT NULL
);
CREATE INDEX tasks_uuid ON tasks (uuid);

-- Every version ever seen. Never deleted: a version no source offers is unavailable.
CREATE TABLE task_versions (
    name               TEXT NOT NULL REFERENCES tasks (name),
    version            TEXT NOT NULL,
    digest             TEXT NOT NULL,
    uuid               TEXT NOT NULL,
    metadata           TEXT NOT NULL,
    script             TEXT NOT NULL,
    input_schema       TEXT,
    output_schema      TEXT,
    tests              TEXT NOT NULL,
    available          BOOLEAN NOT NULL,
    first_seen         BIGINT NOT NULL,
    last_seen          BIGINT NOT NULL,
    missing_since      BIGINT,
    content_updated_at BIGINT NOT NULL,
    PRIMARY KEY (name, version)
);

-- Which (source, locator) offers which version, with what content and fingerprint.
CREATE TABLE origins (
    source      TEXT NOT NULL REFERENCES sources (name),
    locator     TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    name        TEXT NOT NULL,
    version     TEXT NOT NULL,
    digest      TEXT NOT NULL,
    first_seen  BIGINT NOT NULL,
    last_seen   BIGINT NOT NULL,
    PRIMARY KEY (source, locator),
    FOREIGN KEY (name, version) REFERENCES task_versions (name, version)
);
CREATE INDEX origins_version ON origins (name, version);

-- Runs that wrote something (an unchanged resync writes nothing, not even here).
CREATE TABLE sync_runs (
    id          TEXT PRIMARY KEY NOT NULL,
    started_at  BIGINT NOT NULL,
    finished_at BIGINT NOT NULL,
    status      TEXT NOT NULL,
    added       INTEGER NOT NULL,
    updated     INTEGER NOT NULL,
    unchanged   INTEGER NOT NULL,
    missing     INTEGER NOT NULL,
    revived     INTEGER NOT NULL,
    invalid     INTEGER NOT NULL,
    conflicts   INTEGER NOT NULL,
    sources     TEXT NOT NULL
);

-- Current problems, keyed by (source, locator); locator '' is the source as a whole.
CREATE TABLE problems (
    source     TEXT NOT NULL,
    locator    TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    severity   TEXT NOT NULL,
    code       TEXT NOT NULL,
    message    TEXT NOT NULL,
    file       TEXT,
    pointer    TEXT,
    first_seen BIGINT NOT NULL,
    PRIMARY KEY (source, locator, seq)
);

-- Current conflicts: one version offered with different contents.
CREATE TABLE conflicts (
    name        TEXT NOT NULL,
    version     TEXT NOT NULL,
    strategy    TEXT NOT NULL,
    kept_digest TEXT,
    detail      TEXT NOT NULL,
    first_seen  BIGINT NOT NULL,
    last_seen   BIGINT NOT NULL,
    PRIMARY KEY (name, version)
);
