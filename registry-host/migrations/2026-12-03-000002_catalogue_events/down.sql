DROP TABLE catalogue_events;
