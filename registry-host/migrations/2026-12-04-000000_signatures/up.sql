-- Who published each version: the signature stored with the content (minisign text, as
-- published), the trusted key it verified against (NULL: signed by a key the policy does
-- not trust) and when that verification was made (Unix milliseconds). No row: unsigned.
CREATE TABLE version_signatures (
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    signature TEXT NOT NULL,
    signer_key_id TEXT,
    verified_at BIGINT,
    PRIMARY KEY (name, version)
);
-- Per origin: the trusted key whose signature of its content verified, and the trust
-- policy it was judged under (a policy change makes the origin judged again).
ALTER TABLE origins ADD COLUMN signer_key_id TEXT;
ALTER TABLE origins ADD COLUMN judged_under TEXT NOT NULL DEFAULT '';
