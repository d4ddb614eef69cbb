-- Expand. The events of each run that wrote the catalogue (a JSON array, as `/v1/events`
-- sends them), keyed by the generation it made, with the process that wrote it: every
-- `serve` replica relays the runs other processes applied (it polls the generation), so
-- an edit synced on any host reaches every replica's event streams. Kept for an hour.
CREATE TABLE catalogue_events (
    generation BIGINT PRIMARY KEY NOT NULL,
    process_id TEXT,
    written_at BIGINT NOT NULL,
    events     TEXT NOT NULL
);
