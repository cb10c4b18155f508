"""Every node module, every subscription: lying messages never crash a node, drops are counted by kind
and published in diagnostics, bad model updates are refused while the old model keeps serving, and
no untrusted pickle runs. (The command sends 10,000 per topic; 300 here.)"""
import pytest
import torch

from effdl_ros.graph.fuzz import all_nodes, fuzz_inproc

COUNT = 300


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.mark.parametrize("executable", all_nodes())
def test_no_node_crashes_on_lying_messages(executable, tmp_path):
    report = fuzz_inproc(executable, count=COUNT, workdir=tmp_path, seed=1)
    if not report.started and "defines no NODE_CLASS" in report.error:
        pytest.skip(f"{executable} is not a node yet: {report.error}")
    assert report.started, report.error
    assert report.crashes == 0, [t.crash_errors for t in report.topics]
    assert all(t.sent == COUNT for t in report.topics)
    assert not report.pickle_executed
    assert report.model_kept is not False
    assert not report.probe.startswith("FAILED"), report.probe
    if any(t.dropped for t in report.topics):
        assert report.diagnostics_seen  # each drop kind is counted in /diagnostics


def test_ddi_refuses_every_bad_update_keeps_serving_and_counts_drops_by_kind(tmp_path):
    report = fuzz_inproc("ddi", count=COUNT, workdir=tmp_path, seed=2)
    by_topic = {t.topic: t for t in report.topics}
    assert set(by_topic) >= {"/image", "/trainer/model_update", "/energy/budget"}
    updates = by_topic["/trainer/model_update"]
    assert updates.drops.get("model_update_refused", 0) > COUNT // 2
    assert by_topic["/image"].drops.get("on_image:ImageConversionError", 0) > COUNT // 2
    assert report.model_kept and report.probe.startswith("ok: valid image answered")
    # rate-limited: a few lines per kind, not one per message
    assert report.log_lines < 50


def test_drop_diagnostics_carry_one_key_per_kind():
    from effdl_ros.runtime import Node
    from effdl_ros.runtime.messages import DiagnosticArray, String
    from effdl_ros.runtime.safety import DIAGNOSTICS_NAME_SUFFIX, drop_counts, guarded
    from effdl_ros.runtime.testing import InprocGraph

    class Fragile(Node):
        def __init__(self, **kw):
            super().__init__("fragile", **kw)
            self.create_subscription(String, "text", guarded(self, self.on_text), 10)

        def on_text(self, msg):
            if msg.data == "boom":
                raise ValueError("boom")
            int(msg.data)

    with InprocGraph(simulated=True) as g:
        node = g.add(Fragile)
        peer = g.add(lambda **kw: Node("peer", **kw))
        got = []
        peer.create_subscription(DiagnosticArray, "/diagnostics", got.append, 10)
        pub = peer.create_publisher(String, "text", 10)
        for text in ["boom", "x", "7", "boom", "y" * 100000]:
            pub.publish(String(data=text))
        g.step(1.2)
        assert drop_counts(node) == {"on_text:ValueError": 4}
        status = [s for d in got for s in d.status if s.name == "/fragile" + DIAGNOSTICS_NAME_SUFFIX]
        assert status and {kv.key: kv.value for kv in status[-1].values} == {"on_text:ValueError": "4"}
