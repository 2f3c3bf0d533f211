"""`make scripts`: writes the shared block of src/shared.py into s3_write.py and s3_read.py.

The block is what stands between the markers `# ---- Shared with` and `# ---- End of the
shared code`, both lines included. Run it after every change to src/shared.py;
tests/test_shared_code.py fails while a script's copy differs.
"""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = ("s3_write.py", "s3_read.py")
START, END = "# ---- Shared with", "# ---- End of the shared code"


def block_span(text, name):
    """(start, end) of the shared block in TEXT, the file NAME."""
    try:
        start = text.index(START)
        end = text.index("\n", text.index(END, start)) + 1
    except ValueError:
        raise SystemExit("%s has no shared block (%r ... %r)" % (name, START, END)) from None
    return start, end


def shared_block(path):
    with open(path) as handle:
        text = handle.read()
    start, end = block_span(text, path)
    return text[start:end]


def embed(block, path):
    """Replaces PATH's shared block with BLOCK; whether the file changed."""
    with open(path) as handle:
        text = handle.read()
    start, end = block_span(text, path)
    new = text[:start] + block + text[end:]
    if new != text:
        with open(path, "w") as handle:
            handle.write(new)
    return new != text


def main():
    block = shared_block(os.path.join(ROOT, "src", "shared.py"))
    for name in SCRIPTS:
        if embed(block, os.path.join(ROOT, name)):
            print("%s: shared block written from src/shared.py" % name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
