"""Image files a user might give that must be refused: huge ones that are small on disk, and damaged JPEGs made from a
real frame."""
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np


def blank_png(path: Path, width: int, height: int) -> Path:
    """A valid all-black PNG of `width` x `height` pixels in few bytes (1-bit grey, every row alike): a 30000 x 30000
    one is 0.2 MB on disk and 2.7 GB decoded to RGB. Written by hand: an encoder would first hold the pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    compressor = zlib.compressobj(9)
    row = bytes(1 + (width + 7) // 8)  # filter byte 0, then the row's bits
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # bit depth 1, grey, deflate, no interlace
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path


def damaged_jpegs(rgb: np.ndarray, folder: Path) -> dict[str, Path]:
    """The JPEG of a real frame `rgb` and three damaged copies of it, by name: `good`; `truncated` (its first half);
    `zeroed` (256 bytes in the middle of its picture data set to 0, as a lost disk block leaves them: Pillow and
    OpenCV decode it without a word); `garbled` (the same 256 bytes random)."""
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    data = encoded.tobytes()
    middle = len(data) // 2
    zeroed, garbled = bytearray(data), bytearray(data)
    zeroed[middle:middle + 256] = bytes(256)
    garbled[middle:middle + 256] = np.random.default_rng(0).integers(0, 256, 256, dtype=np.uint8).tobytes()
    contents = {"good": data, "truncated": data[:middle], "zeroed": bytes(zeroed), "garbled": bytes(garbled)}
    paths = {}
    for name, content in contents.items():
        paths[name] = folder / f"{name}.jpg"
        paths[name].write_bytes(content)
    return paths
