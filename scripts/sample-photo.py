#!/usr/bin/env python3
"""Writes a small JPEG-structured file with an EXIF GPS position, for the demo (stdlib only).

The segments are real JPEG syntax (SOI, APP1 Exif with a GPS directory, a comment, SOS, EOI); the scan data is
filler, so viewers may not render it, but every metadata tool reads its GPS position.
"""
import struct
import sys


def exif_with_gps():
    # TIFF, little endian: IFD0 at 8 with one entry (GPSInfo -> GPS IFD at 26).
    tiff = b"II*\x00" + struct.pack("<I", 8)
    ifd0 = struct.pack("<H", 1) + struct.pack("<HHII", 0x8825, 4, 1, 26) + struct.pack("<I", 0)
    # GPS IFD: LatitudeRef "N", Latitude 51/1 30/1 0/1 (24 bytes at 56), LongitudeRef "W".
    gps = struct.pack("<H", 3)
    gps += struct.pack("<HHI", 0x0001, 2, 2) + b"N\x00\x00\x00"
    gps += struct.pack("<HHII", 0x0002, 5, 3, 26 + 2 + 3 * 12 + 4)
    gps += struct.pack("<HHI", 0x0003, 2, 2) + b"W\x00\x00\x00"
    gps += struct.pack("<I", 0)
    latitude = struct.pack("<IIIIII", 51, 1, 30, 1, 0, 1)
    body = tiff + ifd0 + gps + latitude
    return b"Exif\x00\x00" + body


def main(path):
    exif = exif_with_gps()
    comment = b"curbside demo photo"
    data = b"\xff\xd8"
    data += b"\xff\xe1" + struct.pack(">H", len(exif) + 2) + exif
    data += b"\xff\xfe" + struct.pack(">H", len(comment) + 2) + comment
    data += b"\xff\xda" + struct.pack(">H", 8) + b"\x01\x01\x00\x00\x3f\x00"
    data += bytes((i * 7) % 251 for i in range(200_000))
    data += b"\xff\xd9"
    with open(path, "wb") as f:
        f.write(data)


if __name__ == "__main__":
    main(sys.argv[1])
