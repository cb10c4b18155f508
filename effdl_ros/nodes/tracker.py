"""tracker: follows one object with ROAM (issue 5), under an energy budget.

Subscribes `image` (sensor_msgs/Image, sensor-data QoS: best effort, keep last 5) and `tracker/init`
(vision_msgs/Detection2D, reliable, volatile, keep last 10: the box to follow; each new init restarts
the tracker on the next image and starts a new track id; `effdl-ros track --box x,y,w,h` sends one).
The parameter init_box gives a first box without any message. Publishes `tracks` (vision_msgs/Detection2DArray,
reliable, keep last 10) for every image, with the image's header: one Detection2D (id = track id,
results[0].hypothesis.score = confidence) while tracking; while the target is lost, the same id with
score 0 and the last confident box (the tracker searches a widening window meanwhile; a re-acquired
target keeps its id); an empty array before the first init. `/diagnostics` (DiagnosticArray) names
the track state (idle, tracking, searching, lost) on every change and every 30 images. The budget
(BudgetClient on `energy/budget`) maps onto update interval,
optimiser steps, search scales and window size. Under the monitor's budget each frame's level is the
richest whose frame, its model update included, fits the frame's share plus the MAC credit
(effdl_ros.tracking.tracker.settings_for_frame): a model update is paid for on the frame it runs, so the
power per budget period stays on the budget. With no fresh budget (or credit_frames 0) the level follows
the fraction by its amortised cost (settings_for_budget). The executed MACs per frame, and the share of
full compute they are, go to the Accountant (reports on `energy/reports`).

Parameters: model_path (models/roam_r18l1.pt, relative to the package share folder),
default_compute_fraction (1.0, used while no fresh budget), threads (1; 0 = torch's default),
energy_profile (x86_cpu), stale_after_s (3.0), class_id ("target"), init_box ([0, 0, 0, 0] = none),
device (cpu | cuda | cuda:N | auto; on a GPU the energy per frame is measured with NVML, docs/gpu.md; no
fp16: the online learned-optimiser steps use learning rates near 1e-6, below half precision's resolution),
credit_frames (2; 0 = off), level_hysteresis (0 = off; e.g. 0.1: a level changes only when the budget is
10 % past its boundary; with the per-frame choice off), autostart (true).

A lifecycle (managed) node (effdl_ros.nodekit.lifecycle): configure loads the model and creates the
tracker, `tracks` and the budget client; activate subscribes `image` and `tracker/init`; deactivate
unsubscribes them; cleanup frees the model. autostart (default) activates on start.
"""
from __future__ import annotations

from effdl_ros.nodekit.budget import BudgetClient, node_clock_seconds
from effdl_ros.nodekit.entry import run
from effdl_ros.nodekit.lifecycle import AUTOSTART, ManagedModelNode
from effdl_ros.nodekit.parameters import (
    BUDGET_STALE_AFTER,
    DEVICE,
    ENERGY_ESTIMATE,
    ENERGY_PROFILE,
    Param,
    declare,
    default_fraction,
)
from effdl_ros.resources import resolve_path
from effdl_ros.runtime.images import imgmsg_to_cv2
from effdl_ros.runtime.messages import (
    BoundingBox2D,
    Detection2D,
    Detection2DArray,
    DiagnosticArray,
    DiagnosticStatus,
    KeyValue,
    ObjectHypothesis,
    ObjectHypothesisWithPose,
    Pose2D,
)
from effdl_ros.runtime.qos import qos_profile_sensor_data
from effdl_ros.runtime.safety import guarded

