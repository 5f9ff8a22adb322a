"""Image loading with integrity checks, and conversion to normalised network input tensors.

Images are uint8 RGB ``(H, W, 3)`` in image space (pixel centres at integer coordinates).
``cv2.imdecode`` silently decodes a truncated JPEG with a grey bottom, so JPEG and PNG files
are walked segment by segment (chunk by chunk) before decoding: a file that ends before the
JPEG end-of-image marker or the PNG ``IEND`` chunk, or a PNG chunk with a bad CRC, is rejected.
"""

from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import torch

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)  # RGB, 0..1
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)  # RGB, 0..1

_JPEG_SOI = b"\xff\xd8"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Markers without a length field: TEM (01), RSTn (D0-D7), SOI (D8), EOI (D9).
_JPEG_STANDALONE = {0x01, *range(0xD0, 0xD8), 0xD8, 0xD9}
# Inside entropy-coded data, 0xFF is followed by 00 (stuffing) or a restart marker D0-D7.
_JPEG_ENTROPY_END = re.compile(rb"\xff[^\x00\xd0-\xd7]")


class ImageError(ValueError):
    """An image file is missing, truncated, corrupt or in a format that cannot be decoded."""


def load_image(path: str | Path) -> np.ndarray:
    """Read an image file as uint8 RGB ``(H, W, 3)`` in image space.

    EXIF orientation is ignored (keypoint annotations refer to the stored pixel grid, as in
    SimpleBaseline's loader); greyscale and 16-bit files are converted to 8-bit RGB.

    Raises:
        ImageError: naming the path, if the file is missing, truncated (JPEG without its
            end-of-image marker, PNG without ``IEND``), has a corrupt PNG chunk, or cannot be decoded.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: image file not found")
    return decode_image(path.read_bytes(), str(path))


def decode_image(data: bytes, name: str) -> np.ndarray:
    """Encoded JPEG/PNG bytes -> uint8 RGB ``(H, W, 3)`` image space (as :func:`load_image`
    decodes a file; used for images packed in Parquet); errors name ``name``."""
    problem = check_image_bytes(data) if data else "image file is empty"
    if problem is not None:
        raise ImageError(f"{name}: {problem}")
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if bgr is None or bgr.ndim != 3 or bgr.shape[2] != 3 or bgr.size == 0:
        raise ImageError(f"{name}: cannot decode image (unknown or corrupt format)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def check_image_bytes(data: bytes) -> str | None:
    """Structural check of encoded JPEG / PNG bytes; None when fine or another format."""
    if data.startswith(_JPEG_SOI):
        return _check_jpeg(data)
    if data.startswith(_PNG_SIGNATURE):
        return _check_png(data)
    return None


def _check_jpeg(data: bytes) -> str | None:
    """Walk JPEG marker segments up to the end-of-image marker (FFD9); bytes after it are allowed."""
    pos, n = 2, len(data)
    while True:
        while pos < n and data[pos] == 0xFF and pos + 1 < n and data[pos + 1] == 0xFF:
            pos += 1  # fill bytes before a marker
        if pos + 2 > n:
            return f"truncated JPEG: data ends at byte {n} before the end-of-image marker FFD9"
        if data[pos] != 0xFF:
            return f"corrupt JPEG: expected a marker at byte {pos}, found 0x{data[pos]:02X}"
        marker = data[pos + 1]
        if marker == 0xD9:
            return None
        if marker in _JPEG_STANDALONE:
            pos += 2
            continue
        if pos + 4 > n:
            return f"truncated JPEG: segment header at byte {pos} cut off"
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if length < 2:
            return f"corrupt JPEG: segment 0xFF{marker:02X} at byte {pos} has length {length}"
        pos += 2 + length
        if pos > n:
            return f"truncated JPEG: segment 0xFF{marker:02X} runs past the end of the file"
        if marker == 0xDA:  # start of scan: skip the entropy-coded data to the next real marker
            match = _JPEG_ENTROPY_END.search(data, pos)
            if match is None:
                return "truncated JPEG: scan data ends without the end-of-image marker FFD9"
            pos = match.start()


def _check_png(data: bytes) -> str | None:
    """Walk PNG chunks (checking each CRC) up to ``IEND``; bytes after it are allowed."""
    pos, n = len(_PNG_SIGNATURE), len(data)
    while True:
        if pos + 12 > n:
            return f"truncated PNG: data ends at byte {n} before the IEND chunk"
        length, ctype = struct.unpack(">I4s", data[pos : pos + 8])
        end = pos + 12 + length
        if end > n:
            return f"truncated PNG: chunk {ctype!r} at byte {pos} runs past the end of the file"
        (crc,) = struct.unpack(">I", data[end - 4 : end])
        if zlib.crc32(data[pos + 4 : end - 4]) != crc:
            return f"corrupt PNG: CRC mismatch in chunk {ctype!r} at byte {pos}"
        if ctype == b"IEND":
            return None
        pos = end


def to_tensor(images: np.ndarray, device: torch.device | str | None = None) -> torch.Tensor:
    """uint8 RGB ``(N, H, W, 3)`` or ``(H, W, 3)`` -> float32 ``(N, 3, H, W)`` ImageNet-normalised.

    Input space is unchanged (pixel (x, y) of the crop is element ``[..., y, x]``).
    """
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8:
        raise ValueError(f"to_tensor: images must be a uint8 numpy array, got {type(images).__name__}")
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"to_tensor: images must be (N, H, W, 3) or (H, W, 3), got {images.shape}")
    x = torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).float()
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    return ((x / 255.0 - mean) / std).contiguous()
