"""civicbot: a civic assistant that answers questions about public policy documents."""

__version__ = "0.1.0"

import os as _os

# llama.cpp's threads busy-wait for each other at OpenMP barriers; on a machine whose cores are
# shared (a library's spare PC, CI) that stalls generation for seconds. libgomp reads this once,
# when the first library that uses it loads (torch does, via sentence-transformers), so it has
# to be set before any of them is imported. A value set by the user wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
