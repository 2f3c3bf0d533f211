"""s3_write.py's parts, in the order the script holds them (tools/amalgamate.py)."""
