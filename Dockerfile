# effdl_ros on a ROS 2 base image: the same `effdl-ros` commands as on the host, e.g. the DLBench
# host-vs-container comparison (docs/replay-bench.md):
#   docker build -t effdl_ros .
#   docker run --rm -v "$PWD/out:/out" effdl_ros effdl-ros bench dlbench --threads 1,2 --json /out/container.json
# Build arguments:
#   ROS_DISTRO       ROS 2 distribution of the base image (jazzy; humble also works)
#   PIP_EXTRA_ARGS   extra pip options, e.g. an index of CPU-only PyTorch wheels (smaller image), or
#                    pinned versions (torch==X) so that host and container run the same PyTorch
ARG ROS_DISTRO=jazzy
FROM ros:${ROS_DISTRO}-ros-base

ARG ROS_DISTRO
ARG PIP_EXTRA_ARGS=""
ENV DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1

RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      python3-pip python3-venv \
      ros-${ROS_DISTRO}-vision-msgs ros-${ROS_DISTRO}-rmw-cyclonedds-cpp \
 && rm -rf /var/lib/apt/lists/*

# A virtual environment that still sees the distribution's rclpy (system site packages); the
# distribution's Python is externally managed (PEP 668), so pip installs go here.
# Without a colcon build of this package its messages are not rclpy types: use the dds backend
# (ROS 2 wire format, no ROS install needed). After `colcon build`, set EFFDL_ROS_BACKEND=rclpy.
RUN python3 -m venv --system-site-packages /opt/effdl_ros
ENV PATH=/opt/effdl_ros/bin:${PATH} \
    RMW_IMPLEMENTATION=rmw_cyclonedds_cpp \
    EFFDL_ROS_BACKEND=dds

WORKDIR /opt/effdl_ros/src
# Dependencies first (a layer that survives source edits), then the package itself.
COPY setup.py setup.cfg ./
RUN mkdir -p effdl_ros && touch effdl_ros/__init__.py \
 && pip install ${PIP_EXTRA_ARGS} ".[test]" \
 && pip uninstall -y effdl_ros
COPY . .
RUN pip install ${PIP_EXTRA_ARGS} --no-deps ".[test]" \
 && effdl-ros --help > /dev/null

# ros_entrypoint.sh (from the base image) sources /opt/ros/$ROS_DISTRO/setup.bash first.
CMD ["effdl-ros", "--help"]
