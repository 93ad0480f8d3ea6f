"""Loading, identity and transport of stimuli.

The rule of the suite is that the model judges exactly the dataset's stored
pixels: no resizing, no colour conversion, no lossy re-encoding.  Everything
here serves that rule.  Inputs that cannot be shown faithfully as 8-bit RGB
are refused with an :class:`ImageError` that names the file and says what to
do, rather than being "fixed" silently, because a silent fix changes the
stimulus that the human scores were given for.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import struct
import tempfile
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageFile, UnidentifiedImageError

# Stimulus lives in iqa_eval.types with the other shared nouns; it is re-exported here because
# this module is where stimuli are made.  One class, not two look-alikes, keeps equality and
# isinstance checks working across layers.
from iqa_eval.types import Stimulus

__all__ = [
    "MAX_PIXELS",
    "MIN_SIDE",
    "ImageError",
    "ImageStore",
    "Stimulus",
    "encode_png",
    "load_rgb",
    "pixel_hash",
]

MAX_PIXELS: int = 40_000_000
"""Largest accepted width*height.

Checked from the header before decoding, so a tiny file that claims a huge
canvas (a decompression bomb) costs nothing.  40 MP covers every IQA dataset
in use, including 8K frames, while keeping one decoded image under 120 MB.
"""

MIN_SIDE: int = 8
"""Smallest accepted width or height: below this there is nothing to judge."""

PNG_COMPRESS_LEVEL: int = 1
"""zlib level for transport PNGs.

