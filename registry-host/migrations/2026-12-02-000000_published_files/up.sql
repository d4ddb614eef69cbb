-- The files of a task as its author published them, for layouts whose files are not the
-- catalogue's columns (`meta.yaml` and its script): a JSON object, path → contents. NULL
-- for `metadata.json` tasks, which the columns rebuild exactly. The columns (metadata,
-- schemas, tests as JSON) stay filled for every layout, so readers need not know layouts.
ALTER TABLE task_versions ADD COLUMN published_files TEXT;
