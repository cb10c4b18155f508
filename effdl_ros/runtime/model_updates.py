"""Hot-swapping a node's weights on effdl_ros/ModelUpdate, the same way in every consumer node.

An update counts only when it names this node and a newer version (the topic is transient-local, so
old ones are replayed to late joiners). The node's `install(path)` loads and swaps; if it raises
DataError (missing, truncated, corrupt, outside model_dir) the old model keeps serving and the
refusal is counted in diagnostics as a dropped message.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

from effdl_ros.runtime.messages import ModelUpdate
from effdl_ros.runtime.qos import latched
from effdl_ros.runtime.safety import guarded, record_drop

TOPIC = "trainer/model_update"


class ModelUpdateSubscriber:
    """:param install: loads a checkpoint path and swaps it in, raising DataError if it is bad.
    :param model_dir: relative paths in updates are taken relative to it.
    :param on_installed: called after a successful swap (e.g. to republish label info)."""

    def __init__(self, node: Any, install: Callable[[Path], None], model_dir: Path, *,
                 on_installed: Optional[Callable[[], None]] = None) -> None:
        self.node = node
        self.install = install
        self.model_dir = Path(model_dir)
        self.on_installed = on_installed
        self.version = 0
        self.accepted = 0
        self.rejected = 0
        self.subscription = node.create_subscription(ModelUpdate, TOPIC, guarded(node, self.on_update), latched(1))

    def on_update(self, msg: Any) -> None:
        from effdl_ros.errors import DataError

        if msg.consumer_node != self.node.get_fully_qualified_name():
            return
        if msg.version and msg.version <= self.version:
            return  # an old update replayed (transient-local)
        path = Path(msg.model_path)
        try:
            self.install(path if path.is_absolute() else self.model_dir / path)
        except DataError as err:
            self.rejected += 1
            record_drop(self.node, "model_update_refused", f"model update {msg.version} refused, "
                                                           f"keeping the current model: {err}")
            return
        self.version = int(msg.version)
        self.accepted += 1
        if self.on_installed is not None:
            self.on_installed()
