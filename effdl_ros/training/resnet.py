"""CIFAR-style ResNet of BasicBlocks with E2-Train's selective-layer-update gates.

Layout as in E2-Train's models (REFERENCES.md section 1; He et al. 2016's CIFAR ResNets): a 3x3 stem,
three stages of BasicBlocks (default widths 16/32/64, stride 2 between stages), global average pool,
one linear classifier. The shortcut is parameter-free (subsample + zero channel padding, "option A"),
so Early-Bird pruning (prune.py) never meets a shortcut BN.

SLU (E2-Train, Wang et al., NeurIPS 2019, arXiv 1910.13349): after every block a gate (avg-pool ->
1x1 conv to 10 -> ONE LSTM cell shared by all gates -> Linear(10->1) -> sigmoid) decides, per sample,
whether the NEXT block runs; block 0 always runs, so there are n_blocks - 1 gates. The hard decision
is Bernoulli(p) with a straight-through estimator. Unlike the original, which computes every block and
multiplies by the mask, a gated-off block is really not computed for that sample, forward or backward:
the block runs only on the sub-batch of samples whose gate fired. Consequence (documented): the
task-loss gradient of a gate exists only where its block ran (it needs block(x) - shortcut(x));
skipped samples' gates get the compute regulariser's gradient only. With ``gate_unit="batch"`` (our
departure, used by the benchmarks) each gate makes ONE decision per mini-batch from the batch's pooled
features, so a skipped block is skipped for the whole batch with no gather/scatter (see _gated_batch).

Pruned blocks (Early-Bird) keep a subset of conv1's outputs (``mid``) and of conv2's outputs
(``out_index``: which trunk channels conv2 still writes; the rest carry the shortcut alone).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class ResNetConfig:
    """Everything needed to rebuild the network (stored beside the weights in a checkpoint)."""

    blocks: Sequence[int] = (3, 3, 3)      # BasicBlocks per stage (ResNet-74 = 12,12,12)
    widths: Sequence[int] = (16, 32, 64)   # channels per stage
    in_channels: int = 1
    num_classes: int = 10
    stem_stride: int = 1
    gates: bool = False                    # SLU gates present
    gate_dim: int = 10                     # embedding / LSTM hidden size (10 in E2-Train)
    gate_bias: float = 2.0                 # initial logit: gates start mostly open (p ~ 0.88)
    gate_unit: str = "sample"              # "sample": one decision per sample (sub-batches);
                                           # "batch": one decision per mini-batch (whole-batch skips)
    mids: Optional[List[int]] = None       # per-block conv1 widths after pruning
    out_index: Optional[List[Optional[List[int]]]] = None  # per-block conv2 kept trunk channels

    def to_dict(self) -> dict:
        d = asdict(self)
        d["blocks"], d["widths"] = list(self.blocks), list(self.widths)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ResNetConfig":
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})


def _shortcut(x: torch.Tensor, out_ch: int, stride: int) -> torch.Tensor:
    """Option-A shortcut: subsample, then zero-pad the new channels (no parameters)."""
    if stride != 1:
        x = x[:, :, ::stride, ::stride]
    extra = out_ch - x.shape[1]
    if extra > 0:
        x = F.pad(x, (0, 0, 0, 0, 0, extra))
    return x


class BasicBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, stride: int, mid: Optional[int] = None,
                 out_index: Optional[Sequence[int]] = None) -> None:
        super().__init__()
        mid = out_ch if mid is None else mid
        n_out = out_ch if out_index is None else len(out_index)
        self.in_ch, self.out_ch, self.stride = in_ch, out_ch, stride
        self.conv1 = nn.Conv2d(in_ch, mid, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, n_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(n_out)
        if out_index is None:
            self.out_index = None
        else:
            self.register_buffer("out_index", torch.as_tensor(list(out_index), dtype=torch.long))

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        return _shortcut(x, self.out_ch, self.stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        res = self.shortcut(x)
        if self.conv1.out_channels == 0 or self.conv2.out_channels == 0:
            return F.relu(res)  # fully pruned body: the block is the shortcut
        body = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        if self.out_index is None:
            return F.relu(res + body)
        return F.relu(res.index_add(1, self.out_index, body))


class Gate(nn.Module):
    """One SLU gate's own part: pool -> 1x1 conv to the shared LSTM's input size.

    A 1x1 convolution of a 1x1 pooled map is a linear map; it is held as nn.Linear because CPU
    convolution kernels carry a large fixed cost per call (measured: it made gated steps slower).
    """

    def __init__(self, channels: int, dim: int) -> None:
        super().__init__()
        self.embed = nn.Linear(channels, dim)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.embed(h.mean(dim=(2, 3)))

    def forward_batch(self, h: torch.Tensor) -> torch.Tensor:
        """The mini-batch's pooled features (mean over samples and space) -> one embedding [1, dim]."""
        return self.embed(h.mean(dim=(0, 2, 3)).unsqueeze(0))


