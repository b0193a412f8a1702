"""Writes data/digits.bin from scikit-learn's copy of the UCI digits.

    pip download --no-deps scikit-learn   # any recent wheel
    python3 scripts/make_digits.py path/to/scikit_learn-*.whl

Format (little endian): b"WGDIGIT1", u32 count, u8 width, u8 height,
u8 classes, u8 max pixel value, then per sample its width*height pixels
(u8, 0..=max) and its label (u8), then the FNV-1a 64-bit hash of all the
preceding bytes.
"""
import gzip
import struct
import sys
import zipfile

wheel = zipfile.ZipFile(sys.argv[1])
rows = gzip.decompress(wheel.read("sklearn/datasets/data/digits.csv.gz")).decode().split()
body = bytearray(b"WGDIGIT1" + struct.pack("<IBBBB", len(rows), 8, 8, 10, 16))
for row in rows:
    values = [int(float(v)) for v in row.split(",")]
    assert len(values) == 65 and all(0 <= v <= 16 for v in values[:64]) and 0 <= values[64] < 10
    body += bytes(values)
h = 0xCBF29CE484222325
for b in body:
    h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
body += struct.pack("<Q", h)
open("data/digits.bin", "wb").write(body)
print(len(rows), "samples,", len(body), "bytes")
