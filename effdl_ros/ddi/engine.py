"""Inference that really skips work, with a hard per-item MAC ceiling (DDI, arXiv 1907.04523).

The engine folds each BatchNorm into its convolution and, per item, evaluates the gates first: a block
whose layer gate is off is not computed at all; a block with k of G channel groups on runs conv1 with
only those k/G output channels and conv2 with only those k/G input channels (weights pre-sliced for
every group subset), so skipped work never executes. Exits stop the forward.

Resource-dependent early halting, checked before every block: for every point of the network the
engine precomputes the *reserve*, the cheapest worst-case cost of reaching some exit from there when
every remaining skippable block (layer-gated, identity shortcut) is skipped and every other block runs
at its worst case (all gates on, gate MACs included). A skippable block runs (its gate is evaluated)
only if spent + its worst case + the reserve after it fit the ceiling, else it is force-skipped
without evaluating its gate; at an exit the engine goes on only if spent + the reserve of the rest
(plus, optionally, continue_share x the next stage's skippable worst case) fits, else it halts there.
The invariant "spent + reserve <= ceiling" holds at every point, so the executed MACs never exceed
the ceiling, and (without confidence halting) the exit reached is never
shallower than the static plan "deepest exit whose worst-case cumulative MACs fit" (plan_exit): every
block that plan would run fits. MACs count the multiply-accumulates of convolutions and linear layers
that ran (torch's FlopCounterMode / 2); pooling and element-wise ops are not counted, as in common MAC
counters.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import List, Optional

import torch
import torch.nn.functional as F

from effdl_ros.ddi.model import DDINet, block_macs


@dataclass
class DDISettings:
    """Every knob a budget drives, in one place."""

    mac_ceiling: float = math.inf          # hard per-item ceiling on executed MACs
    use_gates: bool = True                 # False: every block and channel runs (the static network)
    confidence: Optional[float] = None     # optional: halt at an exit whose top softmax >= this
    continue_share: float = 0.0            # go past an exit only if this share of the next stage's
                                           # skippable blocks (worst case) fits too (0 = greedy: the
                                           # measured best on both tasks, docs/ddi.md)


@dataclass
class DDIResult:
    logits: Optional[torch.Tensor]         # [num_classes], None when even the first exit did not fit
    exit_index: int                        # -1 when nothing ran
    macs: int                              # executed multiply-accumulates
    blocks_run: int = 0
    blocks_total: int = 0
    channel_fraction: float = 0.0          # mean share of channel groups run in the blocks that ran
    forced: List[int] = field(default_factory=list)   # blocks (flat index) skipped for the budget

    @property
    def skipped(self) -> bool:
        return self.logits is None


def _fuse(conv: torch.nn.Conv2d, bn: torch.nn.BatchNorm2d):
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    w = conv.weight * scale[:, None, None, None]
    b = bn.bias - bn.running_mean * scale
    if conv.bias is not None:
        b = b + conv.bias * scale
    return w.detach().contiguous(), b.detach().contiguous()


@dataclass
class _Block:
    stride: int
    groups: int
    layer_gated: bool
    gate_w: Optional[torch.Tensor]
    gate_b: Optional[torch.Tensor]
    w1: List[Optional[torch.Tensor]]        # per channel-group subset (bit mask), conv1 weights
    b1: List[Optional[torch.Tensor]]
    w2: List[Optional[torch.Tensor]]
    b2: torch.Tensor
    wd: Optional[torch.Tensor]
    bd: Optional[torch.Tensor]
    conv1_macs: int
    conv2_macs: int
    short_macs: int
    gate_macs: int


@dataclass
class _Head:
    wc: Optional[torch.Tensor]
    bc: Optional[torch.Tensor]
    wf: torch.Tensor
    bf: torch.Tensor
    macs: int
    pool: int = 1


@dataclass
class CostTable:
    """Precomputed worst-case costs (MACs) that the halting rule uses."""

    stem: int
    stage_worst: List[int]                 # all gates on; stage 0 includes the stem
    head: List[int]                        # per exit
    exit_stage: List[int]
    cumulative_worst: List[int] = field(default_factory=list)   # per exit: stages up to it + its head
    full: int = 0                          # static network: every block, final exit, no gate MACs
    block_worst: List[int] = field(default_factory=list)        # per block (flat): all gates on
    skippable: List[bool] = field(default_factory=list)         # per block: may be force-skipped
    block_exit: List[int] = field(default_factory=list)         # per block: exit right after it, or -1
    reserve_before: List[int] = field(default_factory=list)     # cheapest worst case to an exit from
    reserve_after: List[int] = field(default_factory=list)      # before / after each block
    extra: List[int] = field(default_factory=list)   # per exit block: share of next stage to afford too
    continue_share: float = 0.0

    def plan_exit(self, ceiling: float) -> int:
        """Deepest exit whose worst-case cumulative MACs fit the ceiling; -1 when none does."""
        best = -1
        for k, cost in enumerate(self.cumulative_worst):
            if cost <= ceiling:
                best = k
        return best

    @property
    def min_cost(self) -> int:
        """The cheapest worst case of any item: stem, unskippable blocks, cheapest reachable exit."""
        return self.stem + self.reserve_before[0]

    def compute_reserves(self, stage_of_block: List[int], share: float) -> None:
        """Reserves under the rule "go past an exit only if the next stage's mandatory blocks, share x
        its skippable blocks' worst case and the reserve after it fit" (share 0: the nearest exit)."""
        n = len(self.block_worst)
        self.continue_share = share
        self.extra = [0] * n
        for j in range(n):
            if self.block_exit[j] >= 0 and j + 1 < n:
                nxt = stage_of_block[j + 1]
                skippable = sum(w for i, w in enumerate(self.block_worst)
                                if stage_of_block[i] == nxt and self.skippable[i])
                self.extra[j] = math.ceil(share * skippable)
        self.reserve_before = [0] * n
        self.reserve_after = [0] * n
        for j in reversed(range(n)):
            go_on = self.reserve_before[j + 1] + self.extra[j] if j + 1 < n else math.inf
            stop = self.head[self.block_exit[j]] if self.block_exit[j] >= 0 else math.inf
            self.reserve_after[j] = min(go_on, stop)
            self.reserve_before[j] = (0 if self.skippable[j] else self.block_worst[j]) + self.reserve_after[j]


