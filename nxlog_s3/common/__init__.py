"""What s3_write.py and s3_read.py both hold: settings, runtime, S3, files, the object
format, metrics and the command frame."""
