"""Storage: local paths and s3:// behind one API, content-addressed scene bundles, run folders and their
records, listing runs."""
