"""One exception type for every mistake a *user* can make.

Bad input (a malformed recipe, a broken JSONL line, a missing file, a checkpoint for another
model) is not a bug in minift, so it should not end in a traceback. Library code raises
``MiniftError`` with a one-line message that names the file, line or field and what is allowed;
the CLI (``minift/cli.py``) catches it, prints ``minift: error: <message>`` to stderr and exits
with status 2, the Unix convention for "you called me wrong".

Programming errors (a shape mismatch inside the model, say) stay ordinary exceptions: they are
ours to fix and their traceback is useful.
"""


class MiniftError(Exception):
    """A user-facing error: the message alone must tell the user what to fix."""