Level 1 is several times faster than the default 6 and the bytes only travel
to a model API within one run, so size matters less than encode time.  It is
fixed so that equal pixels always give equal bytes (request caches key on
them).
"""

_HIGH_DEPTH_MODES = frozenset({"I", "F"})
_FOREIGN_COLOUR_MODES = frozenset({"CMYK", "YCbCr", "LAB", "HSV"})
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_PLAIN_MODES = frozenset({"RGB", "RGBX", "L", "1", "P"})
# Raw decoder modes that read 16-bit samples into an 8-bit Pillow mode (e.g. a
# 48-bit RGB PNG opens as mode "RGB" with rawmode "RGB;16B").  BMP's packed
# 5-6-5 rawmodes ("BGR;16") start with BGR and are deliberately not matched:
# widening 5 or 6 bits to 8 loses nothing.
_WIDE_RAWMODE = re.compile(r"^(?:RGBA?|RGBX|LA);16")

Pixels = NDArray[np.uint8]


class ImageError(ValueError):
    """A stimulus file that cannot be used as-is.

    The message starts with the file path so that a failure deep inside a
    batch run points straight at the offending file.
    """

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path


def load_rgb(path: str | os.PathLike[str]) -> Pixels:
    """Decode ``path`` to a read-only H x W x 3 uint8 array of its stored pixels.

    The array is read-only because it is shared through :class:`ImageStore`
    and its hash is the stimulus identity: an in-place edit anywhere would
    corrupt every later use of it.
    """
    name = os.fspath(path)
    _check_file(name)
    try:
        with Image.open(name) as img:
            _check_header(name, img)
            # Force the full decode now: Pillow decodes lazily, and a truncated
            # or corrupt file must fail here, not halfway through a run.
            img.load()
            rgb_img = _to_rgb(name, img)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(
            name,
            "not a recognised image format; supply a PNG, JPEG, BMP, TIFF or "
            "WebP file (the content decides the format, not the extension)",
        ) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(name, f"refused as a possible decompression bomb ({exc})") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        # Pillow reports truncation and corrupt streams as OSError, and some
        # malformed chunks as SyntaxError/ValueError/EOFError.
        raise ImageError(
            name,
            f"truncated or corrupt image data; re-export or re-download the "
            f"file ({type(exc).__name__}: {exc})",
        ) from exc
    # EXIF orientation is deliberately NOT applied: the stored pixel grid is
    # what the dataset's scores, references and full-reference metrics refer
    # to, and other readers disagree on whether to honour the tag.  Rotating
    # here would make the model judge a different array from the one hashed
    # and scored elsewhere.
    arr = np.ascontiguousarray(np.asarray(rgb_img, dtype=np.uint8))
    arr.setflags(write=False)
    return arr


def _check_file(name: str) -> None:
    """Refuse unusable paths up front so the message names the real problem.

    Without this, Pillow's errors for a missing file or a directory read like
    decoding failures.
    """
    if not os.path.exists(name):
        raise ImageError(name, "file not found; check the dataset root and file list")
    if not os.path.isfile(name):
        raise ImageError(name, "is not a regular file (a directory?); point at an image file")
    if os.path.getsize(name) == 0:
        raise ImageError(name, "file is empty (0 bytes); re-export or re-download it")


def _check_header(name: str, img: ImageFile.ImageFile) -> None:
    """Refuse from the header alone what must never be decoded or converted."""
    width, height = img.size
    if width * height > MAX_PIXELS:
        raise ImageError(
            name,
            f"{width}x{height} is {width * height} pixels, over the limit of "
            f"{MAX_PIXELS} (decompression-bomb guard); downscale it offline if "
            f"it really is a stimulus",
        )
    if min(width, height) < MIN_SIDE:
        raise ImageError(
            name,
            f"image is too small ({width}x{height}); both sides must be at "
            f"least {MIN_SIDE} pixels to be judged",
        )
    mode = img.mode
    if mode in _HIGH_DEPTH_MODES or mode.startswith("I;16") or _reads_wide_samples(img):
        raise ImageError(
            name,
            f"high bit depth or floating-point pixels (mode {mode}); the suite "
            f"will not silently requantise the stimulus to 8 bits: convert it "
            f"yourself and document how",
        )
    if mode in _FOREIGN_COLOUR_MODES:
        raise ImageError(
            name,
            f"colour space {mode} is not RGB; convert to RGB explicitly, because "
            f"an implicit colour conversion would change what is judged",
        )
    if mode not in _ALPHA_MODES and mode not in _PLAIN_MODES:
        raise ImageError(name, f"unsupported pixel mode {mode}; convert it to 8-bit RGB explicitly")


def _reads_wide_samples(img: ImageFile.ImageFile) -> bool:
    """Spot 16-bit colour files that Pillow would narrow to 8 bits silently."""
    for tile in img.tile:
        args = tile.args
        rawmode = args[0] if isinstance(args, tuple) and args else args
        if isinstance(rawmode, str) and _WIDE_RAWMODE.match(rawmode):
            return True
    return False


def _to_rgb(name: str, img: Image.Image) -> Image.Image:
    """Reduce a decoded image to RGB without changing any visible pixel.

    Alpha is accepted only when it is fully opaque, since otherwise what the
    viewer saw depended on a background the dataset does not record.
    """
    if img.mode in _ALPHA_MODES or "transparency" in img.info:
        rgba = img.convert("RGBA")
        alpha = np.asarray(rgba.getchannel("A"))
        see_through = int(np.count_nonzero(alpha != 255))
        if see_through:
            raise ImageError(
                name,
                f"has transparency ({see_through} of {alpha.size} pixels not "
                f"fully opaque); what a viewer sees would depend on the "
                f"background: flatten it onto the background the dataset's "
                f"raters saw and save as RGB",
            )
        return rgba.convert("RGB")
    return img if img.mode == "RGB" else img.convert("RGB")


def rgb_of(image: NDArray[np.generic] | Image.Image) -> NDArray[np.uint8]:
    """8-bit RGB pixels of an in-memory image (uint8 H×W×3 or grey H×W array, RGB or L PIL image);
    anything a model could not be shown as it is is a ValueError saying what to change."""
    if isinstance(image, Image.Image):
        if image.mode not in ("RGB", "L"):
            raise ValueError(f"a PIL image of mode {image.mode!r}: convert it with .convert('RGB') first")
        image = np.asarray(image.convert("RGB"))
    if not isinstance(image, np.ndarray):
        raise TypeError(f"an image is a path, a numpy array or a PIL image, not {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(
            f"an image array must be uint8 (0–255), not {image.dtype}: scale it and use .astype(np.uint8)"
        )
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"an image array must be H×W×3 (RGB) or H×W (grey), not of shape {image.shape}")
    if min(image.shape[:2]) < 1:
        raise ValueError(f"an image array of shape {image.shape} holds no pixels")
    return np.ascontiguousarray(image)


def pixel_hash(rgb: NDArray[np.generic]) -> str:
    """Hex SHA-256 identifying a pixel array independently of its file format.

    Shape and dtype go into the digest so that arrays with the same bytes but
    a different layout (e.g. 2x6x3 vs 4x3x3) cannot collide.
    """
    arr = np.ascontiguousarray(rgb)
    digest = hashlib.sha256()
    digest.update(f"iqa_eval.pixels.v1|{arr.dtype.str}|{arr.shape}\n".encode())
    digest.update(arr.data)
    return digest.hexdigest()


# Transport encodings: the same pixels as PNG at different zlib levels, hence different bytes.
# "png" is what every query uses; "png9" exists so that a metamorphic test can check that a
# model's judgement does not depend on the bytes of a lossless file, only on its pixels.
ENCODINGS: dict[str, int] = {"png": PNG_COMPRESS_LEVEL, "png9": 9}


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PASSTHROUGH_CHUNKS = frozenset({b"IHDR", b"IDAT", b"IEND", b"pHYs"})
"""Chunks a file may hold and still be sent as it is: the pixels and the physical pixel size.
Colour management (iCCP, sRGB, gAMA, cHRM, cICP) could make a decoder show other colours than
the stored samples, transparency (tRNS) other pixels, and text chunks could tell a model what a
dataset wrote about the image (a distortion's name, a score)."""


def sendable_png(data: bytes) -> bool:
    """Whether a file's bytes are a PNG any decoder turns into exactly its 8-bit RGB samples.

    Such a file is sent as it is rather than decoded and encoded again: the model gets the same
    pixels, and the run saves an encode per image (about 12 ms at 384x384).
    """
    if not data.startswith(_PNG_SIGNATURE):
        return False
    at, seen_ihdr = len(_PNG_SIGNATURE), False
    while at + 12 <= len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind = data[at + 4 : at + 8]
        body = data[at + 8 : at + 8 + length]
        crc = data[at + 8 + length : at + 12 + length]
        if len(body) != length or len(crc) != 4 or zlib.crc32(kind + body) != struct.unpack(">I", crc)[0]:
            return False
        if kind not in _PASSTHROUGH_CHUNKS:
            return False
        if kind == b"IHDR":
            # width, height, bit depth 8, colour type 2 (RGB), compression 0, filter 0, no interlace
            if length != 13 or body[8:13] != bytes([8, 2, 0, 0, 0]):
                return False
            seen_ihdr = True
        elif not seen_ihdr:
            return False
        at += 12 + length
        if kind == b"IEND":
            return bool(at == len(data))
    return False


def encode_png(rgb: Pixels, compress_level: int = PNG_COMPRESS_LEVEL) -> bytes:
    """Losslessly encode an RGB array for transport to a model.

    PNG is used because every multimodal API accepts it and it is lossless.
    No metadata chunks are written and the compression level is fixed, so the
    bytes are a function of the pixels alone.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"encode_png needs an HxWx3 uint8 array, got shape {rgb.shape} dtype {rgb.dtype}")
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


@dataclass(frozen=True)
class _Decoded:
    pixels: Pixels
    stimulus: Stimulus


class ImageStore:
    """Thread-safe per-run memo: each file decoded, hashed and PNG-encoded at most once per run.

    Protocols ask for the same image many times (several prompts, paired
    comparisons, repeated trials) and from several worker threads; decoding
    and encoding once keeps the cost proportional to the number of distinct
    files.  Entries are keyed by the path string as given, so the returned
    :class:`Stimulus` always carries the caller's own spelling of the path.

    A file that is already a plain 8-bit RGB PNG (:func:`sendable_png`) is sent
    as its own bytes under the ``png`` encoding; any encoding that has to be
    made is kept in ``keep`` (when given), named by pixel hash and encoding,
    so that no image is encoded twice across runs either.
    """

    def __init__(self, keep: str | os.PathLike[str] | None = None) -> None:
        self.keep = None if keep is None else Path(keep)
        self._guard = threading.Lock()
        self._path_locks: dict[str, threading.Lock] = {}
        self._decoded: dict[str, _Decoded] = {}
        self._pngs: dict[tuple[str, str], bytes] = {}
        self._decode_count = 0
        self._encode_count = 0

    @property
    def decode_count(self) -> int:
        """Number of file decodes so far; benchmarks assert it equals the distinct files."""
        with self._guard:
            return self._decode_count

    @property
    def encode_count(self) -> int:
        """Number of PNG encodes so far; benchmarks assert it equals the distinct files."""
        with self._guard:
            return self._encode_count

    def stimulus(self, path: str | os.PathLike[str]) -> Stimulus:
        """Metadata of ``path``, decoding the file on first use."""
        return self._get_decoded(os.fspath(path)).stimulus

    def stimulus_of(self, image: NDArray[np.generic] | Image.Image, folder: Path) -> Stimulus:
        """The stimulus of an in-memory image (a user's test made it): written once to ``folder``
        as a PNG named by its pixel hash, so equal pixels are one stimulus in this run and the
        next, and what is sent is read back like any file."""
        rgb = rgb_of(image)
        path = folder / f"{pixel_hash(rgb)[:32]}.png"
        if not path.exists():
            _write_atomically(path, encode_png(rgb))  # two xdist workers may write the same pixels
        return self.stimulus(path)

    def pixels(self, path: str | os.PathLike[str]) -> Pixels:
        """Read-only decoded pixels of ``path``, shared between callers."""
        return self._get_decoded(os.fspath(path)).pixels

    def png(self, path: str | os.PathLike[str], encoding: str = "png") -> bytes:
        """Transport PNG of ``path``, made once however many requests use it.

        The same file always gives the same bytes, so a request body is a function of its
        inputs (cache keys and replays rely on it).
        """
        if encoding not in ENCODINGS:
            raise ValueError(f"unknown transport encoding {encoding!r}; known: {', '.join(ENCODINGS)}")
        key = os.fspath(path)
        cached = self._pngs.get((key, encoding))
        if cached is not None:
            return cached
        own = _own_bytes(key) if encoding == "png" else None
        if own is not None:
            # The file is what travels: decoding it here would only repeat the work of whoever
            # made its stimulus (its pixel hash is in the query's key already).
            with self._guard:
                return self._pngs.setdefault((key, encoding), own)
        # Decode before taking the path lock: the decode takes that same
        # (non-reentrant) lock itself.
        decoded = self._get_decoded(key)
        with self._lock_for(key):
            cached = self._pngs.get((key, encoding))
            if cached is None:
                cached = self._transport(decoded, encoding)
                self._pngs[(key, encoding)] = cached
            return cached

    def _transport(self, decoded: _Decoded, encoding: str) -> bytes:
        kept = None if self.keep is None else self.keep / f"{decoded.stimulus.sha256}.{encoding}.png"
        if kept is not None and kept.is_file():
            return kept.read_bytes()
        data = encode_png(decoded.pixels, ENCODINGS[encoding])
        with self._guard:
            self._encode_count += 1
        if kept is not None:
            _write_atomically(kept, data)
        return data

    def _lock_for(self, key: str) -> threading.Lock:
        # One lock per path: callers for the same file wait for the single
        # decode, while different files still decode in parallel.
        with self._guard:
            return self._path_locks.setdefault(key, threading.Lock())

    def _get_decoded(self, key: str) -> _Decoded:
        cached = self._decoded.get(key)
        if cached is not None:
            return cached
        with self._lock_for(key):
            cached = self._decoded.get(key)
            if cached is None:
                pixels = load_rgb(key)
                with self._guard:
                    self._decode_count += 1
                height, width = pixels.shape[:2]
                cached = _Decoded(pixels, Stimulus(key, pixel_hash(pixels), width, height))
                self._decoded[key] = cached
            return cached


def _own_bytes(path: str) -> bytes | None:
    """The file's bytes when they can travel as they are; None when the file must be decoded
    (which also says what is wrong with a file that cannot be read)."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return None
    return data if sendable_png(data) else None


def _write_atomically(path: Path, data: bytes) -> None:
    """Concurrent runs and workers may keep the same encoding: each writes a file of its own and
    renames it into place, so a reader sees a whole file or none."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
