"""nxlog, fcntl, zstandard and pyarrow: imported where they are installed."""

import functools

try:
    import nxlog
except ImportError:  # run as a command (python3 SCRIPT.py check), not by NXLog
    nxlog = None
try:
    import fcntl
except ImportError:  # Windows: no advisory locks; one instance per folder is up to the user
    fcntl = None
try:
    import zstandard
except ImportError:
    zstandard = None


@functools.lru_cache(maxsize=None)
def parquet_library():
    """pyarrow, with its compute, json and parquet modules, imported at its first use (it
    takes some 50 MB, which only Parquet batches need); None where it is not installed."""
    try:
        import pyarrow.compute
        import pyarrow.json
        import pyarrow.parquet
    except ImportError:
        return None
    return pyarrow
