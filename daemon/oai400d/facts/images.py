"""An image URL's format (its extension, or a data URL's media type) and a data URL's decoded
size against the API's documented limits.

The vision guide's accepted formats: PNG (.png), JPEG (.jpeg, .jpg), WEBP (.webp), non-animated
GIF (.gif); its size limit: 50 MB of images per request, and 20 MB per image on the models that
state one (the stricter is checked: an image over it fails somewhere).
"""

from __future__ import annotations

from urllib.parse import SplitResult

from oai400d.facts.wording import shown, size
from oai400d.model import Fact

FORMAT_KIND = "image_format"
SIZE_KIND = "image_size"

ACCEPTED = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "webp": "WEBP", "gif": "GIF"}
# Formats people send that the API refuses, by extension or media subtype.
REFUSED = {
    "svg": "SVG", "svg+xml": "SVG", "heic": "HEIC", "heif": "HEIF", "tif": "TIFF",
    "tiff": "TIFF", "bmp": "BMP", "pdf": "PDF", "avif": "AVIF", "ico": "ICO",
    "x-icon": "ICO", "jxl": "JPEG XL", "raw": "RAW", "psd": "PSD",
}  # fmt: skip
IMAGE_LIMIT_BYTES = 20_000_000
# A shorter data URL is an example in the message itself ("e.g. 'data:image/png;base64,aW1n…'",
# OpenAI's own wording) or the log's cut of a real one: neither tells the image's format or size.
MIN_PAYLOAD = 64

# Words of the image rules' fixes: "…convert HEIC, TIFF, BMP, SVG or PDF pages…"
# (invalid_image_format), "Make sure the MIME type in the data URL matches…" (image_data_invalid),
# "Downscale and recompress…" (image_too_large).
_CONVERT_FIX = ("convert heic",)
_DOWNSCALE_FIX = ("downscale",)


def format_fact(parts: SplitResult, say_accepted: bool = True) -> Fact | None:
    """The format the URL's path names, against the accepted ones; None when it names none, or
    an accepted one and not `say_accepted` (where the format is not in question, "a .png file,
    a format the API takes" only lengthens the alert)."""
    name = parts.path.rsplit("/", 1)[-1]
    if "." not in name:
        return None
    extension = name.rsplit(".", 1)[-1].lower()
    if extension in ACCEPTED and not say_accepted:
        return None
    return _format(extension, f"The image at {shown(parts)} is a .{extension} file")


def data_url_facts(url: str) -> list[Fact]:
    """A base64 data URL's media type and decoded size (from its length, nothing decoded)."""
    head, _, payload = url.partition(",")
    if len(payload) < MIN_PAYLOAD:
        return []
    subtype = head.removeprefix("data:").split(";", 1)[0].split("/", 1)[-1].lower()
    facts = []
    named = _format(subtype, f"The data URL's media type is image/{subtype}")
    if named is not None:
        facts.append(named)
    decoded = len(payload) * 3 // 4 - payload[-2:].count("=")
    if decoded > IMAGE_LIMIT_BYTES:
        facts.append(
            Fact(
                SIZE_KIND,
                f"The data URL decodes to {size(decoded)}, over the API's "
                f"{size(IMAGE_LIMIT_BYTES)} per-image limit.",
                "supports",
                prefer=_DOWNSCALE_FIX,
            )
        )
    elif len(payload) >= 1000:
        # (Under 1,000 characters it is most likely the log's cut of a longer one.)
        facts.append(
            Fact(
                SIZE_KIND,
                f"The data URL decodes to {size(decoded)}, under the API's "
                f"{size(IMAGE_LIMIT_BYTES)} per-image limit.",
                "rules_out",
                demote=_DOWNSCALE_FIX,
            )
        )
    return facts


def _format(name: str, subject: str) -> Fact | None:
    if name in ACCEPTED:
        label = ACCEPTED[name]
        caveat = " (if not animated)" if label == "GIF" else ""
        return Fact(
            FORMAT_KIND,
            f"{subject}: {label}{caveat}, a format the API takes.",
            "rules_out",
            demote=_CONVERT_FIX,
        )
    if name in REFUSED:
        return Fact(
            FORMAT_KIND,
            f"{subject}: {REFUSED[name]}, a format the API does not take "
            "(PNG, JPEG, WEBP and non-animated GIF only).",
            "supports",
            prefer=_CONVERT_FIX,
        )
    return None
