"""Property tests (hypothesis) on the functions that parse untrusted input: budget sanitising and the
mappings every node applies to a budget, image conversion, and the monitor's report intake."""
import math

import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st

from effdl_ros.energy.budget import Budget
from effdl_ros.errors import DataError

anyfloat = st.floats(allow_nan=True, allow_infinity=True, width=32)
budgets = st.builds(Budget, power_w=anyfloat, energy_per_item_j=anyfloat, latency_deadline_ms=anyfloat,
                    compute_fraction=anyfloat, stale=st.booleans())
FAST = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(budgets)
def test_sanitized_budget_is_always_in_its_domain(b):
    s = b.sanitized()
    assert 0.0 <= s.compute_fraction <= 1.0
    for v in (s.power_w, s.energy_per_item_j, s.latency_deadline_ms):
        assert not math.isnan(v) and v >= 0.0
    assert s.sanitized() == s  # idempotent


@FAST
@given(budgets, st.integers(1, 10**9), st.floats(0, 1e-3), st.floats(0, 1e9), st.floats(0, 1e3))
def test_ddi_mac_ceiling_is_finite_nonnegative_and_capped(b, full, jpm, mpm, rate):
    from effdl_ros.ddi.budget_map import CeilingModel, mac_ceiling

    c = mac_ceiling(b, CeilingModel(full_macs=full, joules_per_mac=jpm or None, macs_per_ms=mpm or None,
                                    item_rate_hz=rate or None))
    assert 0.0 <= c <= full and not math.isnan(c)


@FAST
@given(budgets, st.floats(0, 1e4), st.floats(0, 10))
def test_segmentation_scale_is_always_on_the_ladder(b, full_ms, full_j):
    from effdl_ros.segmentation.settings import SCALES, settings_for_budget

    s = settings_for_budget(b, full_ms=full_ms or None, full_energy_j=full_j or None)
    assert s.input_scale in SCALES


@FAST
@given(budgets, st.floats(0, 10), st.floats(0.1, 100))
def test_trainer_knobs_from_any_budget_are_valid(b, jps, max_rate):
    from effdl_ros.training.knobs import TrainerKnobs, knobs_from_budget

    k = knobs_from_budget(b, TrainerKnobs(), joules_per_step=jps, max_steps_per_second=max_rate)
    k.validated()
    assert 0.0 <= k.steps_per_second <= max(max_rate, TrainerKnobs().steps_per_second)


ENCODINGS = ["rgb8", "bgr8", "mono8", "mono16", "32FC1", "16UC1", "rgba8", "", "yuv422", "8UC3"]


@settings(max_examples=200, deadline=None)
@given(st.integers(-2, 70), st.integers(-2, 70), st.integers(0, 2**32 - 1) | st.integers(0, 300),
       st.sampled_from(ENCODINGS), st.integers(0, 255), st.integers(0, 20000),
       st.sampled_from(["passthrough", "rgb8", "mono8", "bgr8"]))
def test_image_conversion_returns_the_declared_shape_or_one_clear_error(h, w, step, enc, big, nbytes, want):
    from effdl_ros.runtime.images import ENCODINGS as KNOWN, imgmsg_to_cv2
    from effdl_ros.runtime.messages import Image

    msg = Image(height=max(0, h), width=max(0, w), encoding=enc, is_bigendian=big, step=step,
                data=np.zeros(nbytes, np.uint8))
    try:
        out = imgmsg_to_cv2(msg, want)
    except DataError as err:
        assert str(err)
        return
    assert enc in KNOWN and out.shape[:2] == (msg.height, msg.width)
    if want != "passthrough":
        assert out.ndim == (2 if want == "mono8" else 3)


def test_a_consistent_image_with_padded_rows_converts_exactly():
    from effdl_ros.runtime.images import imgmsg_to_cv2
    from effdl_ros.runtime.messages import Image

    rows = np.arange(3 * 10, dtype=np.uint8).reshape(3, 10)  # 3 rows of 8 pixels + 2 padding bytes
    out = imgmsg_to_cv2(Image(height=3, width=8, encoding="mono8", step=10, data=rows.reshape(-1)))
    assert np.array_equal(out, rows[:, :8])


@FAST
@given(st.lists(st.tuples(st.sampled_from(["/a", "/b", "", "/ghost"]), anyfloat, anyfloat,
                          st.integers(0, 2**64 - 1), st.floats(-10, 1e6)), min_size=1, max_size=30))
def test_budget_policy_takes_any_reports_and_live_nodes_stay_within_the_total(reports):
    from effdl_ros.energy.budget_policy import BudgetPolicy, PolicyConfig, Report

    policy = BudgetPolicy(PolicyConfig(total_power_w=10.0, priorities={"/a": 1.0, "/b": 2.0}).validated(), start=0.0)
    for i, (node, p, f, items, stamp) in enumerate(reports):
        policy.observe(Report(node=node, stamp=stamp, power_w=p, compute_fraction=f, items_processed=items))
        alloc = policy.step(float(i))
        for b in alloc.budgets:
            assert math.isfinite(b.allocation_w) and b.allocation_w >= 0.0
            assert math.isfinite(b.power_w) and b.power_w >= 0.0
            assert 0.0 <= b.compute_fraction <= 1.0
        # live nodes share the total; a stale node is only offered a share (budget_policy's design)
        assert sum(b.allocation_w for b in alloc.budgets if not b.stale) <= 10.0 + 1e-6


def test_every_lying_message_kind_is_valid_on_the_wire(tmp_path):
    """The fuzz must send what a DDS reader accepts: each kind of each type round-trips through CDR."""
    from effdl_ros.graph.mutators import Mutator, make_bad_files, roundtrips

    files = make_bad_files(tmp_path / "models", tmp_path / "scratch")
    m = Mutator(np.random.default_rng(0), target="/ddi", bad_files=files)
    types = list(m._tables) + ["std_msgs/msg/String", "diagnostic_msgs/msg/DiagnosticArray",
                               "vision_msgs/msg/LabelInfo"]
    for typename in types:
        kinds = m.kinds(typename)
        seen = set()
        for i in range(len(kinds)):
            kind, msg = m.make(typename, i)
            seen.add(kind)
            assert roundtrips(msg), (typename, kind)
        assert seen == set(kinds), typename
    assert len(m.kinds("sensor_msgs/msg/Image")) >= 15
