"""Response compression: Brotli or gzip for text responses, chosen by Accept-Encoding.

Django's GZipMiddleware does gzip, including streamed responses, and pads every gzip header with
random bytes ("Heal The Breach"), which is what keeps BREACH from reading the CSRF token in a page
through response sizes. Brotli has no such padding, so HTML pages (the responses that carry CSRF
tokens) always get the padded gzip; data responses (JSON, GeoJSON, CSV, XML), which carry no token,
get Brotli when the client prefers it. Static files are WhiteNoise's (precompressed at
collectstatic) and never reach this middleware; websocket frames never pass through middleware.
"""

from __future__ import annotations

import re

import brotli
from django.conf import settings
from django.middleware.gzip import GZipMiddleware
from django.utils.cache import patch_vary_headers

# Text formats worth compressing; PDFs, images and archives are already compressed.
COMPRESSIBLE = re.compile(
    r"^\s*(text/|application/(javascript|([\w.-]+\+)?json|([\w.-]+\+)?xml)|image/svg\+xml)", re.IGNORECASE
)
ENCODING = re.compile(r"^\s*([\w*-]+)\s*(?:;\s*q\s*=\s*([0-9.]+))?\s*$")
MIN_LENGTH = 200


def accepted_encodings(header: str) -> dict[str, float]:
    """{"gzip": 1.0, "br": 0.5} from an Accept-Encoding header; malformed entries are ignored.
    Only encodings named are used ("*" alone gets the identity encoding, which it allows)."""
    accepted = {}
    for part in header[:500].lower().split(","):
        match = ENCODING.match(part)
        if match is None:
            continue
        try:
            quality = float(match[2]) if match[2] else 1.0
        except ValueError:
            continue
        accepted[match[1]] = quality
    return accepted


class CompressionMiddleware(GZipMiddleware):
    def process_response(self, request, response):
        if response.has_header("Content-Encoding") or not COMPRESSIBLE.match(response.get("Content-Type", "")):
            return response
        if not response.streaming and len(response.content) < MIN_LENGTH:
            return response
        accepted = accepted_encodings(request.META.get("HTTP_ACCEPT_ENCODING", ""))
        is_page = response.get("Content-Type", "").lower().lstrip().startswith("text/html")
        brotli_quality = accepted.get("br", 0.0)
        if not is_page and brotli_quality > 0 and brotli_quality >= accepted.get("gzip", 0.0):
            return self._brotli(response)
        if accepted.get("gzip", 0.0) > 0:
            return super().process_response(request, response)  # Django's gzip, padded
        patch_vary_headers(response, ("Accept-Encoding",))
        return response

    @staticmethod
    def _brotli(response):
        patch_vary_headers(response, ("Accept-Encoding",))
        quality = settings.BROTLI_QUALITY
        if response.streaming:
            response.streaming_content = (
                _brotli_async(response.streaming_content, quality)
                if response.is_async
                else _brotli_sequence(response.streaming_content, quality)
            )
            del response.headers["Content-Length"]
        else:
            compressed = brotli.compress(response.content, quality=quality)
            if len(compressed) >= len(response.content):
                return response
            response.content = compressed
            response.headers["Content-Length"] = str(len(compressed))
        etag = response.get("ETag")
        if etag and etag.startswith('"'):
            response.headers["ETag"] = "W/" + etag
        response.headers["Content-Encoding"] = "br"
        return response


def _brotli_sequence(chunks, quality):
    compressor = brotli.Compressor(quality=quality)
    for chunk in chunks:
        if out := compressor.process(chunk):
            yield out
    yield compressor.finish()


async def _brotli_async(chunks, quality):
    compressor = brotli.Compressor(quality=quality)
    async for chunk in chunks:
        if out := compressor.process(chunk):
            yield out
    yield compressor.finish()
