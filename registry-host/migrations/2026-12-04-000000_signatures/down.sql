ALTER TABLE origins DROP COLUMN judged_under;
ALTER TABLE origins DROP COLUMN signer_key_id;
DROP TABLE version_signatures;
