-- Expand. What a source keeps between processes, opaque to the host (the `http` source:
-- its index's ETag and the listing it stands for), so that a new process's first scan of
-- an unchanged registry costs one `304`. Written after a scan that answered, when it
-- changed; keyed by the source's name.
CREATE TABLE source_states (
    name       TEXT PRIMARY KEY NOT NULL,
    state      TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
