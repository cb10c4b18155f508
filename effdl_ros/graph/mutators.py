"""Messages that are valid on the wire but lie: every field has its declared type (so CDR encodes it
and a real DDS reader delivers it), yet sizes disagree, numbers are NaN/inf/negative, boxes leave the
image, strings are enormous, budgets name nodes that do not exist and model updates name files that
are missing, truncated, corrupt, unpicklable or outside the model directory.

`Mutator(rng, target=..., model_dir=...).make(typename, i)` returns (kind, message); each type cycles
through all its kinds first, then draws them by weight (expensive kinds, e.g. big valid frames, rarely).
A type without its own list gets field-wise lies (`_generic`), so nodes added later are covered too.
"""
from __future__ import annotations

import math
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

HUGE_STRING = 1 << 20          # 1 MiB of text: "enormous" yet cheap enough for 10,000 messages
NAN, INF = math.nan, math.inf
FLOAT_LIES = (NAN, INF, -INF, -1.0, 0.0, -1e30, 1e30, 3.4e38, -3.4e38, 5e-324)
INT_RANGES = {"int8": (-2**7, 2**7 - 1), "uint8": (0, 2**8 - 1), "int16": (-2**15, 2**15 - 1),
              "uint16": (0, 2**16 - 1), "int32": (-2**31, 2**31 - 1), "uint32": (0, 2**32 - 1),
              "int64": (-2**63, 2**63 - 1), "uint64": (0, 2**64 - 1), "byte": (0, 127), "char": (0, 127)}


def _cls(short: str):
    from effdl_ros.runtime import messages

    return getattr(messages, short)


def _header(rng: np.random.Generator, lie: bool = False):
    Header, Time = _cls("Header"), _cls("Time")
    if not lie:
        return Header(frame_id="camera")
    sec, nanosec = [(-1, 0), (2**31 - 1, 4294967295), (0, 1999999999), (-2**31, 0), (0, 0)][int(rng.integers(5))]
    return Header(stamp=Time(sec=sec, nanosec=nanosec), frame_id="x" * int(rng.integers(0, 300)))


@dataclass
class BadFiles:
    """Files a model update may name, made once per fuzz run (`make_bad_files`)."""
    missing: Path
    truncated: Path
    corrupt: Path
    empty: Path
    not_weights: Path       # a pickle that would run code if loaded without weights_only
    wrong_layout: Path      # loads with weights_only but is no checkpoint
    directory: Path
    escape_link: Optional[Path]  # a symlink inside model_dir pointing outside it
    outside: Path           # a real file outside model_dir
    marker: Path            # created only if the not_weights pickle ever runs


