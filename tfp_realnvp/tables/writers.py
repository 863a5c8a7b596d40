"""Writing rows to `.npy` or CSV (with a header of column names when known), atomically."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tfp_realnvp.files import atomic_write


def save_array(array: np.ndarray, path: str | os.PathLike,
               header: Sequence[str] | None = None) -> None:
    """Writes `.npy` or CSV by the file's extension, atomically (temp file, then rename).

    Args:
      array: the rows to write.
      path: `*.npy` for NumPy's format, anything else for CSV (8 significant digits).
      header: column names written as the CSV's first row (quoted where needed); None: no
        header. A `.npy` file has none.
    """
    path = Path(path)
    with atomic_write(path) as tmp:
        if path.suffix.lower() == ".npy":
            with open(tmp, "wb") as handle:
                np.save(handle, array)
            return
        first = ""
        if header is not None:
            line = io.StringIO()
            csv.writer(line, lineterminator="").writerow(header)
            first = line.getvalue()
        np.savetxt(tmp, array, delimiter=",", fmt="%.8g", header=first, comments="",
                   encoding="utf-8")
