-- Expand. What a broken task's problems were found at: the entry's fingerprint and the
-- identity of the rules it was checked with. While both stay the same, the task is not
-- read again (an unchanged resync reads no file, broken tasks included). NULL: not a
-- broken task's load (a scan's issue, a failure worth retrying), or written before.
ALTER TABLE problems ADD COLUMN fingerprint TEXT;
