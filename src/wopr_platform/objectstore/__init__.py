"""Where backup archives are kept: a local directory (the default) or S3-compatible object storage."""
