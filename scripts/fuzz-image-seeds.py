#!/usr/bin/env python3
"""Seeds for the image fuzz target: small PNG and JPEG files in every layout the decoders
distinguish, written with Pillow (`pip install pillow`; a development tool only, the
harness never runs Python).

    scripts/fuzz-image-seeds.py OUT_DIR

Why: scripts/fuzz-gained-edges.py showed that almost all edges the image campaigns kept
finding late (96 of 102 over 6 600 s) lie in the decoders (zune-jpeg's entropy decoding
and marker parsers, fdeflate's Huffman tables, png's unfiltering), which mutation reaches
slowly from a few seed files at about 100 inputs/s. These inputs start it from each colour
type and bit depth of PNG, each compression level, and baseline and progressive JPEG in
grey, RGB and CMYK with each chroma subsampling, with and without ICC and Exif segments
and restart markers; and PNGs written by hand for what Pillow does not write (Adam7
interlacing, 16-bit colour, every row filter, the ancillary chunks). Files are named by
the SHA-1 of their content, as libFuzzer names its own.
"""
import hashlib
import io
import pathlib
import struct
import sys
import zlib

from PIL import Image

SIZES = [(1, 1), (7, 5), (16, 16), (33, 17)]
# A made-up ICC payload: the decoders only split and join the APP2 chunks, never parse it.
ICC = b"kdbench fuzz seed ICC profile " * 40
EXIF = Image.Exif()
EXIF[0x0112] = 6  # orientation
EXIF[0x010E] = "kdbench fuzz seed"


def picture(size, seed):
    w, h = size
    img = Image.new("RGB", size)
    img.putdata([((x * 37 + y * 11 + seed) % 256, (x * y + 3 * seed) % 256, (y * 53 + x) % 256)
                 for y in range(h) for x in range(w)])
    return img


def pngs(img):
    for mode in ["1", "L", "LA", "RGB", "RGBA", "I;16"]:
        for level in [0, 6, 9]:
            yield img.convert(mode), dict(format="PNG", compress_level=level)
    for colours, bits in [(2, 1), (4, 2), (16, 4), (256, 8)]:
        pal = img.quantize(colors=colours)
        yield pal, dict(format="PNG", bits=bits)
        yield pal, dict(format="PNG", bits=bits, transparency=0)
    yield img.convert("L"), dict(format="PNG", optimize=True)
    yield img, dict(format="PNG", icc_profile=ICC, exif=EXIF)


def png_chunk(kind, payload):
    return (struct.pack(">I", len(payload)) + kind + payload
            + struct.pack(">I", zlib.crc32(kind + payload)))


# Adam7: (first column, first row, column step, row step) of each pass.
ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
         (0, 1, 1, 2)]
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
DEPTHS = {0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16]}


def raw_png(size, colour, depth, interlace, filters, extra=()):
    """A PNG written by hand, for what Pillow does not write: Adam7 interlacing, 16-bit
    colour, each row filter (filter bytes only: the samples are stored unfiltered, so a
    decoder meets every filter type on made-up data) and the ancillary chunks."""
    w, h = size
    bits_per_pixel = CHANNELS[colour] * depth
    rows = b""
    passes = ADAM7 if interlace else [(0, 0, 1, 1)]
    for x0, y0, dx, dy in passes:
        pw, ph = len(range(x0, w, dx)), len(range(y0, h, dy))
        if pw == 0 or ph == 0:
            continue
        row_bytes = (pw * bits_per_pixel + 7) // 8
        for y in range(ph):
            rows += bytes([filters[y % len(filters)]])
            rows += bytes((x * 29 + y * 7 + colour + depth) % 256 for x in range(row_bytes))
    ihdr = struct.pack(">IIBBBBB", w, h, depth, colour, 0, 0, interlace)
    chunks = [png_chunk(b"IHDR", ihdr)]
    if colour == 3:
        chunks.append(png_chunk(b"PLTE", bytes(i * 7 % 256 for i in range(3 * 256))))
    chunks += [png_chunk(kind, payload) for kind, payload in extra]
    chunks += [png_chunk(b"IDAT", zlib.compress(rows, 9)), png_chunk(b"IEND", b"")]
    return b"\x89PNG\r\n\x1a\n" + b"".join(chunks)


ANCILLARY = [
    (b"gAMA", struct.pack(">I", 45455)), (b"sRGB", b"\x00"), (b"pHYs", bytes(9)),
    (b"cHRM", bytes(32)), (b"sBIT", b"\x08\x08\x08"), (b"tEXt", b"Comment\x00kdbench"),
    (b"zTXt", b"Comment\x00\x00" + zlib.compress(b"kdbench")),
    (b"iTXt", b"Comment\x00\x00\x00\x00\x00kdbench"),
    (b"iCCP", b"icc\x00\x00" + zlib.compress(ICC)), (b"tRNS", b"\x00\x01\x00\x02\x00\x03"),
    (b"bKGD", b"\x00\x01\x00\x02\x00\x03"),
]


def raw_pngs(size):
    for colour, depths in DEPTHS.items():
        for depth in depths:
            for interlace in [0, 1]:
                for filters in [[0], [1], [2], [3], [4], [0, 1, 2, 3, 4]]:
                    yield raw_png(size, colour, depth, interlace, filters)
            yield raw_png(size, colour, depth, 0, [4], ANCILLARY)


def jpegs(img):
    for mode in ["L", "RGB", "CMYK"]:
        for subsampling in [0, 1, 2]:
            for progressive in [False, True]:
                for quality in [5, 50, 95]:
                    yield img.convert(mode), dict(format="JPEG", subsampling=subsampling,
                                                  progressive=progressive, quality=quality)
                yield img.convert(mode), dict(format="JPEG", subsampling=subsampling,
                                              progressive=progressive, optimize=True,
                                              icc_profile=ICC, exif=EXIF)
                yield img.convert(mode), dict(format="JPEG", subsampling=subsampling,
                                              progressive=progressive, restart_marker_blocks=1)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = pathlib.Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    written = failed = 0
    for seed, size in enumerate(SIZES):
        img = picture(size, seed)
        for image, options in [*pngs(img), *jpegs(img)]:
            buf = io.BytesIO()
            try:
                image.save(buf, **options)
            except (OSError, ValueError, TypeError):
                failed += 1  # a combination this Pillow cannot write
                continue
            data = buf.getvalue()
            (out / hashlib.sha1(data).hexdigest()).write_bytes(data)
            written += 1
        for data in raw_pngs(size):
            (out / hashlib.sha1(data).hexdigest()).write_bytes(data)
            written += 1
    print(f"{out}: {written} images ({failed} combinations Pillow could not write)")


if __name__ == "__main__":
    main()