PARAMETERS = (
    Param("model_path", "models/roam_r18l1.pt", "ROAM checkpoint (relative to the package share folder)",
          path="file"),
    default_fraction(1.0),
    Param("threads", 1, "torch threads (0 = torch's default)", range=(0, 1024)),
    ENERGY_PROFILE,
    ENERGY_ESTIMATE,
    BUDGET_STALE_AFTER,
    Param("class_id", "target", "class_id of the published detection"),
    Param("init_box", [0.0, 0.0, 0.0, 0.0], "x, y, w, h in pixels of the object to follow from the first "
          "image (all 0 = wait for tracker/init)", range=(0.0, 1e6)),
    Param("credit_frames", 2, "frames over which MACs above or below budget are paid back; each frame's level "
          "fits what that frame will execute, model update included (0 = off)", range=(0, 1000)),
    Param("level_hysteresis", 0.0, "relative margin past a level boundary before the level changes "
          "(0 = none)", range=(0.0, 0.5)),
    AUTOSTART,
    DEVICE,
)


class TrackerNode(ManagedModelNode):
    def __init__(self, node_name: str = "tracker", **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        declare(self, PARAMETERS)
        self.track_id = 0
        self.tracking = False
        self.items = 0
        self.last_result = None
        self.model = None
        self.autostart()

    def configure_work(self) -> None:
        """Check the parameters, load the model; tracker, `tracks`, budget client."""
        from effdl_ros.energy.accountant import Accountant
        from effdl_ros.energy.budget import Budget
        from effdl_ros.errors import ConfigError
        from effdl_ros.tracking.tracker import (
            LEVELS,
            MacCredit,
            RoamTracker,
            TrackerSettings,
            level_macs,
            load_model,
            settings_for_budget,
            settings_for_frame,
            settings_with_hysteresis,
        )

        name = self.get_fully_qualified_name()
        fraction = float(self.get_parameter("default_compute_fraction").value)
        if not 0.0 <= fraction <= 1.0:
            raise ConfigError(f"{name}: default_compute_fraction must lie in [0, 1], got {fraction}")
        threads = int(self.get_parameter("threads").value)
        if threads > 0:
            import torch

            torch.set_num_threads(threads)
        self.model_path = resolve_path(self.get_parameter("model_path").value)
        from effdl_ros.nodekit.device import node_device, node_meter
        from effdl_ros.tracking.tracker import move_model

        self.device, _ = node_device(self, fp16_parameter=False)
        self.model = move_model(load_model(self.model_path), self.device)
        self._settings_for = settings_with_hysteresis
        self._settings_for_frame = settings_for_frame
        from effdl_ros.tracking.tracker import level_index

        self._level_index = level_index
        self.default_settings = settings_for_budget(Budget(compute_fraction=fraction), TrackerSettings(),
                                                    self.model)
        self.full_macs = level_macs(LEVELS[1], self.model)
        self.credit = MacCredit(horizon=int(self.get_parameter("credit_frames").value))
        self.tracker = RoamTracker(self.model, self.default_settings)
        self.acct = Accountant(name, clock=node_clock_seconds(self), meter=node_meter(self, self.device),
                               profile=self.get_parameter("energy_profile").value,
                               estimate=self.get_parameter("energy_estimate").value)
        self.budget = BudgetClient(self, self.acct, default=Budget(compute_fraction=fraction),
                                   stale_after_sec=float(self.get_parameter("stale_after_s").value))
        self.tracking = False
        self.pending_box = self._init_box_parameter(name)
        self._pub = self.create_publisher(Detection2DArray, "tracks", 10)
        self._diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.track_state = "idle"

    def activate_work(self) -> None:
        self.create_subscription(Detection2D, "tracker/init", guarded(self, self.on_init), 10)
        self.create_subscription(self._image_type(), "image", guarded(self, self.on_image), qos_profile_sensor_data)

    def free_work(self) -> None:
        self.model = self.tracker = None
        self.tracking = False

    def _init_box_parameter(self, name: str):
        """init_box x, y, w, h: the object to follow from the first image (all 0: wait for tracker/init)."""
        from effdl_ros.errors import ConfigError

        box = [float(v) for v in self.get_parameter("init_box").value]
        if not any(box):
            return None
        if len(box) != 4 or not (box[2] > 0 and box[3] > 0):
            raise ConfigError(f"{name}: init_box must be [x, y, w, h] with a positive size, got {box}")
        return tuple(box)

    @staticmethod
    def _image_type():
        from effdl_ros.runtime.messages import Image

        return Image

    # ------------------------------------------------------------------------------------ callbacks

    def on_init(self, msg) -> None:
        from effdl_ros.errors import DataError

        w, h = float(msg.bbox.size_x), float(msg.bbox.size_y)
        cx, cy = float(msg.bbox.center.position.x), float(msg.bbox.center.position.y)
        if not (w > 0 and h > 0) or any(v != v for v in (cx, cy, w, h)):
            raise DataError(f"tracker/init box (center {cx}, {cy}, size {w} x {h}) needs a positive size")
        self.pending_box = (cx - w / 2, cy - h / 2, w, h)

    def on_image(self, msg) -> None:
        rgb = imgmsg_to_cv2(msg, "rgb8")
        budget = self.budget.current()
        fraction = budget.sanitized().compute_fraction
        if self.credit.horizon > 0 and not budget.stale and self.tracking and self.pending_box is None:
            settings = self._settings_for_frame(self.tracker, self.credit.allowance(fraction, self.full_macs),
                                                self.default_settings)
        else:
            settings = self._settings_for(budget, self.tracker.settings, self.default_settings,
                                          self.model, margin=float(self.get_parameter("level_hysteresis").value))
        out = Detection2DArray(header=msg.header)
        with self.acct.item() as item:
            if self.pending_box is not None:
                box, self.pending_box = self.pending_box, None  # a refused box is not retried
                self.tracker.set_settings(settings)
                self.tracker.init(rgb, box)
                self.track_id += 1
                self.tracking = True
                box, score, lost = self.tracker.last_box(), 1.0, False
                state = "tracking"
                item.macs = self.tracker.init_macs
            elif self.tracking:
                if settings != self.tracker.settings:
                    self.tracker.set_settings(settings)
                res = self.tracker.update(rgb)
                self.last_result = res
                box, score, lost, state = res.box, res.score, res.lost, res.state
                item.macs = res.macs
            else:
                box, score, lost, state = None, 0.0, True, "idle"
                item.macs = 0
            if self.tracking and self.items > 0:
                self.credit.spend(fraction, self.full_macs, item.macs)
            else:
                self.credit.reset()      # nothing to pay back from before the track started
            # what this frame executed, as a share of the full level (an update frame reads > 1): the
            # period's mean is then the fraction the credit really ran, so the monitor's knob model
            # (power per unit fraction) is exact; a level's modelled share overstated it by up to 1.6x,
            # as updates run only on confident frames
            item.compute_fraction = item.macs / self.full_macs if item.macs else 0.0
        self.items += 1
        self.budget.set_knob("level", self._level_index(self.tracker.settings))
        if state != self.track_state or self.items % 30 == 0:
            self._publish_state(msg.header, state, score)
        if box is not None:
            score = 0.0 if lost else score
            det = Detection2D(header=msg.header, id=str(self.track_id))
            det.bbox = BoundingBox2D(size_x=float(box[2]), size_y=float(box[3]))
            det.bbox.center = Pose2D()
            det.bbox.center.position.x = float(box[0] + box[2] / 2)
            det.bbox.center.position.y = float(box[1] + box[3] / 2)
            det.results = [ObjectHypothesisWithPose(hypothesis=ObjectHypothesis(
                class_id=str(self.get_parameter("class_id").value), score=float(score)))]
            out.detections = [det]
        self._pub.publish(out)

    def _publish_state(self, header, state: str, score: float) -> None:
        self.track_state = state
        level = DiagnosticStatus.WARN if state == "lost" else DiagnosticStatus.OK
        self._diag.publish(DiagnosticArray(header=header, status=[DiagnosticStatus(
            level=level, name=f"{self.get_fully_qualified_name()}: track", message=state, values=[
                KeyValue(key="state", value=state), KeyValue(key="track_id", value=str(self.track_id)),
                KeyValue(key="score", value=f"{score:.3f}")])]))


NODE_CLASS = TrackerNode


def main(args=None) -> None:
    run(TrackerNode, args)


if __name__ == "__main__":
    main()
