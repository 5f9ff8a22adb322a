"""Image files checked before training reads them: missing, empty, truncated or undecodable.

``check_images_exist`` is the fast start-up check (every file exists); ``check_image_files``
decodes each distinct image of a person list once and either fails on the first bad one, naming
the file, or skips and counts the bad ones (a large wild pool). A person is anything with an
``image_id`` and an ``image_path`` (``PersonRecord`` of a COCO file, ``PoolItem`` of a wild pool).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol, TypeVar

import cv2
import numpy as np

log = logging.getLogger(__name__)

_JPEG_SOI, _JPEG_EOI = b"\xff\xd8", b"\xff\xd9"
_PNG_SIGNATURE, _PNG_IEND = b"\x89PNG\r\n\x1a\n", b"IEND\xaeB`\x82"


class BadImageError(OSError):
    """An image file that is missing, truncated or does not decode; the message names the file."""


class HasImage(Protocol):
    image_id: int
    image_path: str


PersonT = TypeVar("PersonT", bound=HasImage)


def images_of(records: Iterable[HasImage]) -> list[tuple[int, str]]:
    """Distinct (image_id, image_path) pairs in first-appearance order."""
    seen: dict[int, str] = {}
    for r in records:
        seen.setdefault(r.image_id, r.image_path)
    return list(seen.items())


def image_file_problem(path: str | Path) -> str | None:
    """Why an image file is unusable (missing, empty, truncated, undecodable), or None if it is fine.

    A JPEG must end with the end-of-image marker FFD9 (trailing NUL padding allowed) and a PNG
    with its IEND chunk: OpenCV decodes truncated JPEGs without an error, filling the rest grey.
    """
    path = Path(path)
    if not path.is_file():
        return "file not found"
    try:
        data = path.read_bytes()
    except OSError as e:
        return f"unreadable ({e.strerror or e})"
    if not data:
        return "empty file"
    if data.startswith(_JPEG_SOI) and not data.rstrip(b"\x00").endswith(_JPEG_EOI):
        return "truncated JPEG (no end-of-image marker FFD9)"
    if data.startswith(_PNG_SIGNATURE) and not data.endswith(_PNG_IEND):
        return "truncated PNG (no IEND chunk)"
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        return "does not decode as an image"
    return None


def verify_image_file(path: str | Path) -> None:
    """Raise :class:`BadImageError` naming ``path`` unless the image exists and decodes completely."""
    problem = image_file_problem(path)
    if problem is not None:
        raise BadImageError(f"{path}: {problem}")


def check_image_files(
    records: Sequence[PersonT], *, skip_bad: bool = False
) -> tuple[list[PersonT], list[tuple[str, str]]]:
    """Verify each distinct image of ``records`` once.

    Returns:
        (records whose image is good, [(path, reason)] for each bad image). With ``skip_bad=False``
        the first bad image raises :class:`BadImageError` naming the file instead.
    """
    bad: list[tuple[str, str]] = []
    bad_paths: set[str] = set()
    for _, path in images_of(records):
        problem = image_file_problem(path)
        if problem is None:
            continue
        if not skip_bad:
            raise BadImageError(f"{path}: {problem}")
        bad.append((path, problem))
        bad_paths.add(path)
    good = [r for r in records if r.image_path not in bad_paths]
    if bad:
        log.warning(
            "skipped %d bad image(s) and their %d person(s); first: %s (%s)",
            len(bad),
            len(records) - len(good),
            *bad[0],
        )
    return good, bad


def check_images_exist(records: Sequence[HasImage], source: str = "") -> None:
    """Fast start-up check that every image file exists (no decoding; large sets stay fast).

    Raises :class:`BadImageError` naming the first missing file and how many are missing.
    Truncated or corrupt files are still caught when loaded (``pipeline.data.images.load_image``)
    or up front by :func:`check_image_files`.
    """
    missing = [path for _, path in images_of(records) if not Path(path).is_file()]
    if missing:
        where = f"{source}: " if source else ""
        raise BadImageError(f"{where}{len(missing)} image file(s) not found, first: {missing[0]}")
