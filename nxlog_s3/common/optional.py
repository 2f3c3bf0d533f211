"""nxlog, fcntl, zstandard and pyarrow: imported where they are installed."""

import functools
import threading

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
    takes some 50 MB, which only Parquet batches need); None where it is not installed.

    Imported in a thread of its own: pyarrow's import takes the interpreter's lock through
    PyGILState_Ensure, which in a thread of NXLog's names the main interpreter, not the
    script's sub-interpreter, and waits for good: NXLog hung at the start of a writer with
    FORMAT=parquet. A thread the script starts belongs to its own interpreter."""
    imported = []

    def load():
        try:
            import pyarrow.compute
            import pyarrow.json
            import pyarrow.parquet
        except ImportError:
            return
        imported.append(pyarrow)

    loader = threading.Thread(target=load, daemon=True, name="pyarrow import")
    loader.start()
    loader.join()
    return imported[0] if imported else None
