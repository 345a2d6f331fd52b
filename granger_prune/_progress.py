"""Progress bars on long phases (tqdm), shown only when stderr is a terminal."""

import sys

from tqdm.auto import tqdm


def progress(iterable=None, *, desc, total=None, unit="it"):
    """``iterable`` wrapped in a tqdm bar on stderr: disabled when stderr is not a terminal
    (``disable=None``), and cleared when done (``leave=False``), so logs and the study's
    one line per run stay as they are."""
    return tqdm(iterable, desc=desc, total=total, unit=unit, leave=False, disable=None,
                file=sys.stderr, dynamic_ncols=True)