class DDIEngine:
    """Batch-1 inference of a trained DDINet with real skipping and a hard MAC ceiling."""

    def __init__(self, model: DDINet) -> None:
        model = model.eval()
        cfg = model.config
        self.config = cfg
        self.gated = cfg.gated
        with torch.no_grad():
            self.stem_w, self.stem_b = _fuse(model.stem[0], model.stem[1])
            size = cfg.stem_size
            stem_macs = cfg.widths[0] * cfg.in_channels * 9 * size * size
            self.stages: List[List[_Block]] = []
            for stage in model.stages:
                blocks = []
                for blk in stage:
                    c1, c2, short, gate = block_macs(blk, size)
                    size = (size - 1) // blk.stride + 1
                    blocks.append(self._prepare_block(blk, c1, c2, short, gate))
                self.stages.append(blocks)
            self.heads: List[_Head] = []
            self.exit_stage = model.exit_stages()
            sizes = self._stage_sizes(cfg)
            for head, s in zip(model.heads, self.exit_stage):
                self.heads.append(self._prepare_head(head, sizes[s]))
        stage_worst = [sum(b.conv1_macs + b.conv2_macs + b.short_macs + b.gate_macs for b in st)
                       for st in self.stages]
        stage_worst[0] += stem_macs
        stage_full = [sum(b.conv1_macs + b.conv2_macs + b.short_macs for b in st) for st in self.stages]
        stage_full[0] += stem_macs
        heads = [h.macs for h in self.heads]
        self.costs = CostTable(stem_macs, stage_worst, heads, list(self.exit_stage))
        self._static_costs = CostTable(stem_macs, stage_full, heads, list(self.exit_stage))
        for table in (self.costs, self._static_costs):
            table.cumulative_worst = [sum(table.stage_worst[: s + 1]) + table.head[k]
                                      for k, s in enumerate(table.exit_stage)]
        for table in (self.costs, self._static_costs):
            table.full = self._static_costs.cumulative_worst[-1]
        self.blocks = [b for st in self.stages for b in st]
        self.blocks_total = len(self.blocks)
        last_of_stage = {}
        j = 0
        for s, st in enumerate(self.stages):
            j += len(st)
            last_of_stage[j - 1] = s
        exit_of_stage = {s: k for k, s in enumerate(self.exit_stage)}
        block_exit = [exit_of_stage.get(last_of_stage.get(j, -1), -1) for j in range(self.blocks_total)]
        self._stage_of_block = [s for s, st in enumerate(self.stages) for _ in st]
        for table, gates in ((self.costs, True), (self._static_costs, False)):
            table.block_worst = [b.conv1_macs + b.conv2_macs + b.short_macs + (b.gate_macs if gates else 0)
                                 for b in self.blocks]
            table.skippable = [gates and b.layer_gated for b in self.blocks]
            table.block_exit = list(block_exit)
            table.compute_reserves(self._stage_of_block, DDISettings.continue_share)
        self._tables = {(True, DDISettings.continue_share): self.costs,
                        (False, DDISettings.continue_share): self._static_costs}

    @staticmethod
    def _stage_sizes(cfg) -> List[int]:
        size, out = cfg.stem_size, []
        for s in range(len(cfg.widths)):
            if s > 0:
                size = (size - 1) // 2 + 1
            out.append(size)
        return out

    def _prepare_block(self, blk, c1: int, c2: int, short: int, gate: int) -> _Block:
        w1, b1 = _fuse(blk.conv1, blk.bn1)
        w2, b2 = _fuse(blk.conv2, blk.bn2)
        per = blk.cout // blk.groups
        n_subsets = 1 << blk.groups
        w1s: List[Optional[torch.Tensor]] = [None] * n_subsets
        b1s: List[Optional[torch.Tensor]] = [None] * n_subsets
        w2s: List[Optional[torch.Tensor]] = [None] * n_subsets
        if blk.gated:
            for mask in range(1, n_subsets):
                idx = torch.tensor([g * per + j for g in range(blk.groups) if mask >> g & 1 for j in range(per)])
                w1s[mask] = w1.index_select(0, idx).contiguous()
                b1s[mask] = b1.index_select(0, idx).contiguous()
                w2s[mask] = w2.index_select(1, idx).contiguous()
        full = n_subsets - 1
        w1s[full], b1s[full], w2s[full] = w1, b1, w2
        wd = bd = None
        if blk.downsample is not None:
            wd, bd = _fuse(blk.downsample[0], blk.downsample[1])
        gw = gb = None
        if blk.gate is not None:
            gw, gb = blk.gate.weight.detach().contiguous(), blk.gate.bias.detach().contiguous()
        return _Block(blk.stride, blk.groups, blk.layer_gated, gw, gb, w1s, b1s, w2s, b2, wd, bd,
                      c1, c2, short, gate)

    def _prepare_head(self, head, size: int) -> _Head:
        wc = bc = None
        macs = 0
        if head.conv is not None:
            wc, bc = _fuse(head.conv[0], head.conv[1])
            out = (size - 1) // 2 + 1
            macs += wc.shape[0] * wc.shape[1] * 9 * out * out
        macs += head.fc.in_features * head.fc.out_features
        return _Head(wc, bc, head.fc.weight.detach().contiguous(), head.fc.bias.detach().contiguous(), macs,
                     head.pool)

    # ------------------------------------------------------------------------------------------ costs

    def cost_table(self, use_gates: bool = True, continue_share: Optional[float] = None) -> CostTable:
        gates = bool(use_gates and self.gated)
        share = DDISettings.continue_share if continue_share is None else float(continue_share)
        key = (gates, share)
        if key not in self._tables:
            table = replace(self.costs if gates else self._static_costs)
            table.compute_reserves(self._stage_of_block, share)
            self._tables[key] = table
        return self._tables[key]

    @property
    def max_macs(self) -> int:
        """Worst case of the deepest exit with gates (compute_fraction 1.0 of this model)."""
        return self.costs.cumulative_worst[-1]

    @property
    def min_macs(self) -> int:
        """Below this ceiling nothing runs (the cheapest exit, every skippable block skipped)."""
        return self.costs.min_cost

    @property
    def full_macs(self) -> int:
        """MACs of the static network (every block, every channel, final exit only, no gates)."""
        return self._static_costs.full

    # ------------------------------------------------------------------------------------------ forward

    def _run_head(self, head: _Head, x: torch.Tensor) -> torch.Tensor:
        if head.wc is not None:
            x = F.conv2d(x, head.wc, head.bc, 2, 1).relu_()
        if head.pool == 1:
            return F.linear(x.mean(dim=(2, 3)), head.wf, head.bf)[0]
        return F.linear(F.adaptive_avg_pool2d(x, head.pool).flatten(1), head.wf, head.bf)[0]

    def run(self, x: torch.Tensor, settings: Optional[DDISettings] = None) -> DDIResult:
        """One item, x [1, C, H, W] (or [C, H, W]); never executes more MACs than settings.mac_ceiling."""
        settings = settings or DDISettings()
        if x.dim() == 3:
            x = x.unsqueeze(0)
        use_gates = settings.use_gates and self.gated
        table = self.cost_table(use_gates, settings.continue_share)
        ceiling = settings.mac_ceiling
        if not ceiling == ceiling:  # NaN: no valid budget -> run nothing rather than overspend
            ceiling = 0.0
        conf = settings.confidence
        worst, skippable, block_exit = table.block_worst, table.skippable, table.block_exit
        reserve_before, reserve_after, heads, extra = table.reserve_before, table.reserve_after, table.head, table.extra
        n = self.blocks_total
        spent = 0
        blocks_run = groups_run = groups_total = 0
        forced: List[int] = []
        logits = None
        exit_index = -1
        # invariant from here on: spent + (reserve of the current point) <= ceiling
        if table.stem + reserve_before[0] > ceiling:
            return DDIResult(None, -1, 0, 0, n, 0.0)
        with torch.inference_mode():
            x = F.conv2d(x, self.stem_w, self.stem_b, self.config.stem_stride, 1).relu_()
            spent += table.stem
            for j, blk in enumerate(self.blocks):
                if skippable[j] and spent + worst[j] + reserve_after[j] > ceiling:
                    forced.append(j)           # identity shortcut: x passes unchanged, nothing runs
                else:
                    x, macs, ran, groups = self._run_block(blk, x, use_gates)
                    spent += macs
                    blocks_run += ran
                    groups_run += groups
                    groups_total += blk.groups * ran
                k = block_exit[j]
                if k < 0:
                    continue
                stop = j + 1 == n or spent + reserve_before[j + 1] + extra[j] > ceiling
                if conf is not None and spent + heads[k] <= ceiling:
                    logits = self._run_head(self.heads[k], x)
                    spent += heads[k]
                    exit_index = k
                    if (j + 1 == n or spent + reserve_before[j + 1] + extra[j] > ceiling
                            or float(torch.softmax(logits, 0).max()) >= conf):
                        break
                elif stop:                     # then spent + heads[k] <= ceiling by the invariant
                    logits = self._run_head(self.heads[k], x)
                    spent += heads[k]
                    exit_index = k
                    break
        return DDIResult(logits=None if logits is None else logits.clone(), exit_index=exit_index, macs=spent,
                         blocks_run=blocks_run, blocks_total=n,
                         channel_fraction=(groups_run / groups_total) if groups_total else 0.0, forced=forced)

    def _run_block(self, blk: _Block, x: torch.Tensor, use_gates: bool):
        """(output, executed MACs, 1 if the block body ran else 0, channel groups run)."""
        full = (1 << blk.groups) - 1
        macs = 0
        mask = full
        layer_on = True
        if use_gates and blk.gate_w is not None:
            logits = F.linear(x.mean(dim=(2, 3)), blk.gate_w, blk.gate_b)[0].tolist()
            macs += blk.gate_macs
            if blk.layer_gated:
                layer_on = logits[0] > 0
                logits = logits[1:]
            mask = sum(1 << g for g, v in enumerate(logits) if v > 0)
        shortcut = x
        if blk.wd is not None:
            shortcut = F.conv2d(x, blk.wd, blk.bd, blk.stride)
            macs += blk.short_macs
        if not layer_on:
            return shortcut.relu(), macs, 0, 0
        if mask == 0:
            # every inner channel is off: conv2 sees zeros, so only its folded bias remains
            return (shortcut + blk.b2[None, :, None, None]).relu_(), macs, 1, 0
        k = bin(mask).count("1")
        h = F.conv2d(x, blk.w1[mask], blk.b1[mask], blk.stride, 1).relu_()
        h = F.conv2d(h, blk.w2[mask], blk.b2, 1, 1)
        macs += (blk.conv1_macs + blk.conv2_macs) * k // blk.groups
        return h.add_(shortcut).relu_(), macs, 1, k

    def run_batch(self, xs: torch.Tensor, settings: Optional[DDISettings] = None) -> List[DDIResult]:
        """Route every sample on its own path (each skips its own work)."""
        return [self.run(x, settings) for x in xs]


def engines_summary(engine: DDIEngine) -> dict:
    t = engine.costs
    return {"full_macs": engine.full_macs, "exit_worst_macs": list(t.cumulative_worst),
            "exit_static_macs": list(engine.cost_table(False).cumulative_worst)}


__all__ = ["DDIEngine", "DDISettings", "DDIResult", "CostTable", "engines_summary"]

