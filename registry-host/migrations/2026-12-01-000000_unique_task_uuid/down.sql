CREATE INDEX tasks_uuid ON tasks (uuid);
DROP INDEX tasks_uuid_unique;
