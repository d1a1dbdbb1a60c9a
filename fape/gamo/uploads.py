"""Uploads from the browser: a size limit, a real decode with PIL, and a per-session rate limit.
Every refusal is a ``Refused`` with an HTTP status and a one-line reason the API returns as JSON."""
from __future__ import annotations

import io
import threading
import time

import numpy as np

FORMATS = ("JPEG", "PNG", "WEBP")


class Refused(Exception):
    def __init__(self, status: int, error: str, detail: str):
        super().__init__(detail)
        self.status, self.error, self.detail = status, error, detail


def decode_image(data: bytes, max_bytes: int, max_pixels: int) -> np.ndarray:
    """JPEG/PNG/WEBP bytes -> uint8 RGB ``[H, W, 3]``; ``Refused`` for anything else."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise Refused(400, "empty_upload", "the upload is empty")
    if len(data) > max_bytes:
        raise Refused(413, "too_large", f"the upload is {len(data)} bytes; the limit is {max_bytes}")
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.format not in FORMATS:
                raise Refused(415, "not_an_image", f"{im.format} images are not accepted (use {', '.join(FORMATS)})")
            if im.width * im.height > max_pixels:  # checked on the header, before the pixels are decoded
                raise Refused(413, "too_large", f"the image is {im.width}x{im.height}; the limit is {max_pixels} pixels")
            im.load()
            return np.array(im.convert("RGB"), np.uint8)
    except Refused:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise Refused(415, "not_an_image", f"the upload could not be decoded as an image ({type(e).__name__})") from None


class RateLimiter:
    """Token bucket per key: ``rate`` uploads a second on average, ``burst`` at once."""

    def __init__(self, rate: float, burst: int, clock=time.monotonic):
        self.rate, self.burst, self.clock = float(rate), int(burst), clock
        self._state: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> None:
        with self._lock:
            now = self.clock()
            tokens, last = self._state.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens < 1.0:
                self._state[key] = (tokens, now)
                raise Refused(429, "rate_limited", f"too many uploads: at most {self.rate:g} a second, {self.burst} at once")
            self._state[key] = (tokens - 1.0, now)
