"""Atomic file writes (a temporary path, then one rename) and JSON files; no TensorFlow."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tfp_realnvp.errors import RunExistsError


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, replace: bool = True) -> Iterator[Path]:
    """Yields a hidden temporary path beside `path`; write a file or a folder there.

    When the block ends without error the temporary path is renamed to `path` (one rename
    on the same file system); on error it is removed and `path` is untouched. With
    `replace=False` an existing `path` is never replaced: RunExistsError.

    Args:
      path: the final file or folder.
      replace: whether an existing `path` may be replaced by the new content.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        yield tmp
        _move_into_place(tmp, path, replace)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)


def _move_into_place(tmp: Path, path: Path, replace: bool) -> None:
    if not replace or not path.exists():
        if path.exists():
            raise RunExistsError(f"{path} already exists and is never overwritten.")
        try:
            os.rename(tmp, path)  # a folder onto a non-empty folder fails rather than merge
        except OSError as error:
            if error.errno in (errno.ENOTEMPTY, errno.EEXIST):  # another process was first
                raise RunExistsError(f"{path} already exists and is never overwritten.") from None
            raise
    elif tmp.is_dir():
        old = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.old")
        os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, path)


def write_json(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    """Writes `payload` as indented JSON, atomically; NaN or inf is an error, not 'NaN'."""
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, allow_nan=False) + "\n")
