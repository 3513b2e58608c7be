"""Signed, expiring evidence URLs: Label Studio fetches a frame without holding an API key.

The signature is HMAC-SHA256 over the URL's path and its expiry, so changing either (another
frame's id, a later expiry, a path with `..`) breaks it; the secret never leaves the service
(tasks carry only the URL). Checks compare in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from service.errors import ServiceError

FRAME_PATH = "/v1/review/frames/{frame_id}.jpg"
# A change candidate's earlier-survey crop (observations.before_crop_path): its own path, so a
# frame's signature never opens the before crop and the other way round.
BEFORE_PATH = "/v1/review/frames/{frame_id}/before.jpg"


class BadSignature(ServiceError):
    """A URL whose signature does not match, or whose expiry has passed."""


@dataclass(frozen=True)
class UrlSigner:
    secret: bytes

    def signature(self, path: str, expires: int) -> str:
        message = f"GET\n{path}\n{expires}".encode()
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()

    def sign(self, path: str, *, now_s: float, ttl_s: int) -> str:
        """`path?expires=…&sig=…`, valid until now + ttl."""
        expires = int(now_s) + ttl_s
        return f"{path}?expires={expires}&sig={self.signature(path, expires)}"

    def check(self, path: str, expires: int, sig: str, *, now_s: float) -> None:
        """BadSignature unless `sig` signs (path, expires) and expires lies ahead."""
        expected = self.signature(path, expires)
        if not hmac.compare_digest(expected.encode(), sig.encode()):
            raise BadSignature("the URL's signature does not match")
        if expires < now_s:
            raise BadSignature("the URL has expired")


def frame_path(frame_id: int) -> str:
    return FRAME_PATH.format(frame_id=frame_id)


def before_path(frame_id: int) -> str:
    return BEFORE_PATH.format(frame_id=frame_id)
