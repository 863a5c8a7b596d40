"""Reading images (no TensorFlow): a `.npy` of `[N, H, W, C]`, a folder of PNG/JPEG files of
one size, or the built-in `digits-images` (scikit-learn's 8x8 digits, levels 0..16)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from tfp_realnvp.errors import DataError, DataFileNotFoundError

BUILTIN = "digits-images"
SUFFIXES = (".png", ".jpg", ".jpeg")


def is_image_source(source: str | os.PathLike) -> bool:
    """Whether `fit --data` names images: the built-in set, a folder holding PNG/JPEG
    files, or a `.npy` of rank 4."""
    text = str(source)
    if text == BUILTIN:
        return True
    path = Path(text)
    if path.is_dir():
        return any(p.suffix.lower() in SUFFIXES for p in path.iterdir())
    if path.suffix.lower() == ".npy" and path.is_file():
        try:
            return len(np.load(path, mmap_mode="r").shape) == 4
        except (ValueError, OSError, EOFError):
            return False  # unreadable: the table reader says why
    return False


def read_images(source: str | os.PathLike,
                levels: int | None = None) -> tuple[np.ndarray, int, dict]:
    """`(images [N, H, W, C] of integer levels as float32, number of levels, data info)`.

    uint8 images have 256 levels; float (or wider integer) images must hold whole levels
    in `[0, levels)` with `levels` declared. DataError names the file and the expected
    shape for anything else.
    """
    text = str(source)
    if text == BUILTIN:
        from sklearn.datasets import load_digits

        images = load_digits().images[..., None].astype(np.float32)
        return images, 17, {"source": BUILTIN, "kind": "images"}
    path = Path(text)
    if path.is_dir():
        array = _read_folder(path)
    elif path.is_file():
        if path.suffix.lower() != ".npy":
            raise DataError(f"{path}: images come as a .npy of [N, H, W, C], a folder of "
                            f"PNG/JPEG files, or '{BUILTIN}'.")
        array = np.load(path)
        if array.ndim != 4:
            raise DataError(f"{path}: images must have shape [N, H, W, C]; got "
                            f"{list(array.shape)}.")
    else:
        raise DataFileNotFoundError(f"{path}: no such file or folder.")
    images, count = _to_levels(array, levels, path)
    return images, count, {"source": str(path), "kind": "images"}


def _to_levels(array: np.ndarray, levels: int | None, path: Path) -> tuple[np.ndarray, int]:
    if array.dtype == np.uint8:
        if levels not in (None, 256):
            raise DataError(f"{path}: uint8 images have 256 levels; got levels={levels}.")
        return array.astype(np.float32), 256
    if levels is None:
        raise DataError(f"{path}: {array.dtype} images need their number of levels declared "
                        "(--levels; uint8 images have 256).")
    values = np.asarray(array, np.float64)
    bad = ~np.isfinite(values) | (values < 0) | (values > levels - 1) | (values % 1 != 0)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise DataError(f"{path}: image values must be whole levels in [0, {levels - 1}]; "
                        f"got {float(values[where])!r} at index {list(where)}.")
    return values.astype(np.float32), int(levels)


def _read_folder(path: Path) -> np.ndarray:
    """The folder's PNG/JPEG files (sorted by name) as one uint8 `[N, H, W, C]` array."""
    from PIL import Image

    files = sorted(p for p in path.iterdir() if p.suffix.lower() in SUFFIXES)
    if not files:
        raise DataError(f"{path}: no PNG or JPEG files in the folder.")
    arrays, first = [], None
    for file in files:
        with Image.open(file) as image:
            array = np.asarray(image)
        if array.ndim == 2:
            array = array[..., None]
        if array.dtype != np.uint8:
            raise DataError(f"{file}: 8-bit images only; got {array.dtype} pixels.")
        if first is None:
            first = (file, array.shape)
        elif array.shape != first[1]:
            raise DataError(f"{file}: shape {list(array.shape)} [H, W, C]; expected "
                            f"{list(first[1])} like {first[0].name} (all images of one size).")
        arrays.append(array)
    return np.stack(arrays)


def write_png_grid(images: np.ndarray, levels: int, path: str | os.PathLike,
                   columns: int | None = None, zoom: int = 1) -> None:
    """Writes `[N, H, W, C]` images in level units as one PNG grid (1-pixel gaps), each
    value floored and clipped to a level, levels spread over 0..255."""
    from PIL import Image

    count, height, width, channels = images.shape
    columns = columns or int(np.ceil(np.sqrt(count)))
    rows = int(np.ceil(count / columns))
    pixels = np.clip(np.floor(images), 0, levels - 1) * (255.0 / (levels - 1))
    grid = np.zeros((rows * (height + 1) + 1, columns * (width + 1) + 1, channels), np.uint8)
    for i, image in enumerate(pixels.astype(np.uint8)):
        r, c = divmod(i, columns)
        grid[1 + r * (height + 1):1 + r * (height + 1) + height,
             1 + c * (width + 1):1 + c * (width + 1) + width] = image
    if zoom > 1:
        grid = grid.repeat(zoom, axis=0).repeat(zoom, axis=1)
    Image.fromarray(grid[..., 0] if channels == 1 else grid).save(str(path))
