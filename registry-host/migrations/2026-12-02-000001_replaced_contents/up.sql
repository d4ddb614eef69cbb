-- Contents a version had before an update replaced them (an author's edit in place, or a
-- conflict decided for new content): the history of a version, not only its present.
CREATE TABLE replaced_contents (
    name        TEXT NOT NULL,
    version     TEXT NOT NULL,
    digest      TEXT NOT NULL,
    replaced_at BIGINT NOT NULL,
    PRIMARY KEY (name, version, digest),
    FOREIGN KEY (name, version) REFERENCES task_versions (name, version)
);
