"""pip entry point; colcon builds the same tree through CMakeLists.txt (ament_cmake)."""
import glob
import os

from setuptools import find_packages, setup


def _share_files():
    files = []
    for folder in ("msg", "config", "launch", "models", "samples", "foxglove", "rviz"):
        for path in glob.glob(os.path.join(folder, "**", "*"), recursive=True):
            if os.path.isfile(path):
                files.append((os.path.join("share", "effdl_ros", os.path.dirname(path)), [path]))
    return files

setup(
    name="effdl_ros",
    version="0.1.0",
    description="Energy-efficient deep learning nodes for ROS 2: tracking, segmentation, dynamic inference, on-device training under energy budgets",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["effdl_ros", "effdl_ros.*"]),
    # Same layout as colcon's install space, so effdl_ros.resources finds them either way.
    data_files=_share_files(),
    install_requires=[
        "numpy>=1.21",
        "opencv-contrib-python-headless>=4.5,<6",
        "torch>=2.1",
        "torchvision>=0.16",
        "rosbags>=0.10",
        "cyclonedds>=11.0",
        "pyyaml>=5.4",
        "rich>=12",
        "tqdm>=4.60",
        "matplotlib>=3.5",
        "pot>=0.9",
        "scikit-learn>=1.0",
        "mlxtend>=0.21",
        "safetensors>=0.4",
        # Every qoi release (0.5 to 0.7.2) needs numpy>=1.22.4, which Humble's numpy 1.21 (Python
        # 3.10) does not meet: there qoi is the opt-in extra [qoi]; without it, QOI-compressed
        # images raise a DataError naming the package.
        "qoi>=0.6; python_version >= '3.11'",
    ],
    extras_require={
        # The Foxglove tests start a live server and connect a client; they skip without these.
        "test": ["pytest>=7", "hypothesis>=6", "ruff>=0.4", "foxglove-sdk>=0.30,<1", "websockets>=12", "mcap>=1.1,<2",
                 "dockerfile-parse>=1.2,<3"],  # the Dockerfile's dry check
        # effdl-ros run/demo/replay --foxglove: live view in Foxglove over WebSocket
        "foxglove": ["foxglove-sdk>=0.30,<1"],
        "nvml": ["nvidia-ml-py>=12"],
        "qoi": ["qoi>=0.6"],
    },
    entry_points={"console_scripts": ["effdl-ros = effdl_ros.cli.main:main"]},
)
