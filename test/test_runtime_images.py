import numpy as np
import pytest

from effdl_ros.runtime.images import (
    ImageConversionError,
    compressed_imgmsg_to_cv2,
    cv2_to_compressed_imgmsg,
    cv2_to_imgmsg,
    imgmsg_to_cv2,
)
from effdl_ros.runtime.messages import CompressedImage, Image

RNG = np.random.default_rng(0)
CASES = [
    ("rgb8", np.uint8, 3), ("bgr8", np.uint8, 3), ("rgba8", np.uint8, 4), ("bgra8", np.uint8, 4),
    ("mono8", np.uint8, 1), ("mono16", np.uint16, 1), ("16UC1", np.uint16, 1), ("32FC1", np.float32, 1),
]


@pytest.mark.parametrize("encoding,dtype,channels", CASES)
def test_round_trip_every_encoding(encoding, dtype, channels):
    shape = (5, 7) if channels == 1 else (5, 7, channels)
    array = (RNG.random(shape) * 1000).astype(dtype)
    msg = cv2_to_imgmsg(array, encoding)
    assert (msg.height, msg.width, msg.encoding) == (5, 7, encoding)
    assert msg.step == 7 * channels * np.dtype(dtype).itemsize
    np.testing.assert_array_equal(imgmsg_to_cv2(msg), array)


def test_row_padding_is_skipped():
    array = RNG.integers(0, 255, (4, 3, 3), dtype=np.uint8)
    padded = np.zeros((4, 16), dtype=np.uint8)
    padded[:, :9] = array.reshape(4, 9)
    msg = Image(height=4, width=3, encoding="rgb8", step=16, data=padded.reshape(-1))
    np.testing.assert_array_equal(imgmsg_to_cv2(msg), array)


def test_big_endian_16bit():
    array = np.array([[1, 256, 65535]], dtype=np.uint16)
    msg = Image(height=1, width=3, encoding="mono16", is_bigendian=1, step=6,
                data=np.frombuffer(array.astype(">u2").tobytes(), dtype=np.uint8).copy())
    np.testing.assert_array_equal(imgmsg_to_cv2(msg), array)


def test_colour_conversion_rgb_to_bgr():
    rgb = np.zeros((2, 2, 3), dtype=np.uint8)
    rgb[..., 0] = 200
    bgr = imgmsg_to_cv2(cv2_to_imgmsg(rgb, "rgb8"), "bgr8")
    assert bgr[0, 0].tolist() == [0, 0, 200]


@pytest.mark.parametrize("change", [
    dict(encoding="yuv422_weird"), dict(step=2), dict(height=10), dict(width=0),
])
def test_bad_messages_raise_clear_error(change):
    msg = cv2_to_imgmsg(np.zeros((4, 4, 3), dtype=np.uint8), "rgb8")
    for key, value in change.items():
        setattr(msg, key, value)
    with pytest.raises(ImageConversionError):
        imgmsg_to_cv2(msg)


def test_compressed_round_trip_png_and_bad_format():
    bgr = RNG.integers(0, 255, (6, 8, 3), dtype=np.uint8)
    msg = cv2_to_compressed_imgmsg(bgr, "png")
    assert msg.format == "png"
    np.testing.assert_array_equal(compressed_imgmsg_to_cv2(msg), bgr)
    jpeg = compressed_imgmsg_to_cv2(cv2_to_compressed_imgmsg(bgr, "jpg"))
    assert jpeg.shape == bgr.shape
    with pytest.raises(ImageConversionError):
        compressed_imgmsg_to_cv2(CompressedImage(format="qoi; rgb8", data=np.zeros(10, np.uint8)))
    with pytest.raises(ImageConversionError):
        compressed_imgmsg_to_cv2(CompressedImage(format="jpeg", data=np.zeros(10, np.uint8)))
