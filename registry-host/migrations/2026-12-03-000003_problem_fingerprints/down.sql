ALTER TABLE problems DROP COLUMN fingerprint;
