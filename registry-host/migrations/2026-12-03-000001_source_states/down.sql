DROP TABLE source_states;
