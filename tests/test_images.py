"""Tests for iqa_eval.images: every bad input is built on the fly in tmp_path."""

from __future__ import annotations

import io
import struct
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from numpy.typing import NDArray
from PIL import Image

from iqa_eval import images
from iqa_eval.images import ImageError, ImageStore, Stimulus, encode_png, load_rgb, pixel_hash

Pixels = NDArray[np.uint8]


def _rgb(h: int = 16, w: int = 20, seed: int = 0) -> Pixels:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_bytes(width: int, height: int, bit_depth: int, colour_type: int, raw: bytes) -> bytes:
    """A hand-made PNG, for headers and bit depths Pillow will not write."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(raw))
        + _chunk(b"IEND", b"")
    )


def _png_chunk_types(data: bytes) -> list[bytes]:
    kinds, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kinds.append(data[pos + 4 : pos + 8])
        pos += 12 + length
    return kinds


def _expect_error(path: Path, phrase: str) -> ImageError:
    with pytest.raises(ImageError) as info:
        load_rgb(path)
    message = str(info.value)
    assert message.startswith(str(path)), message
    assert path.name in message
    assert phrase in message, message
    assert isinstance(info.value, ValueError)
    return info.value


# --- refused inputs -------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    _expect_error(tmp_path / "nope.png", "file not found")


def test_directory_is_not_a_file(tmp_path: Path) -> None:
    folder = tmp_path / "folder.png"
    folder.mkdir()
    _expect_error(folder, "not a regular file")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    _expect_error(path, "file is empty")


def test_random_bytes_with_png_extension(tmp_path: Path) -> None:
    path = tmp_path / "noise.png"
    path.write_bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    _expect_error(path, "not a recognised image format")


@pytest.mark.parametrize(("fmt", "suffix"), [("PNG", ".png"), ("JPEG", ".jpg")])
def test_truncated_file(tmp_path: Path, fmt: str, suffix: str) -> None:
    buf = io.BytesIO()
    Image.fromarray(_rgb(64, 64)).save(buf, format=fmt)
    path = tmp_path / f"cut{suffix}"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    err = _expect_error(path, "truncated or corrupt")
    assert "OSError" in str(err)  # the original message is kept for diagnosis


@pytest.mark.parametrize(("fmt", "suffix"), [("JPEG", ".jpg"), ("TIFF", ".tif")])
def test_cmyk_is_refused(tmp_path: Path, fmt: str, suffix: str) -> None:
    path = tmp_path / f"cmyk{suffix}"
    Image.fromarray(_rgb()).convert("CMYK").save(path, format=fmt)
    _expect_error(path, "convert to RGB explicitly")


def test_lab_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "lab.tif"
    Image.fromarray(_rgb()).convert("LAB").save(path, format="TIFF")
    _expect_error(path, "convert to RGB explicitly")


def test_16bit_grey_png_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((16, 16), 40000, dtype=np.uint16)).save(path)
    assert Image.open(path).mode.startswith("I;16")
    _expect_error(path, "will not silently requantise")


def test_48bit_rgb_png_is_refused(tmp_path: Path) -> None:
    # Pillow opens this as plain "RGB", silently dropping the low byte of each sample.
    raw = b"".join(b"\x00" + bytes(range(96)) for _ in range(16))
    path = tmp_path / "deep_rgb.png"
    path.write_bytes(_png_bytes(16, 16, 16, 2, raw))
    assert Image.open(path).mode == "RGB"
    _expect_error(path, "will not silently requantise")


def test_float_tiff_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "float.tif"
    Image.fromarray(np.linspace(0, 1, 256, dtype=np.float32).reshape(16, 16)).save(path)
    _expect_error(path, "mode F")


def _palette_image(transparent_index: int) -> Image.Image:
    img = Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8) % 4, mode="P")
    img.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] + [9, 9, 9] * 252)
    img.info["transparency"] = transparent_index
    return img


def test_palette_with_used_transparent_index_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "pal.png"
    _palette_image(2).save(path, transparency=2)
    _expect_error(path, "16 of 64 pixels not fully opaque")


def test_palette_with_unused_transparent_index_loads(tmp_path: Path) -> None:
    path = tmp_path / "pal_opaque.png"
    _palette_image(200).save(path, transparency=200)
    rgb = load_rgb(path)
    assert rgb.shape == (8, 8, 3)
    assert tuple(rgb[0, 1]) == (255, 0, 0)


def test_rgb_with_transparent_colour_key_is_refused(tmp_path: Path) -> None:
    arr = _rgb(8, 8)
    path = tmp_path / "keyed.png"
    Image.fromarray(arr).save(path, transparency=tuple(int(v) for v in arr[3, 4]))
    _expect_error(path, "transparency")


def test_rgba_with_one_transparent_pixel_is_refused(tmp_path: Path) -> None:
    rgba = np.dstack([_rgb(8, 8), np.full((8, 8), 255, np.uint8)])
    rgba[5, 6, 3] = 254
    path = tmp_path / "alpha.png"
    Image.fromarray(rgba).save(path)
    _expect_error(path, "1 of 64 pixels not fully opaque")


def test_too_small(tmp_path: Path) -> None:
    path = tmp_path / "dot.png"
    Image.new("RGB", (1, 1)).save(path)
    _expect_error(path, "too small (1x1)")


def test_min_side_boundary(tmp_path: Path) -> None:
    ok, small = tmp_path / "ok.png", tmp_path / "small.png"
    Image.new("RGB", (images.MIN_SIDE, 40)).save(ok)
    Image.new("RGB", (images.MIN_SIDE - 1, 40)).save(small)
    assert load_rgb(ok).shape == (40, images.MIN_SIDE, 3)
    _expect_error(small, "too small")


def test_pixel_limit_is_read_at_call_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "big.png"
    Image.fromarray(_rgb(16, 16)).save(path)
    monkeypatch.setattr(images, "MAX_PIXELS", 255)
    _expect_error(path, "decompression-bomb guard")
    monkeypatch.setattr(images, "MAX_PIXELS", 256)
    assert load_rgb(path).shape == (16, 16, 3)


@pytest.mark.parametrize(
    ("side", "phrase"),
    [
        (7000, "over the limit of 40000000"),  # above MAX_PIXELS, below Pillow's own limit
        (50000, "decompression bomb"),  # Pillow raises DecompressionBombError itself
    ],
)
def test_header_claiming_a_huge_canvas(tmp_path: Path, side: int, phrase: str) -> None:
    # Only the header is valid: the refusal must come before any pixel is allocated.
    path = tmp_path / f"bomb{side}.png"
    path.write_bytes(_png_bytes(side, side, 8, 2, b"\x00" * 64))
    _expect_error(path, phrase)


# --- accepted inputs ------------------------------------------------------------------------


def test_output_is_contiguous_read_only_uint8(tmp_path: Path) -> None:
    arr = _rgb(12, 30)
    path = tmp_path / "plain.png"
    Image.fromarray(arr).save(path)
    rgb = load_rgb(str(path))
    assert rgb.dtype == np.uint8 and rgb.shape == (12, 30, 3)
    assert rgb.flags.c_contiguous and not rgb.flags.writeable
    np.testing.assert_array_equal(rgb, arr)
    with pytest.raises(ValueError):
        rgb[0, 0, 0] = 1


def test_content_decides_not_extension(tmp_path: Path) -> None:
    arr = _rgb()
    path = tmp_path / "actually_png.jpg"
    Image.fromarray(arr).save(path, format="PNG")
    np.testing.assert_array_equal(load_rgb(path), arr)


def test_fully_opaque_rgba_drops_alpha(tmp_path: Path) -> None:
    arr = _rgb()
    path = tmp_path / "opaque.png"
    Image.fromarray(np.dstack([arr, np.full(arr.shape[:2], 255, np.uint8)])).save(path)
    np.testing.assert_array_equal(load_rgb(path), arr)


def test_opaque_grey_alpha_is_replicated(tmp_path: Path) -> None:
    grey = _rgb()[..., 0]
    path = tmp_path / "la.png"
    Image.fromarray(np.dstack([grey, np.full(grey.shape, 255, np.uint8)]), mode="LA").save(path)
    np.testing.assert_array_equal(load_rgb(path), np.dstack([grey] * 3))


@pytest.mark.parametrize("mode", ["L", "1"])
def test_grey_and_bilevel_are_replicated(tmp_path: Path, mode: str) -> None:
    img = Image.fromarray(_rgb()).convert(mode)
    path = tmp_path / f"{mode}.png"
    img.save(path)
    expected = np.asarray(img.convert("L"))
    np.testing.assert_array_equal(load_rgb(path), np.dstack([expected] * 3))


def test_palette_is_expanded(tmp_path: Path) -> None:
    img = Image.fromarray(_rgb()).quantize(colors=16)
    path = tmp_path / "pal.png"
    img.save(path)
    np.testing.assert_array_equal(load_rgb(path), np.asarray(img.convert("RGB")))


def test_exif_orientation_is_not_applied(tmp_path: Path) -> None:
    arr = _rgb(10, 24)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "rotated.png"
    Image.fromarray(arr).save(path, exif=exif)
    assert Image.open(path).getexif()[0x0112] == 6
    np.testing.assert_array_equal(load_rgb(path), arr)


# --- identity and transport -----------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "options"), [("WEBP", {"lossless": True}), ("BMP", {}), ("TIFF", {})])
def test_pixel_hash_ignores_file_format(tmp_path: Path, fmt: str, options: dict[str, bool]) -> None:
    arr = _rgb(24, 24)
    png, other = tmp_path / "a.png", tmp_path / f"a.{fmt.lower()}"
    Image.fromarray(arr).save(png)
    Image.fromarray(arr).save(other, format=fmt, **options)
    assert pixel_hash(load_rgb(png)) == pixel_hash(load_rgb(other)) == pixel_hash(arr)


def test_pixel_hash_sees_one_pixel_and_the_layout() -> None:
    arr = _rgb(8, 8)
    changed = arr.copy()
    changed[7, 7, 2] ^= 1
    assert pixel_hash(arr) != pixel_hash(changed)
    # Same bytes, different shape or dtype: must not collide.
    assert pixel_hash(arr) != pixel_hash(arr.reshape(16, 4, 3))
    assert pixel_hash(arr) != pixel_hash(arr.view(np.int8))
    # Memory layout is not identity: a Fortran-ordered copy is the same stimulus.
    assert pixel_hash(np.asfortranarray(arr)) == pixel_hash(arr)
    assert len(pixel_hash(arr)) == 64


@settings(max_examples=40, derandomize=True, deadline=None)
@given(arrays(np.uint8, st.tuples(st.integers(1, 24), st.integers(1, 24), st.just(3))))
def test_encode_png_round_trips_exactly(arr: Pixels) -> None:
    data = encode_png(arr)
    decoded = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    np.testing.assert_array_equal(decoded, arr)
    assert encode_png(arr.copy()) == data  # equal pixels, equal bytes


def test_encode_png_writes_no_metadata() -> None:
    assert _png_chunk_types(encode_png(_rgb())) == [b"IHDR", b"IDAT", b"IEND"]


@pytest.mark.parametrize(
    "bad", [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 4), np.uint8), np.zeros((4, 4, 3), np.float32)]
)
def test_encode_png_rejects_non_rgb8(bad: NDArray[np.generic]) -> None:
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        encode_png(bad)  # type: ignore[arg-type]


# --- ImageStore -----------------------------------------------------------------------------


def _slow(fn: Callable[..., object]) -> Callable[..., object]:
    """Widen the race window so that a missing lock shows up as a repeated decode."""

    def wrapper(*args: object) -> object:
        time.sleep(0.05)
        return fn(*args)

    return wrapper


def test_store_decodes_and_encodes_once_under_concurrency(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(images, "load_rgb", _slow(images.load_rgb))
    monkeypatch.setattr(images, "encode_png", _slow(images.encode_png))
    arr_a, arr_b = _rgb(16, 20, seed=1), _rgb(16, 20, seed=2)
    path_a, path_b = tmp_path / "a.png", tmp_path / "b.png"
    Image.fromarray(arr_a).save(path_a)
    Image.fromarray(arr_b).save(path_b)

    store = ImageStore()
    barrier = threading.Barrier(8)
    results: list[tuple[Stimulus, bytes]] = []
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        path = str(path_a if i % 2 else path_b)
        try:
            barrier.wait()
            results.append((store.stimulus(path), store.png(path, "png9")))  # png9 is always encoded
        except BaseException as exc:  # surfaced below; a thread cannot fail the test itself
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert not errors
    assert store.decode_count == 2
    assert store.encode_count == 2
    assert {stim for stim, _ in results} == {
        Stimulus(str(path_a), pixel_hash(arr_a), 20, 16),
        Stimulus(str(path_b), pixel_hash(arr_b), 20, 16),
    }
    assert len({png for _, png in results}) == 2


def test_store_serves_cached_objects(tmp_path: Path) -> None:
    arr = _rgb(9, 11)
    path = tmp_path / "c.png"
    Image.fromarray(arr).save(path)
    store = ImageStore()
    first = store.pixels(path)
    assert store.pixels(str(path)) is first
    assert not first.flags.writeable
    assert store.png(path) is store.png(path)
    assert store.png(path, "png9") is store.png(path, "png9")
    assert store.stimulus(path) == Stimulus(str(path), pixel_hash(arr), 11, 9)
    assert (store.decode_count, store.encode_count) == (1, 1)  # the file itself travels as "png"
    for encoding in ("png", "png9"):
        np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(store.png(path, encoding)))), arr)


def test_store_propagates_image_errors(tmp_path: Path) -> None:
    store = ImageStore()
    with pytest.raises(ImageError, match="file not found"):
        store.png(tmp_path / "missing.png")
    assert store.decode_count == 0


# ------------------------------------------------------------- what travels to a model


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _with_chunk(png: bytes, kind: bytes, body: bytes) -> bytes:
    """The PNG with one more chunk right after IHDR (8-byte signature + 25-byte IHDR chunk)."""
    return png[:33] + _chunk(kind, body) + png[33:]


RGB = np.random.default_rng(5).integers(0, 256, (12, 16, 3), dtype=np.uint8)


def _pil_png(rgb: NDArray[np.uint8], **options: object) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", **options)
    return buf.getvalue()


def test_a_plain_rgb_png_is_sendable_as_it_is() -> None:
    for level in (0, 1, 6, 9):
        assert images.sendable_png(_pil_png(RGB, compress_level=level))
    assert images.sendable_png(encode_png(RGB))


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        (b"gAMA", struct.pack(">I", 45455)),  # a decoder may apply the gamma
        (b"sRGB", b"\x00"),
        (b"iCCP", b"profile\x00\x00" + zlib.compress(b"icc")),
        (b"cHRM", bytes(32)),
        (b"tRNS", bytes(6)),  # a transparent colour key
        (b"tEXt", b"Comment\x00gaussian blur, level 5"),  # what a dataset wrote about the image
    ],
)
def test_a_png_whose_chunks_could_change_or_reveal_what_is_seen_is_re_encoded(
    kind: bytes, body: bytes
) -> None:
    assert not images.sendable_png(_with_chunk(_pil_png(RGB), kind, body))


def test_other_files_are_not_sendable() -> None:
    png = _pil_png(RGB)
    grey = _pil_png(RGB[..., 0])
    rgba = _pil_png(np.dstack([RGB, np.full(RGB.shape[:2], 255, np.uint8)]))
    jpeg = io.BytesIO()
    Image.fromarray(RGB).save(jpeg, format="JPEG")
    broken_crc = png[:-4] + bytes(4)
    for data in (grey, rgba, jpeg.getvalue(), broken_crc, png + b"junk", png[:-12], b"", png[:8]):
        assert not images.sendable_png(data)


def test_a_sendable_file_travels_as_its_own_bytes_and_others_are_encoded_once_across_runs(
    tmp_path: Path,
) -> None:
    plain, tagged = tmp_path / "plain.png", tmp_path / "tagged.png"
    plain.write_bytes(_pil_png(RGB, compress_level=9))
    tagged.write_bytes(_with_chunk(_pil_png(RGB), b"gAMA", struct.pack(">I", 45455)))
    keep = tmp_path / "encoded"
    store = ImageStore(keep)
    assert store.png(plain) == plain.read_bytes() and store.encode_count == 0
    assert store.decode_count == 0  # what travels as it is needs no decode
    sent = store.png(tagged)
    assert sent == encode_png(RGB) and store.encode_count == 1
    assert store.png(plain, "png9") == encode_png(RGB, 9) and store.encode_count == 2
    assert sorted(p.name for p in keep.iterdir()) == sorted(
        f"{pixel_hash(RGB)}.{encoding}.png" for encoding in ("png", "png9")
    )
    again = ImageStore(keep)  # another run, another process: the kept encodings are read
    assert again.png(tagged) == sent and again.png(plain, "png9") == encode_png(RGB, 9)
    assert again.encode_count == 0
    assert ImageStore().png(tagged) == sent  # without a place to keep them, the same bytes


@settings(deadline=None, max_examples=40)
@given(
    rgb=arrays(np.uint8, st.tuples(st.integers(8, 24), st.integers(8, 24), st.just(3))),
    level=st.integers(0, 9),
    extra=st.sampled_from([None, b"gAMA", b"tEXt", b"pHYs"]),
    encoding=st.sampled_from(["png", "png9"]),
)
def test_whatever_travels_decodes_to_exactly_the_stored_pixels(rgb, level, extra, encoding) -> None:
    data = _pil_png(rgb, compress_level=level)
    if extra is not None:
        data = _with_chunk(
            data, extra, struct.pack(">I", 45455) if extra == b"gAMA" else b"k\x00v" + bytes(6)
        )
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "im.png"
        path.write_bytes(data)
        sent = ImageStore().png(path, encoding)
    with Image.open(io.BytesIO(sent)) as decoded:
        assert decoded.mode == "RGB" and decoded.info.get("gamma") is None
        assert np.array_equal(np.asarray(decoded), rgb)
