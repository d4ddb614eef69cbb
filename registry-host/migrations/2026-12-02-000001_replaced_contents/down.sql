DROP TABLE replaced_contents;
