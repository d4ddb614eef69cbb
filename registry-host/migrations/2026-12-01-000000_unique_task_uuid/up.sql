-- One UUID belongs to one name, enforced by the database: two runs planned at the same
-- moment can no longer both store a UUID for different names (the second one's write
-- fails, and it plans again against what the first one stored).
CREATE UNIQUE INDEX tasks_uuid_unique ON tasks (uuid);
DROP INDEX tasks_uuid;
