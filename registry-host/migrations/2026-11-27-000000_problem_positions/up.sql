-- Where in the file a problem is, when known exactly (syntax errors). Expand-only.
ALTER TABLE problems ADD COLUMN line INTEGER;
ALTER TABLE problems ADD COLUMN col INTEGER;
