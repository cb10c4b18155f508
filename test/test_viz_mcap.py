"""`replay --record out.mcap`: an MCAP file that Foxglove and `ros2 bag info` open, read back with the
`mcap` package (not rosbags, which wrote it): ROS 2 profile, ros2msg schemas, CDR channels, counts."""
from pathlib import Path

import numpy as np
import pytest

from effdl_ros.cli.main import main
from effdl_ros.runtime import Node
from effdl_ros.runtime.messages import Detection2DArray, EnergyReport, Image
from effdl_ros.runtime.qos import qos_profile_sensor_data

mcap_reader = pytest.importorskip("mcap.reader", reason="the mcap package is not installed "
                                  "(pip install 'effdl_ros[test]')")
ROOT = Path(__file__).resolve().parents[1]


class CountingTracker(Node):
    """A stand-in tracker: an empty Detection2DArray and an EnergyReport per image."""

    def __init__(self, **kwargs):
        super().__init__("tracker", **kwargs)
        self.items = 0
        self.create_subscription(Image, "image", self._image, qos_profile_sensor_data)
        self.pub = self.create_publisher(Detection2DArray, "tracks", 10)
        self.reports = self.create_publisher(EnergyReport, "energy/reports", 10)

    def _image(self, msg):
        self.items += 1
        self.pub.publish(Detection2DArray(header=msg.header))
        self.reports.publish(EnergyReport(header=msg.header, node="/tracker", energy_j=0.01 * self.items,
                                          power_w=1.5, items_processed=self.items, source=1, meter="test"))


def _mcap_file(path: Path) -> Path:
    """The .mcap file itself, or the one inside a rosbag2 folder of that name."""
    if path.is_file():
        return path
    files = sorted(path.glob("*.mcap"))
    assert len(files) == 1, list(path.iterdir())
    return files[0]


def test_replay_record_mcap_opens_with_the_mcap_reader(tmp_path, monkeypatch, capsys):
    import effdl_ros.nodes
    from effdl_ros.runtime.local.typesupport import deserialize

    real = effdl_ros.nodes.node_class
    monkeypatch.setattr(effdl_ros.nodes, "node_class",
                        lambda name: CountingTracker if name == "tracker" else real(name))
    config = tmp_path / "pipeline.yaml"
    config.write_text("nodes:\n  - {executable: source, name: source}\n  - {executable: tracker, name: tracker}\n")
    out = tmp_path / "out.mcap"
    assert main(["replay", str(ROOT / "samples" / "vtest"), "--config", str(config), "--max-frames", "4",
                 "--as-fast-as-possible", "--record", str(out)]) == 0, capsys.readouterr().err
    with open(_mcap_file(out), "rb") as handle:
        reader = mcap_reader.make_reader(handle)
        assert reader.get_header().profile == "ros2"
        summary = reader.get_summary()
        channels = {c.topic: c for c in summary.channels.values()}
        assert set(channels) == {"/tracks", "/energy/reports"}
        for channel in channels.values():
            schema = summary.schemas[channel.schema_id]
            assert channel.message_encoding == "cdr" and schema.encoding == "ros2msg"
        assert summary.schemas[channels["/tracks"].schema_id].name == "vision_msgs/msg/Detection2DArray"
        report_schema = summary.schemas[channels["/energy/reports"].schema_id]
        assert report_schema.name == "effdl_ros/msg/EnergyReport"
        # the full definition, dependencies included, as Foxglove needs it to decode without ROS
        assert b"float32 power_w" in report_schema.data and b"MSG: std_msgs/Header" in report_schema.data
        counts = {channels_by_id.topic: summary.statistics.channel_message_counts[cid]
                  for cid, channels_by_id in summary.channels.items()}
        assert counts == {"/tracks": 4, "/energy/reports": 4}
        reports = [deserialize(bytes(m.data), "effdl_ros/msg/EnergyReport")
                   for _, c, m in reader.iter_messages(topics=["/energy/reports"])]
    assert [r.items_processed for r in reports] == [1, 2, 3, 4]
    assert np.isclose(reports[-1].power_w, 1.5)
