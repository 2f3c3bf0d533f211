"""nxlog-s3, developed as a package and shipped as two generated drop-in scripts.

NXLog loads s3_write.py and s3_read.py, which `make scripts` (tools/amalgamate.py) writes
from these modules: common/ for what both need, writer/ and reader/ for the rest.
ARCHITECTURE.md says which part does what. Importing a module starts nothing.
"""