class _FiredStraightThrough(torch.autograd.Function):
    """Value ``out`` (m = 1 where the gate fired); gradients as for m * out + (1 - m) * res with
    m = 1 - p.detach() + p: d/d out = g, d/d res = 0, d/d p = sum(g * (out - res)).

    Same gradients as writing the straight-through product out, without its three full-size
    element-wise operations in the forward and the graph through ``res``.
    """

    @staticmethod
    def forward(ctx, out: torch.Tensor, res: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(out, res)
        ctx.p_shape = p.shape
        return out.view_as(out)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        out, res = ctx.saved_tensors
        grad_p = None
        if ctx.needs_input_grad[2]:
            grad_p = torch.dot(g.reshape(-1), (out - res).reshape(-1)).reshape(ctx.p_shape)
        return g, None, grad_p


class GatedResNet(nn.Module):
    """CIFAR ResNet; with ``config.gates`` each block after the first runs only where its gate fires."""

    def __init__(self, config: ResNetConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.stem = nn.Conv2d(c.in_channels, c.widths[0], 3, c.stem_stride, 1, bias=False)
        self.stem_bn = nn.BatchNorm2d(c.widths[0])
        blocks: List[BasicBlock] = []
        in_ch = c.widths[0]
        k = 0
        for stage, (n, width) in enumerate(zip(c.blocks, c.widths)):
            for j in range(n):
                stride = 2 if (stage > 0 and j == 0) else 1
                mid = c.mids[k] if c.mids else None
                oi = c.out_index[k] if c.out_index else None
                blocks.append(BasicBlock(in_ch, width, stride, mid, oi))
                in_ch = width
                k += 1
        self.blocks = nn.ModuleList(blocks)
        self.fc = nn.Linear(in_ch, c.num_classes)
        if c.gates:
            # gate i sits after block i and decides block i + 1
            self.gates = nn.ModuleList(Gate(b.out_ch, c.gate_dim) for b in self.blocks[:-1])
            self.lstm = nn.LSTMCell(c.gate_dim, c.gate_dim)
            self.gate_fc = nn.Linear(c.gate_dim, 1)
            nn.init.constant_(self.gate_fc.bias, c.gate_bias)
        else:
            self.gates = None
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        #: filled by forward: hard 0/1 decisions [B, n_gates], gate probabilities p [B, n_gates]
        #: (the regulariser's gradient flows through p: d m / d p = 1 under straight-through)
        self.last_masks: Optional[torch.Tensor] = None
        self.last_probs: Optional[torch.Tensor] = None
        self.last_logits: Optional[torch.Tensor] = None   # the gates' logits z, p = sigmoid(z)
        self.last_block_rows: List[int] = []
        self.force_full = False  # evaluate the dense network even when gates exist
        #: gate rule outside training: "hard" (p > 0.5, as E2-Train/SkipNet; skips work),
        #: "sample" (Bernoulli(p), skips work) or "expected" (every block, scaled by p: the
        #: stochastic-depth test rule, Huang et al. 2016; no inference saving)
        self.eval_gates = "hard"

    @property
    def num_gates(self) -> int:
        return 0 if self.gates is None else len(self.gates)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.stem_bn(self.stem(x)))
        h = self.blocks[0](h)
        rows = [h.shape[0]]
        if self.gates is None or self.force_full:
            for block in self.blocks[1:]:
                h = block(h)
                rows.append(h.shape[0])
            self.last_masks = None
        else:
            h, masks, rows = self._gated(h, rows)
            self.last_masks = masks
        self.last_block_rows = rows
        return self.fc(F.adaptive_avg_pool2d(h, 1).flatten(1))

    def _gated(self, h: torch.Tensor, rows: List[int]):
        if self.config.gate_unit == "batch":
            return self._gated_batch(h, rows)
        if self.config.gate_unit != "sample":
            raise ValueError(f"gate_unit must be 'sample' or 'batch', got {self.config.gate_unit!r}")
        batch = h.shape[0]
        state = None  # LSTM state reset every forward (as in E2-Train)
        probs, fired, logits = [], [], []
        expected = not self.training and self.eval_gates == "expected"
        for i, block in enumerate(self.blocks[1:]):
            state = self.lstm(self.gates[i](h), state)
            z = self.gate_fc(state[0]).squeeze(1)
            p = torch.sigmoid(z)
            probs.append(p)
            logits.append(z)
            res = block.shortcut(h)
            if expected:  # stochastic-depth test rule: E[m] * block + (1 - E[m]) * shortcut
                out = block(h)
                h = res + p.view(-1, 1, 1, 1) * (out - res)
                fired.append(torch.ones_like(p))
                rows.append(batch)
                continue
            if self.training or self.eval_gates == "sample":
                fire = p.detach() > torch.rand_like(p)  # hard Bernoulli(p)
            else:
                fire = p.detach() > 0.5
            fired.append(fire.to(p.dtype))
            idx = fire.nonzero().squeeze(1)
            rows.append(int(idx.numel()))
            if idx.numel() == 0:
                h = res
                continue
            # straight-through m = 1 - p.detach() + p on the samples that run: value 1, dm/dp = 1
            if idx.numel() == batch:
                m = (1.0 - p.detach() + p).view(-1, 1, 1, 1)
                out = block(h)
                h = res + m * (out - res)
                continue
            p_on = p.index_select(0, idx)
            m = (1.0 - p_on.detach() + p_on).view(-1, 1, 1, 1)
            h_on = h.index_select(0, idx)
            out = block(h_on)                        # only the samples whose gate fired
            res_on = h_on if res is h else block.shortcut(h_on)
            # value: res + (out - res) on the fired rows = out; index_add's backward is cheaper
            # than index_copy's (no masked copy of the incoming gradient)
            h = res.index_add(0, idx, m * (out - res_on))
        self.last_probs = torch.stack(probs, 1)
        self.last_logits = torch.stack(logits, 1)
        return h, torch.stack(fired, 1), rows

    def _gated_batch(self, h: torch.Tensor, rows: List[int]):
        """One gate decision per mini-batch: a block runs for the whole batch or not at all.

        The gate sees the batch's pooled features (mean over samples) through the same shared LSTM;
        a skipped block costs nothing (no gather / scatter of a sub-batch), forward or backward.
        """
        batch = h.shape[0]
        state = None
        probs, fired, logits = [], [], []
        expected = not self.training and self.eval_gates == "expected"
        for i, block in enumerate(self.blocks[1:]):
            state = self.lstm(self.gates[i].forward_batch(h), state)
            z = self.gate_fc(state[0]).reshape(1)
            p = torch.sigmoid(z)
            probs.append(p.expand(batch))
            logits.append(z.expand(batch))
            res = block.shortcut(h)
            if expected:
                out = block(h)
                h = res + p.view(1, 1, 1, 1) * (out - res)
                fired.append(torch.ones(batch, dtype=p.dtype, device=p.device))
                rows.append(batch)
                continue
            if self.training or self.eval_gates == "sample":
                fire = bool(p.detach() > torch.rand(1))
            else:
                fire = bool(p.detach() > 0.5)
            fired.append(torch.full((batch,), float(fire), dtype=p.dtype, device=p.device))
            rows.append(batch if fire else 0)
            if not fire:
                h = res
                continue
            out = block(h)
            h = _FiredStraightThrough.apply(out, res, p) if p.requires_grad else out
        self.last_probs = torch.stack(probs, 1)
        self.last_logits = torch.stack(logits, 1)
        return h, torch.stack(fired, 1), rows


def build(config: ResNetConfig) -> GatedResNet:
    return GatedResNet(config)


def block_macs_per_sample(model: GatedResNet, image_size: int) -> List[int]:
    """Forward MACs of each block for one sample of side ``image_size`` (convs only)."""
    out = []
    side = (image_size + 2 - 3) // model.config.stem_stride + 1
    for block in model.blocks:
        s_out = (side + 2 - 3) // block.stride + 1
        macs = block.conv1.in_channels * block.conv1.out_channels * 9 * s_out * s_out
        macs += block.conv2.in_channels * block.conv2.out_channels * 9 * s_out * s_out
        out.append(macs)
        side = s_out
    return out


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