class _Boom:
    """Unpickling this calls open(marker, 'w'): proof that something loaded an untrusted pickle."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def make_bad_files(model_dir: Path, scratch: Path, good_model: Optional[Path] = None) -> BadFiles:
    """Create the lying model files inside model_dir (so they reach the loader) and one outside."""
    import torch

    model_dir, scratch = Path(model_dir), Path(scratch)
    model_dir.mkdir(parents=True, exist_ok=True)
    scratch.mkdir(parents=True, exist_ok=True)
    blob = good_model.read_bytes() if good_model is not None and good_model.is_file() else b""
    if not blob:
        import io

        buf = io.BytesIO()
        torch.save({"state_dict": {"w": torch.zeros(64, 64)}, "config": {}}, buf)
        blob = buf.getvalue()
    files = BadFiles(missing=model_dir / "fuzz_missing.pt", truncated=model_dir / "fuzz_truncated.pt",
                     corrupt=model_dir / "fuzz_corrupt.pt", empty=model_dir / "fuzz_empty.pt",
                     not_weights=model_dir / "fuzz_pickle.pt", wrong_layout=model_dir / "fuzz_layout.pt",
                     directory=model_dir / "fuzz_dir.pt", escape_link=model_dir / "fuzz_link.pt",
                     outside=scratch / "outside.pt", marker=scratch / "PICKLE_EXECUTED")
    files.truncated.write_bytes(blob[: max(1, len(blob) // 2)])
    corrupt = bytearray(blob)
    rng = np.random.default_rng(0)
    for pos in rng.integers(0, len(corrupt), size=max(8, len(corrupt) // 50)):
        corrupt[int(pos)] ^= 0xFF
    files.corrupt.write_bytes(bytes(corrupt))
    files.empty.write_bytes(b"")
    with open(files.not_weights, "wb") as fh:
        pickle.dump({"state_dict": _Boom(str(files.marker)), "config": {}}, fh)
    torch.save({"hello": "world", "n": 3}, files.wrong_layout)
    files.directory.mkdir(exist_ok=True)
    files.outside.write_bytes(blob)
    try:
        if files.escape_link.is_symlink() or files.escape_link.exists():
            files.escape_link.unlink()
        files.escape_link.symlink_to(files.outside)
    except OSError:
        files.escape_link = None
    return files


class Mutator:
    """Lying messages per ROS type.

    :param rng: numpy Generator (seeded: runs are reproducible).
    :param target: fully qualified name of the node under test: budgets and updates addressed to it
        reach its logic instead of being ignored as someone else's.
    :param bad_files: from make_bad_files; without it model updates name only paths that do not exist.
    """

    def __init__(self, rng: np.random.Generator, *, target: str = "/node",
                 bad_files: Optional[BadFiles] = None) -> None:
        self.rng = rng
        self.target = target
        self.bad_files = bad_files
        self._version = 1000
        self._tables: Dict[str, List[Tuple[str, float, Callable[[], Any]]]] = {
            "sensor_msgs/msg/Image": self._image_kinds(),
            "sensor_msgs/msg/CompressedImage": self._compressed_kinds(),
            "effdl_ros/msg/ResourceBudgetArray": self._budget_kinds(),
            "effdl_ros/msg/EnergyReport": self._report_kinds(),
            "effdl_ros/msg/ModelUpdate": self._update_kinds(),
            "vision_msgs/msg/Classification": self._classification_kinds(),
            "vision_msgs/msg/Detection2D": self._detection_kinds(),
            "vision_msgs/msg/Detection2DArray": self._detection_array_kinds(),
        }

    def kinds(self, typename: str) -> List[str]:
        table = self._tables.get(typename)
        return [k for k, _, _ in table] if table else ["generic"]

    def make(self, typename: str, i: int) -> Tuple[str, Any]:
        """The i-th lying message of this type: (kind, message)."""
        table = self._tables.get(typename)
        if table is None:
            return "generic", self._generic(typename)
        if i < len(table):
            kind, _, build = table[i]
        else:
            weights = np.array([w for _, w, _ in table], dtype=float)
            kind, _, build = table[int(self.rng.choice(len(table), p=weights / weights.sum()))]
        return kind, build()

    # ------------------------------------------------------------------------------------ images
    def _image(self, *, h=24, w=32, encoding="rgb8", channels=3, itemsize=1, step=None, nbytes=None,
               bigendian=0, header_lie=False, fill=None):
        Image = _cls("Image")
        step = w * channels * itemsize if step is None else step
        nbytes = step * h if nbytes is None else nbytes
        data = (self.rng.integers(0, 256, size=max(0, nbytes), dtype=np.uint8) if fill is None
                else np.full(max(0, nbytes), fill, dtype=np.uint8))
        return Image(header=_header(self.rng, header_lie), height=h, width=w, encoding=encoding,
                     is_bigendian=bigendian, step=step, data=data)

    def _image_kinds(self):
        r = self.rng
        return [
            ("unknown_encoding", 3, lambda: self._image(encoding="yuv422_weird")),
            ("empty_encoding", 3, lambda: self._image(encoding="")),
            ("huge_encoding_string", 1, lambda: self._image(encoding="e" * HUGE_STRING)),
            ("step_shorter_than_row", 3, lambda: self._image(step=int(r.integers(0, 96)))),
            ("step_disagrees_with_data", 3, lambda: self._image(step=97, nbytes=96 * 24)),
            ("data_too_short", 3, lambda: self._image(nbytes=int(r.integers(0, 24 * 96)))),
            ("data_too_long", 3, lambda: self._image(nbytes=24 * 96 + int(r.integers(1, 5000)))),
            ("zero_size", 3, lambda: self._image(h=0, w=0, nbytes=0)),
            ("zero_height_with_data", 2, lambda: self._image(h=0, w=32, nbytes=96)),
            ("huge_size_small_data", 3, lambda: self._image(h=2**31 - 1, w=2**31 - 1, step=2**32 - 1,
                                                            nbytes=64)),
            ("huge_width_overflowing_step", 2, lambda: self._image(h=2, w=2**30, step=2**32 - 1 - 2**31,
                                                                   nbytes=16)),
            ("channels_disagree", 2, lambda: self._image(encoding="mono8", channels=3)),
            ("big_endian_16bit", 2, lambda: self._image(encoding="mono16", channels=1, itemsize=2,
                                                        bigendian=1)),
            ("bigendian_flag_garbage", 2, lambda: self._image(bigendian=255)),
            ("float_image_nan", 2, lambda: self._image(encoding="32FC1", channels=1, itemsize=4, fill=0xFF)),
            ("depth_image", 2, lambda: self._image(encoding="16UC1", channels=1, itemsize=2)),
            ("one_pixel", 2, lambda: self._image(h=1, w=1)),
            ("one_row_very_wide", 1, lambda: self._image(h=1, w=4000)),
            ("one_column_very_tall", 1, lambda: self._image(h=4000, w=1)),
            ("padded_rows_valid", 2, lambda: self._image(step=100)),
            ("stamp_lies", 2, lambda: self._image(header_lie=True)),
            ("large_valid_frame", 0.05, lambda: self._image(h=480, w=640)),
        ]

    def _compressed_kinds(self):
        C = _cls("CompressedImage")
        r = self.rng

        def make(fmt, data):
            return C(header=_header(r), format=fmt, data=np.frombuffer(bytes(data), dtype=np.uint8).copy())

        def truncated_jpeg():
            import cv2

            ok, buf = cv2.imencode(".jpg", r.integers(0, 255, (32, 32, 3), dtype=np.uint8))
            return make("jpeg", buf.tobytes()[: len(buf) // 3])

        return [
            ("unknown_format", 3, lambda: make("qoi; rgb8", r.integers(0, 256, 200, dtype=np.uint8).tobytes())),
            ("empty_format_empty_data", 3, lambda: make("", b"")),
            ("garbage_jpeg", 3, lambda: make("jpeg", r.integers(0, 256, 500, dtype=np.uint8).tobytes())),
            ("truncated_jpeg", 3, truncated_jpeg),
            ("png_magic_only", 2, lambda: make("png", b"\x89PNG\r\n\x1a\n")),
            ("huge_format_string", 1, lambda: make("f" * HUGE_STRING, b"\x00")),
        ]

    # ------------------------------------------------------------------------------------ budgets
    def _budget(self, **over):
        RB, Duration = _cls("ResourceBudget"), _cls("Duration")
        fields_ = dict(target_node=self.target, power_w=INF, energy_per_item_j=INF, latency_deadline_ms=INF,
                       compute_fraction=1.0, validity=Duration(sec=3, nanosec=0))
        fields_.update(over)
        return RB(**fields_)

    def _budgets(self, budgets, total=10.0, header_lie=False):
        return _cls("ResourceBudgetArray")(header=_header(self.rng, header_lie), total_power_w=total,
                                           budgets=budgets)

    def _budget_kinds(self):
        r = self.rng
        Duration = _cls("Duration")
        pick = lambda: FLOAT_LIES[int(r.integers(len(FLOAT_LIES)))]  # noqa: E731
        kinds = []
        for name in ("power_w", "energy_per_item_j", "latency_deadline_ms", "compute_fraction"):
            kinds.append((f"{name}_nan_inf_negative", 3,
                          lambda name=name: self._budgets([self._budget(**{name: pick()})])))
        kinds += [
            ("all_fields_lie", 3, lambda: self._budgets([self._budget(
                power_w=pick(), energy_per_item_j=pick(), latency_deadline_ms=pick(), compute_fraction=pick())])),
            ("fraction_above_one", 2, lambda: self._budgets([self._budget(compute_fraction=float(r.uniform(1, 1e6)))])),
            ("negative_validity", 2, lambda: self._budgets([self._budget(validity=Duration(sec=-5, nanosec=0))])),
            ("validity_nanosec_overflow", 2, lambda: self._budgets([self._budget(
                validity=Duration(sec=2**31 - 1, nanosec=4294967295))])),
            ("unknown_node", 3, lambda: self._budgets([self._budget(target_node=f"/ghost_{int(r.integers(1e9))}",
                                                                    compute_fraction=NAN)])),
            ("empty_target", 2, lambda: self._budgets([self._budget(target_node="")])),
            ("huge_target_name", 1, lambda: self._budgets([self._budget(target_node="/" + "n" * HUGE_STRING)])),
            ("no_budgets_total_nan", 2, lambda: self._budgets([], total=NAN)),
            ("contradicting_duplicates", 2, lambda: self._budgets([self._budget(compute_fraction=0.0),
                                                                  self._budget(compute_fraction=NAN),
                                                                  self._budget(compute_fraction=-1.0)])),
            ("thousand_ghost_budgets", 0.3, lambda: self._budgets(
                [self._budget(target_node=f"/g{k}") for k in range(1000)])),
            ("stamp_lies", 2, lambda: self._budgets([self._budget(compute_fraction=0.5)], header_lie=True)),
        ]
        return kinds

    # ------------------------------------------------------------------------------------ reports
    def _report_kinds(self):
        r = self.rng
        ER = _cls("EnergyReport")
        pick = lambda: FLOAT_LIES[int(r.integers(len(FLOAT_LIES)))]  # noqa: E731

        def rep(**over):
            fields_ = dict(header=_header(r), node=self.target, energy_j=1.0, power_w=1.0, items_processed=1,
                           compute_fraction=1.0, latency_ms=1.0, source=1, meter="model:x86_cpu")
            fields_.update(over)
            return ER(**fields_)

        return [
            ("power_nan_inf_negative", 3, lambda: rep(power_w=pick())),
            ("energy_nan_inf_negative", 3, lambda: rep(energy_j=pick())),
            ("fraction_lies", 3, lambda: rep(compute_fraction=pick())),
            ("latency_lies", 2, lambda: rep(latency_ms=pick())),
            ("items_uint64_max", 2, lambda: rep(items_processed=2**64 - 1)),
            ("unknown_source", 2, lambda: rep(source=int(r.integers(2, 256)))),
            ("unknown_node", 3, lambda: rep(node=f"/ghost_{int(r.integers(1e9))}", power_w=pick())),
            ("empty_node", 2, lambda: rep(node="")),
            ("huge_node_name", 1, lambda: rep(node="/" + "n" * HUGE_STRING)),
            ("huge_meter_string", 1, lambda: rep(meter="m" * HUGE_STRING)),
            ("stamp_lies", 2, lambda: rep(header=_header(r, True), power_w=pick())),
        ]

    # ------------------------------------------------------------------------------------ model updates
    def _update(self, path: str, **over):
        self._version += 1
        fields_ = dict(header=_header(self.rng), consumer_node=self.target, model_path=str(path),
                       version=self._version, metric_name="top1", validation_metric=0.9)
        fields_.update(over)
        return _cls("ModelUpdate")(**fields_)

    def _update_kinds(self):
        f = self.bad_files
        r = self.rng
        kinds = [
            ("outside_dir_relative", 3, lambda: self._update("../../../../../../etc/hostname")),
            ("outside_dir_absolute", 3, lambda: self._update(str(f.outside) if f else "/etc/hostname")),
            ("missing_file", 3, lambda: self._update(str(f.missing) if f else "/nonexistent/missing.pt")),
            ("empty_path", 2, lambda: self._update("")),
            ("nul_in_path", 2, lambda: self._update("model\x00.pt")),
            ("huge_path", 1, lambda: self._update("p" * HUGE_STRING)),
            ("version_zero", 1, lambda: self._update(str(f.missing) if f else "x.pt", version=0)),
            ("metric_nan", 1, lambda: self._update(str(f.missing) if f else "x.pt", validation_metric=NAN)),
            ("other_consumer", 1, lambda: self._update(str(f.corrupt) if f else "x.pt",
                                                       consumer_node=f"/ghost_{int(r.integers(1e9))}")),
        ]
        if f is not None:
            kinds += [
                ("truncated_file", 3, lambda: self._update(str(f.truncated))),
                ("corrupt_file", 3, lambda: self._update(str(f.corrupt))),
                ("empty_file", 2, lambda: self._update(str(f.empty))),
                ("untrusted_pickle", 3, lambda: self._update(str(f.not_weights))),
                ("not_a_checkpoint", 2, lambda: self._update(str(f.wrong_layout))),
                ("a_directory", 2, lambda: self._update(str(f.directory))),
                ("relative_name_missing", 1, lambda: self._update("fuzz_missing.pt")),
            ]
            if f.escape_link is not None:
                kinds.append(("symlink_escaping_dir", 3, lambda: self._update(str(f.escape_link))))
        return kinds

    # ------------------------------------------------------------------------------------ detections
    def _hyp(self, class_id="1", score=0.5):
        return _cls("ObjectHypothesis")(class_id=class_id, score=score)

    def _classification_kinds(self):
        r = self.rng
        C = _cls("Classification")
        pick = lambda: FLOAT_LIES[int(r.integers(len(FLOAT_LIES)))]  # noqa: E731
        mk = lambda results, lie=False: C(header=_header(r, lie), results=results)  # noqa: E731
        return [
            ("no_results", 3, lambda: mk([])),
            ("unknown_class", 3, lambda: mk([self._hyp(f"class_{int(r.integers(1e6))}", 0.99)])),
            ("empty_class_id", 2, lambda: mk([self._hyp("", 0.99)])),
            ("huge_class_id", 1, lambda: mk([self._hyp("c" * HUGE_STRING, 0.99)])),
            ("score_nan_inf_negative", 3, lambda: mk([self._hyp(str(int(r.integers(10))), pick())])),
            ("numeric_class_out_of_range", 2, lambda: mk([self._hyp(str(int(r.integers(-10**9, 10**9))), 0.99)])),
            ("ten_thousand_results", 0.3, lambda: mk([self._hyp(str(k % 10), float(r.random()))
                                                       for k in range(10000)])),
            ("stamp_lies", 2, lambda: mk([self._hyp("1", 0.99)], True)),
        ]

    def _box(self, cx, cy, sx, sy, theta=0.0):
        BB, P2, Pt = _cls("BoundingBox2D"), _cls("Pose2D"), _cls("Point2D")
        return BB(center=P2(position=Pt(x=cx, y=cy), theta=theta), size_x=sx, size_y=sy)

    def _det(self, box, lie=False, results=None, id_=""):
        D, OHP = _cls("Detection2D"), _cls("ObjectHypothesisWithPose")
        res = [OHP(hypothesis=self._hyp())] if results is None else results
        return D(header=_header(self.rng, lie), results=res, bbox=box, id=id_)

    def _box_lies(self):
        r = self.rng
        pick = lambda: FLOAT_LIES[int(r.integers(len(FLOAT_LIES)))]  # noqa: E731
        return [
            ("box_outside_image", 3, lambda: self._box(float(r.uniform(1e4, 1e6)), -float(r.uniform(1e4, 1e6)), 20, 20)),
            ("box_partly_outside", 2, lambda: self._box(-5, -5, 40, 40)),
            ("box_zero_area", 3, lambda: self._box(10, 10, 0, 0)),
            ("box_zero_width", 2, lambda: self._box(10, 10, 0, 30)),
            ("box_negative_size", 3, lambda: self._box(10, 10, -20, -5)),
            ("box_nan_inf", 3, lambda: self._box(pick(), pick(), pick(), pick(), pick())),
            ("box_huge", 2, lambda: self._box(0, 0, 1e300, 1e300)),
            ("box_extreme_aspect", 1, lambda: self._box(10, 10, 1e6, 1.0)),
            ("box_rotated", 1, lambda: self._box(10, 10, 20, 20, theta=float(r.uniform(-10, 10)))),
        ]

    def _detection_kinds(self):
        kinds = [(k, w, (lambda b=b: self._det(b()))) for k, w, b in self._box_lies()]
        kinds += [("no_results_valid_box", 1, lambda: self._det(self._box(10, 10, 8, 8), results=[])),
                  ("huge_id", 1, lambda: self._det(self._box(10, 10, 8, 8), id_="i" * HUGE_STRING)),
                  ("stamp_lies", 2, lambda: self._det(self._box(10, 10, 8, 8), lie=True))]
        return kinds

    def _detection_array_kinds(self):
        DA = _cls("Detection2DArray")
        r = self.rng
        boxes = self._box_lies()
        one = lambda: self._det(boxes[int(r.integers(len(boxes)))][2]())  # noqa: E731
        return [
            ("empty", 3, lambda: DA(header=_header(r), detections=[])),
            ("lying_boxes", 3, lambda: DA(header=_header(r), detections=[one() for _ in range(5)])),
            ("thousand_detections", 0.1, lambda: DA(header=_header(r), detections=[one() for _ in range(1000)])),
            ("stamp_lies", 2, lambda: DA(header=_header(r, True), detections=[one()])),
        ]

    # ------------------------------------------------------------------------------------ any other type
    def _generic(self, typename: str) -> Any:
        """Field-wise lies for a type without its own list: strings empty or huge, numbers at their
        type's limits or NaN/inf, sequences empty or long."""
        from effdl_ros.runtime.local.typesupport import typestore

        return self._fill(typestore(), typename, depth=0)

    def _fill(self, store, typename: str, depth: int) -> Any:
        from rosbags.typesys.base import Nodetype

        cls = store.types[typename]
        values = {}
        r = self.rng
        for fname, (kind, detail), *_ in store.fielddefs[typename][1]:
            if kind == Nodetype.BASE:
                values[fname] = self._base_lie(detail[0])
            elif kind == Nodetype.NAME:
                values[fname] = self._fill(store, detail, depth + 1) if depth < 4 else store.types[detail]()
            else:
                (sub_kind, sub_detail), count = detail
                n = count if kind == Nodetype.ARRAY else int(r.choice([0, 1, 3, 200]))
                if sub_kind == Nodetype.BASE and sub_detail[0] in INT_RANGES:
                    lo, hi = INT_RANGES[sub_detail[0]]
                    dtype = np.dtype(sub_detail[0] if sub_detail[0] not in ("byte", "char") else "uint8")
                    values[fname] = r.integers(lo, hi, size=n, dtype=dtype, endpoint=True)
                elif sub_kind == Nodetype.BASE and sub_detail[0].startswith("float"):
                    values[fname] = np.array([FLOAT_LIES[k % len(FLOAT_LIES)] for k in range(n)],
                                             dtype=sub_detail[0])
                elif sub_kind == Nodetype.BASE:
                    values[fname] = [self._base_lie(sub_detail[0]) for _ in range(n)]
                elif depth < 3:
                    values[fname] = [self._fill(store, sub_detail, depth + 1) for _ in range(min(n, 3))]
                else:
                    values[fname] = [] if kind != Nodetype.ARRAY else [store.types[sub_detail]() for _ in range(n)]
        return cls(**values)

    def _base_lie(self, typ: str) -> Any:
        r = self.rng
        if typ == "string":
            return "s" * HUGE_STRING if r.random() < 0.05 else ["", "\x00", "é" * 100][int(r.integers(3))]
        if typ == "bool":
            return bool(r.integers(2))
        if typ.startswith("float"):
            return FLOAT_LIES[int(r.integers(len(FLOAT_LIES)))]
        lo, hi = INT_RANGES.get(typ, (0, 255))
        return int(r.choice([lo, hi, 0, hi // 2 + 1]))


def roundtrips(msg: Any) -> bool:
    """True when msg encodes to CDR and decodes again (it is valid on the wire)."""
    from effdl_ros.runtime.local.typesupport import deserialize, serialize

    deserialize(serialize(msg), msg.__msgtype__)
    return True
