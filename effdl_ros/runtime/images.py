"""cv_bridge-compatible image conversion, without cv_bridge where it is not installed.

Same function names and arguments as cv_bridge.CvBridge's methods; where cv_bridge imports (a ROS
install) its own implementation is used. Row padding (`step`) and `is_bigendian` are honoured; a
message whose sizes disagree or whose encoding is unknown raises ImageConversionError (one sentence).
"""
from __future__ import annotations

import sys
from typing import Any, Optional

import numpy as np

from effdl_ros.errors import DataError


class ImageConversionError(DataError):
    pass


# encoding -> (numpy dtype, channels)
ENCODINGS = {
    "rgb8": (np.uint8, 3), "bgr8": (np.uint8, 3), "rgba8": (np.uint8, 4), "bgra8": (np.uint8, 4),
    "mono8": (np.uint8, 1), "mono16": (np.uint16, 1), "8UC1": (np.uint8, 1), "8UC3": (np.uint8, 3),
    "8UC4": (np.uint8, 4), "16UC1": (np.uint16, 1), "16SC1": (np.int16, 1),
    "32FC1": (np.float32, 1), "32SC1": (np.int32, 1), "64FC1": (np.float64, 1),
    "rgb16": (np.uint16, 3), "bgr16": (np.uint16, 3),
}
_COLOR_ORDER = {"rgb8": "RGB", "bgr8": "BGR", "rgba8": "RGBA", "bgra8": "BGRA", "mono8": "GRAY",
                "mono16": "GRAY", "rgb16": "RGB", "bgr16": "BGR"}


def _cv_bridge():
    try:
        from cv_bridge import CvBridge  # type: ignore

        return CvBridge()
    except Exception:  # noqa: BLE001 - optional
        return None


_BRIDGE = None


def _bridge():
    global _BRIDGE
    if _BRIDGE is None:
        _BRIDGE = _cv_bridge() or False
    return _BRIDGE or None


def imgmsg_to_cv2(img_msg: Any, desired_encoding: str = "passthrough") -> np.ndarray:
    """sensor_msgs/Image -> numpy array (H, W) or (H, W, C), converted to desired_encoding."""
    bridge = _bridge()
    if bridge is not None:
        return bridge.imgmsg_to_cv2(img_msg, desired_encoding)
    encoding = img_msg.encoding
    if encoding not in ENCODINGS:
        raise ImageConversionError(f"unknown image encoding {encoding!r}; supported: "
                                   + ", ".join(sorted(ENCODINGS)))
    dtype, channels = ENCODINGS[encoding]
    dtype = np.dtype(dtype).newbyteorder(">" if img_msg.is_bigendian else "<")
    height, width, step = int(img_msg.height), int(img_msg.width), int(img_msg.step)
    row_bytes = width * channels * dtype.itemsize
    if height <= 0 or width <= 0:
        raise ImageConversionError(f"image has no pixels ({width}x{height})")
    if step < row_bytes:
        raise ImageConversionError(f"step {step} is shorter than a {encoding} row of "
                                   f"{width} pixels ({row_bytes} bytes)")
    data = np.frombuffer(memoryview(img_msg.data), dtype=np.uint8) if not isinstance(
        img_msg.data, np.ndarray) else img_msg.data.view(np.uint8).reshape(-1)
    if data.size != step * height:
        raise ImageConversionError(f"image data has {data.size} bytes, but step x height = "
                                   f"{step} x {height} = {step * height}")
    rows = data.reshape(height, step)[:, :row_bytes]
    image = np.ascontiguousarray(rows).view(dtype).reshape(
        (height, width) if channels == 1 else (height, width, channels))
    if dtype.byteorder not in ("=", "|", "<" if sys.byteorder == "little" else ">"):
        image = image.byteswap().view(image.dtype.newbyteorder())
    image = image.astype(image.dtype.newbyteorder("="), copy=False)
    if desired_encoding in ("passthrough", encoding):
        return image
    return convert_color(image, encoding, desired_encoding)


def convert_color(image: np.ndarray, src: str, dst: str) -> np.ndarray:
    import cv2

    if src not in _COLOR_ORDER or dst not in _COLOR_ORDER:
        raise ImageConversionError(f"cannot convert an image from {src} to {dst}")
    a, b = _COLOR_ORDER[src], _COLOR_ORDER[dst]
    out = image
    if a != b:
        code = getattr(cv2, f"COLOR_{a}2{b}", None)
        if code is None:
            raise ImageConversionError(f"cannot convert an image from {src} to {dst}")
        out = cv2.cvtColor(image, code)
    src_depth, dst_depth = ENCODINGS[src][0], ENCODINGS[dst][0]
    if src_depth != dst_depth:
        out = (out / 257.0).round().astype(np.uint8) if dst_depth == np.uint8 else (
            out.astype(np.uint16) * 257)
    return out


