DROP TABLE watchers;
DROP TABLE source_status;
DROP TABLE catalogue_state;
