import numpy as np
import pytest
from conftest import add_bad_files, draw, png_with_size
from PIL import Image

from transferkit.data import DecodeError, load_image


def _solid(mode, value, size=(20, 10)):
    return Image.new(mode, size, value)


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (40, 20), (255, 0, 0))
    img.paste((0, 0, 255), (0, 0, 20, 20))  # left half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    img.save(tmp_path / "o.jpg", exif=exif, quality=95)
    out = load_image(tmp_path / "o.jpg")
    assert out.size == (20, 40)  # portrait after applying the orientation
    top = np.asarray(out)[2, 10]
    assert top[2] > 200 and top[0] < 60  # the blue half is now on top


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda: _solid("L", 100), (100, 100, 100)),  # grayscale replicated
        (lambda: _solid("1", 1), (255, 255, 255)),
        (lambda: _solid("RGBA", (255, 0, 0, 0)), (255, 255, 255)),  # fully transparent -> white
        (lambda: _solid("RGBA", (255, 0, 0, 255)), (255, 0, 0)),
        (lambda: _solid("LA", (0, 128)), (127, 127, 127)),  # half-transparent black on white
        (lambda: _solid("CMYK", (0, 255, 255, 0)), (255, 0, 0)),
        (lambda: _solid("I;16", 65535), (255, 255, 255)),  # 16-bit scaled by bit depth, not clipped
        (lambda: _solid("I;16", 32896), (128, 128, 128)),
        (lambda: _solid("I", 40000), (156, 156, 156)),
        (lambda: _solid("F", 0.5), (128, 128, 128)),  # float in [0, 1]
        (lambda: _solid("YCbCr", (76, 85, 255)), (254, 0, 0)),
    ],
)
def test_modes_become_8bit_rgb(make, expected):
    from transferkit.data.decode import to_rgb

    out = to_rgb(make())
    assert out.mode == "RGB"
    assert np.abs(np.asarray(out)[0, 0].astype(int) - expected).max() <= 1


def test_palette_with_transparency_composited_on_white(tmp_path):
    img = Image.new("P", (10, 10), 0)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    img.paste(1, (0, 0, 5, 10))
    img.info["transparency"] = 0  # index 0 (black) is transparent
    img.save(tmp_path / "p.png", transparency=0)
    arr = np.asarray(load_image(tmp_path / "p.png"))
    assert tuple(arr[0, 0]) == (255, 0, 0) and tuple(arr[0, 9]) == (255, 255, 255)


def test_16bit_png_file_round_trip(tmp_path):
    ramp = (np.linspace(0, 65535, 64).reshape(8, 8)).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "g16.png")
    out = np.asarray(load_image(tmp_path / "g16.png"))
    assert out.shape == (8, 8, 3)
    assert out[0, 0, 0] == 0 and out[-1, -1, 0] == 255
    assert np.all(np.diff(out[..., 0].ravel().astype(int)) >= 0)  # monotone ramp kept


def test_cmyk_jpeg_and_animated_gif(tmp_path):
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(tmp_path / "c.jpg")
    assert load_image(tmp_path / "c.jpg").mode == "RGB"
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 255, 0))]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    arr = np.asarray(load_image(tmp_path / "a.gif"))
    assert arr[0, 0, 0] > 200  # the first frame


def test_jpeg_draft_mode_only_when_it_keeps_the_target_size(tmp_path):
    big = draw("disc", np.random.default_rng(0), size=64).resize((1200, 900))
    big.save(tmp_path / "big.jpg", quality=90)
    full = load_image(tmp_path / "big.jpg")
    assert full.size == (1200, 900)
    drafted = load_image(tmp_path / "big.jpg", min_size=256)
    assert drafted.size == (300, 225) or min(drafted.size) >= 256
    assert min(drafted.size) >= 256 and drafted.size[0] < 1200  # reduced, but never below the target
    # a picture already near the target is not reduced at all
    draw("disc", np.random.default_rng(0), size=300).save(tmp_path / "small.jpg")
    assert load_image(tmp_path / "small.jpg", min_size=256).size == (300, 300)


def test_bad_files_raise_decode_error_with_reason(tmp_path):
    expected = add_bad_files(tmp_path)
    expected["missing.jpg"] = "not found"
    for name, keyword in expected.items():
        with pytest.raises(DecodeError) as exc:
            load_image(tmp_path / name)
        assert keyword in str(exc.value), (name, str(exc.value))


def test_decompression_bomb_between_one_and_two_times_the_limit_is_refused(tmp_path):
    # Pillow only warns between 1x and 2x its limit; transferkit treats that as a bomb too.
    limit = Image.MAX_IMAGE_PIXELS
    side = int((1.5 * limit) ** 0.5)
    (tmp_path / "b.png").write_bytes(png_with_size(side, side))
    # Pillow's own warning is expected here (transferkit silences it outside tests): asserted, not printed
    with pytest.warns(Image.DecompressionBombWarning), \
            pytest.raises(DecodeError, match="decompression bomb .*exceeds Pillow's limit"):
        load_image(tmp_path / "b.png")
