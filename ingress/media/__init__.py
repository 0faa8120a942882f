"""Media on the ingress, in request order: resolve (resolve.py: options, cache, metrics) ->
fetch (fetch.py: SSRF-safe http(s), data URLs, allowed files) -> decode and resize
(image.py, video.py) -> cache (cache.py)."""

from ingress.media.resolve import MediaResolver

__all__ = ["MediaResolver"]