def cv2_to_imgmsg(cvim: np.ndarray, encoding: str = "passthrough", header: Optional[Any] = None):
    """numpy array -> sensor_msgs/Image (no row padding, native byte order)."""
    from effdl_ros.runtime.messages import Header, Image

    bridge = _bridge()
    if bridge is not None:
        msg = bridge.cv2_to_imgmsg(cvim, encoding)
        if header is not None:
            msg.header = header
        return msg
    if not isinstance(cvim, np.ndarray):
        raise ImageConversionError("cv2_to_imgmsg needs a numpy array")
    channels = 1 if cvim.ndim == 2 else cvim.shape[2]
    if encoding == "passthrough":
        encoding = {(np.dtype(np.uint8), 1): "mono8", (np.dtype(np.uint8), 3): "bgr8",
                    (np.dtype(np.uint8), 4): "bgra8", (np.dtype(np.uint16), 1): "mono16",
                    (np.dtype(np.float32), 1): "32FC1"}.get((cvim.dtype, channels))
        if encoding is None:
            raise ImageConversionError(f"no encoding for a {cvim.dtype} image with {channels} channels")
    if encoding not in ENCODINGS:
        raise ImageConversionError(f"unknown image encoding {encoding!r}")
    dtype, want_channels = ENCODINGS[encoding]
    if np.dtype(dtype) != cvim.dtype or want_channels != channels:
        raise ImageConversionError(f"a {cvim.dtype} image with {channels} channels cannot be "
                                   f"encoded as {encoding}")
    contiguous = np.ascontiguousarray(cvim)
    height, width = contiguous.shape[:2]
    return Image(header=header if header is not None else Header(), height=height, width=width,
                 encoding=encoding, is_bigendian=int(sys.byteorder == "big"),
                 step=width * channels * contiguous.dtype.itemsize,
                 data=_byte_sequence(contiguous))


def _byte_sequence(array: np.ndarray):
    """uint8[] as each backend stores it: array('B') for rclpy's classes, numpy otherwise."""
    from effdl_ros.runtime.backend import uses_rclpy

    flat = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
    if uses_rclpy():
        import array as pyarray

        return pyarray.array("B", flat.tobytes())
    return flat.copy()


def compressed_imgmsg_to_cv2(cmprs_img_msg: Any, desired_encoding: str = "passthrough") -> np.ndarray:
    """sensor_msgs/CompressedImage (jpeg, png) -> BGR (or grey) array, as cv_bridge decodes."""
    import cv2

    fmt = (cmprs_img_msg.format or "").lower()
    if not any(k in fmt for k in ("jpeg", "jpg", "png")) and fmt not in ("", "bgr8", "rgb8", "mono8"):
        raise ImageConversionError(f"unsupported compressed image format {cmprs_img_msg.format!r}; "
                                   "supported: jpeg, png")
    buffer = np.frombuffer(memoryview(cmprs_img_msg.data), dtype=np.uint8) if not isinstance(
        cmprs_img_msg.data, np.ndarray) else cmprs_img_msg.data.astype(np.uint8, copy=False)
    image = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED) if buffer.size else None
    if image is None:
        raise ImageConversionError(f"cannot decode a {cmprs_img_msg.format!r} image of "
                                   f"{buffer.size} bytes")
    if desired_encoding in ("passthrough", "bgr8") or image.ndim == 2 and desired_encoding == "mono8":
        return image
    source = "mono8" if image.ndim == 2 else ("bgra8" if image.shape[2] == 4 else "bgr8")
    return convert_color(image, source, desired_encoding)


def cv2_to_compressed_imgmsg(cvim: np.ndarray, dst_format: str = "jpg", header: Optional[Any] = None):
    """BGR (or grey) array -> sensor_msgs/CompressedImage in jpg or png."""
    import cv2

    from effdl_ros.runtime.messages import CompressedImage, Header

    if dst_format not in ("jpg", "jpeg", "png"):
        raise ImageConversionError(f"unsupported compressed image format {dst_format!r}")
    ok, buffer = cv2.imencode("." + ("jpg" if dst_format == "jpeg" else dst_format), cvim)
    if not ok:
        raise ImageConversionError(f"OpenCV could not encode the image as {dst_format}")
    return CompressedImage(header=header if header is not None else Header(),
                           format="jpeg" if dst_format in ("jpg", "jpeg") else "png",
                           data=_byte_sequence(buffer))
