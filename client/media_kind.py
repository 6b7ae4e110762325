"""Which kind of media some bytes are, from their first bytes alone (no decoder): so an image sent where a video
belongs, or the reverse, is refused with a reason that says so instead of "not decodable". Pure: the server and the
gateway import it alike."""

from __future__ import annotations

# Container signatures: ISO BMFF (MP4, MOV, 3GP) has "ftyp" at offset 4; Matroska/WebM starts with EBML's ID;
# AVI is a RIFF "AVI " file; MPEG-PS and MPEG-TS start with a pack header or a sync byte every 188 bytes; FLV, Ogg.
_VIDEO_PREFIXES = (b"\x1a\x45\xdf\xa3", b"\x00\x00\x01\xba", b"FLV\x01", b"OggS")
_IMAGE_PREFIXES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")


def looks_like_video(data: bytes) -> bool:
    if data[4:8] == b"ftyp" and data[8:12] not in (b"avif", b"avis", b"heic", b"heix", b"mif1", b"msf1"):
        return True
    if data.startswith(b"RIFF") and data[8:12] == b"AVI ":
        return True
    if len(data) >= 377 and data[0] == data[188] == data[376] == 0x47:
        return True
    return data.startswith(_VIDEO_PREFIXES)


def looks_like_image(data: bytes) -> bool:
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return True
    if data[4:8] == b"ftyp" and data[8:12] in (b"avif", b"heic", b"heix", b"mif1"):
        return True
    return data.startswith(_IMAGE_PREFIXES)
