ALTER TABLE task_versions DROP COLUMN published_files;
