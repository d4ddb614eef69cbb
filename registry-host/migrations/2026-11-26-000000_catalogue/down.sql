DROP TABLE conflicts;
DROP TABLE problems;
DROP TABLE sync_runs;
DROP TABLE origins;
DROP TABLE task_versions;
DROP TABLE tasks;
DROP TABLE sources;
