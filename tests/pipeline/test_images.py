"""pipeline.data.images: loading with integrity checks, and normalised tensors."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from pipeline.data.images import IMAGENET_MEAN, IMAGENET_STD, ImageError, load_image, to_tensor

torch.set_num_threads(1)


def _test_image(h: int = 48, w: int = 64) -> np.ndarray:
    """Smooth RGB content (JPEG-friendly) with a distinct value per channel."""
    yy, xx = np.mgrid[0:h, 0:w]
    rgb = np.stack([xx * 255 // (w - 1), yy * 255 // (h - 1), np.full_like(xx, 40)], axis=-1)
    return rgb.astype(np.uint8)


def _encode(rgb: np.ndarray, ext: str, params: list[int] | None = None) -> bytes:
    ok, buf = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params or [])
    assert ok
    return buf.tobytes()


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_png_round_trip_is_rgb_and_exact(tmp_path: Path) -> None:
    rgb = _test_image()
    rgb[5, 7] = (255, 0, 0)  # pure red at x=7, y=5
    img = load_image(_write(tmp_path / "a.png", _encode(rgb, ".png")))
    assert img.dtype == np.uint8 and img.shape == (48, 64, 3)
    np.testing.assert_array_equal(img, rgb)
    assert tuple(img[5, 7]) == (255, 0, 0)


def test_jpeg_loads_close_to_source(tmp_path: Path) -> None:
    rgb = _test_image()
    img = load_image(_write(tmp_path / "a.jpg", _encode(rgb, ".jpg", [cv2.IMWRITE_JPEG_QUALITY, 95])))
    assert img.shape == rgb.shape
    assert np.abs(img.astype(int) - rgb.astype(int)).mean() < 3.0
    # Red grows with x, green with y: channel order is RGB, not BGR.
    assert img[24, 60, 0] > 200 and img[24, 2, 0] < 40 and img[45, 32, 1] > 200


def test_greyscale_png_becomes_three_channels(tmp_path: Path) -> None:
    grey = _test_image()[..., 0]
    ok, buf = cv2.imencode(".png", grey)
    assert ok
    img = load_image(_write(tmp_path / "g.png", buf.tobytes()))
    assert img.shape == (48, 64, 3)
    np.testing.assert_array_equal(img[..., 0], grey)
    np.testing.assert_array_equal(img[..., 2], grey)


def test_missing_file_names_path(tmp_path: Path) -> None:
    path = tmp_path / "nope.jpg"
    with pytest.raises(ImageError, match="nope.jpg.*not found"):
        load_image(path)


@pytest.mark.parametrize("progressive", [0, 1])
def test_truncated_jpeg_detected(tmp_path: Path, progressive: int) -> None:
    data = _encode(_test_image(96, 128), ".jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, progressive])
    assert load_image(_write(tmp_path / "whole.jpg", data)).shape == (96, 128, 3)
    # Older OpenCV builds decode this with a grey bottom; the structural check must catch it.
    cut = data[: int(len(data) * 0.7)]
    path = _write(tmp_path / "cut.jpg", cut)
    with pytest.raises(ImageError, match=r"cut\.jpg.*truncated JPEG"):
        load_image(path)


def test_truncated_jpeg_with_embedded_end_marker_detected(tmp_path: Path) -> None:
    """An EXIF-like APP1 segment holding a thumbnail (with its own FFD9) must not fool the check."""
    data = _encode(_test_image(96, 128), ".jpg")
    payload = b"Exif\x00\x00" + b"\xff\xd8thumbnail\xff\xd9"
    app1 = b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
    with_thumb = data[:2] + app1 + data[2:]
    assert load_image(_write(tmp_path / "thumb.jpg", with_thumb)).shape == (96, 128, 3)
    with pytest.raises(ImageError, match=r"thumb_cut\.jpg.*truncated JPEG"):
        load_image(_write(tmp_path / "thumb_cut.jpg", with_thumb[:-200]))


def test_jpeg_with_trailing_bytes_after_end_marker_loads(tmp_path: Path) -> None:
    data = _encode(_test_image(), ".jpg") + b"\x00" * 16 + b"trailer"
    assert load_image(_write(tmp_path / "trail.jpg", data)).shape == (48, 64, 3)


def test_jpeg_cut_inside_header_detected(tmp_path: Path) -> None:
    data = _encode(_test_image(), ".jpg")
    with pytest.raises(ImageError, match=r"head\.jpg.*truncated JPEG"):
        load_image(_write(tmp_path / "head.jpg", data[:30]))


def test_truncated_png_detected(tmp_path: Path) -> None:
    data = _encode(_test_image(), ".png")
    with pytest.raises(ImageError, match=r"cut\.png.*truncated PNG"):
        load_image(_write(tmp_path / "cut.png", data[: len(data) - 20]))


def test_corrupt_png_chunk_detected(tmp_path: Path) -> None:
    data = bytearray(_encode(_test_image(), ".png"))
    idat = data.index(b"IDAT")
    data[idat + 10] ^= 0xFF
    with pytest.raises(ImageError, match=r"bad\.png.*CRC mismatch.*IDAT"):
        load_image(_write(tmp_path / "bad.png", bytes(data)))


def test_garbage_and_empty_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    garbage = _write(tmp_path / "garbage.jpg", rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(ImageError, match=r"garbage\.jpg.*cannot decode"):
        load_image(garbage)
    with pytest.raises(ImageError, match=r"empty\.png.*empty"):
        load_image(_write(tmp_path / "empty.png", b""))


def test_to_tensor_normalises_and_orders_channels() -> None:
    img = np.zeros((4, 5, 3), np.uint8)
    img[1, 2] = (255, 0, 128)
    x = to_tensor(img)
    assert x.shape == (1, 3, 4, 5) and x.dtype == torch.float32
    expected = [(1.0 - IMAGENET_MEAN[0]) / IMAGENET_STD[0], -IMAGENET_MEAN[1] / IMAGENET_STD[1]]
    expected.append((128 / 255 - IMAGENET_MEAN[2]) / IMAGENET_STD[2])
    torch.testing.assert_close(x[0, :, 1, 2], torch.tensor(expected), rtol=0, atol=1e-6)
    torch.testing.assert_close(x[0, 0, 0, 0], torch.tensor(-IMAGENET_MEAN[0] / IMAGENET_STD[0]))
    batch = to_tensor(np.stack([img, img[::-1]]))
    assert batch.shape == (2, 3, 4, 5)
    torch.testing.assert_close(batch[1, :, 2, 2], x[0, :, 1, 2])


def test_to_tensor_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="uint8"):
        to_tensor(np.zeros((4, 5, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\)"):
        to_tensor(np.zeros((4, 5), np.uint8))
