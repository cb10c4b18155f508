"""Training: source-only and oracle segmenters, pixel-level adaptation (single-source CycleGAN+DSC and
MADAN multi-source with SAD and CCD), segmenters on adapted images with feature-level alignment.

``train_all`` produces every checkpoint the benchmark compares, from one seed, under one time budget
(each stage stops at its iteration count or its share of the budget, whichever comes first; the
iterations actually done are stored in each checkpoint's config and in the model card).

Data use: source domains are rendered scenes with exact labels; CamVid ``train`` frames are used
WITHOUT labels for adaptation (only the oracle reads train labels); CamVid ``val`` is never used in
training, only in evaluation.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, replace as _replace
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from effdl_ros.data.camvid import CLASSES, IGNORE_INDEX
from effdl_ros.errors import ConfigError
from effdl_ros.segmentation import madan as M
from effdl_ros.segmentation.network import TinySegNet, config_for, save_checkpoint, to_input


@dataclass
class Plan:
    """Sizes and iteration counts; ``seconds`` is the whole time budget, split over the stages."""
    height: int = 120
    width: int = 160
    n_source: int = 1000
    seg_width: float = 1.0
    seg_iters: int = 3000
    seg_batch: int = 32
    seg_lr: float = 2e-3
    gan_iters: int = 4000
    gan_batch: int = 8
    ngf: int = 32
    n_blocks: int = 4
    ndf: int = 32
    gan_lr: float = 2e-4
    cycle_weight: float = 10.0
    dsc_weight: float = 20.0
    sad_weight: float = 1.0
    ccd_weight: float = 0.2
    sad_start: float = 0.25      # fraction of the pixel-level run after which SAD is on (paper: epoch 5)
    ccd_start: float = 0.5       # ... CCD (paper: epoch 10)
    dynamic_at: float = 0.5      # DSC segmenter retrained on adapted images at this point ("dynamic")
    dynamic_iters: int = 200
    fa_weight: float = 0.1
    fa_start: float = 0.5        # feature-level alignment switched on after this fraction
    seconds: float = math.inf
    # share of `seconds` per stage
    share_seg: float = 0.05      # each of source x2, merged, oracle, adapted x3 (7 runs)
    share_gan_single: float = 0.12   # each single-source pixel-level run (2 runs)
    share_gan_madan: float = 0.28    # more time: each iteration updates two generator pairs and SAD/CCD
    # Speed and semantics (second GPU run): bfloat16 autocast on CUDA for every forward pass (weights,
    # optimiser states and losses stay float32); CycleGAN's identity term |G(y) - y| + |F(x) - x|,
    # weighted idt_weight x cycle_weight (CycleGAN's own default 0.5; 0 = off, as in the first run).
    amp: bool = False
    idt_weight: float = 0.0


PRESETS: Dict[str, Plan] = {
    "gpu": Plan(),
    # More of the budget to the pixel-level (GAN) stages, which were the bottleneck on an H200 in the
    # first run (segmenters reached ~1,100 iterations, generators only 240-590).
    "gpu-gan": Plan(share_seg=0.03, share_gan_single=0.16, share_gan_madan=0.42),
    # The second GPU run: fast loops (bf16 autocast, bigger GAN batches, no per-step host syncs),
    # identity term on, more rendered scenes; stages run in parallel processes (parallel.py).
    "gpu-fast": Plan(n_source=2000, seg_iters=3000, gan_iters=100000, gan_batch=16, amp=True, idt_weight=0.5),
    # A CPU-scale comparison: 48x64 scenes, small generators, few scenes, so that two CPU cores give the
    # GAN loops tens of epochs in an hour (the GPU runs got ~5-10); not the shipped models' scale.
    "cpu-small": Plan(height=48, width=64, n_source=500, seg_iters=4000, seg_batch=16, gan_iters=100000, gan_batch=8,
                      ngf=16, n_blocks=2, ndf=16, idt_weight=0.5),
    "tiny": Plan(height=48, width=64, n_source=24, seg_width=0.5, seg_iters=6, seg_batch=4, gan_iters=4,
                 gan_batch=2, ngf=8, n_blocks=1, ndf=8, dynamic_iters=2, idt_weight=0.5),
}


def _progress(it: int, iters: int, t0: float, seconds: float) -> float:
    return max(it / max(1, iters), (time.perf_counter() - t0) / seconds if math.isfinite(seconds) else 0.0)


class _StageBar:
    """A progress bar with an ETA per training stage (tqdm; silent where stderr is not a terminal).

    Progress is the stage's fraction done (iterations or its share of the time budget, whichever
    leads), so the ETA holds whichever limit ends the stage.
    """

    def __init__(self, name: str) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=100, desc=name, unit="%", disable=None, leave=False,
                        bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]")
        self.shown = 0

    def update(self, prog: float) -> None:
        now = min(100, int(prog * 100))
        if now > self.shown:
            self.bar.update(now - self.shown)
            self.shown = now

    def close(self) -> None:
        self.bar.close()


def class_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Inverse-square-root class frequency, normalised to mean 1 (rare classes: pole, sign, people)."""
    counts = torch.bincount(labels[labels < num_classes].flatten().long(), minlength=num_classes).double()
    freq = counts / counts.sum().clamp(min=1)
    w = torch.where(counts > 0, 1.0 / torch.sqrt(freq.clamp(min=1e-6)), torch.zeros_like(freq))
    w = w / w[counts > 0].mean()
    return w.clamp(max=10.0).float()


def _augment(x: torch.Tensor, y: Optional[torch.Tensor], gen: torch.Generator) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Same geometric augmentation for every model: horizontal flip, random scale 1-1.5 and crop."""
    h, w = x.shape[-2:]
    if torch.rand((), generator=gen) < 0.5:
        x = x.flip(-1)
        y = y.flip(-1) if y is not None else None
    s = 1.0 + 0.5 * float(torch.rand((), generator=gen))
    hh, ww = int(round(h * s)), int(round(w * s))
    if (hh, ww) != (h, w):
        x = F.interpolate(x, size=(hh, ww), mode="bilinear", align_corners=False)
        if y is not None:
            y = F.interpolate(y[:, None].float(), size=(hh, ww), mode="nearest")[:, 0].long()
        top = int(torch.randint(0, hh - h + 1, (), generator=gen))
        left = int(torch.randint(0, ww - w + 1, (), generator=gen))
        x = x[..., top:top + h, left:left + w]
        y = y[..., top:top + h, left:left + w] if y is not None else None
    return x, y


def _device_generator(device, seed: int) -> torch.Generator:
    """A generator on ``device``: batch indices drawn there need no host-to-device copy (a hidden sync)."""
    return torch.Generator(device=torch.device(device)).manual_seed(seed)


def _autocast(plan: Plan, device) -> "torch.autocast":
    """bfloat16 autocast on CUDA when ``plan.amp``; a no-op context otherwise."""
    on = bool(plan.amp) and str(device).startswith("cuda")
    return torch.autocast("cuda" if on else "cpu", dtype=torch.bfloat16, enabled=on)


def _adam(params, device, **kw) -> torch.optim.Optimizer:
    """Adam, fused into few kernels on CUDA (the GAN loops are bound by kernel launches)."""
    return torch.optim.Adam(params, fused=True, **kw) if str(device).startswith("cuda") else torch.optim.Adam(params, **kw)


def _batch(images: torch.Tensor, n: int, gen: torch.Generator, labels: Optional[torch.Tensor] = None):
    """A random mini-batch; ``gen`` should live on the images' device (else indices are copied over)."""
    idx = torch.randint(0, images.shape[0], (n,), generator=gen, device=gen.device).to(images.device)
    x = to_input(images[idx]) if images.dtype == torch.uint8 else images[idx]
    return x, (labels[idx].long() if labels is not None else None)


def train_segmenter(images: torch.Tensor, labels: torch.Tensor, plan: Plan, *, device: str, seed: int,
                    seconds: float = math.inf, iters: Optional[int] = None,
                    target_images: Optional[torch.Tensor] = None, init: Optional[TinySegNet] = None,
                    log: Callable[[str], None] = print, name: str = "seg") -> Tuple[TinySegNet, Dict]:
    """Supervised segmenter training; with ``target_images`` adds MADAN's feature-level alignment.

    :param images: uint8 [N, H, W, 3] (or float [N, 3, H, W] in [-1, 1]) on ``device``.
    :param labels: uint8 [N, H, W] class ids, 11 = ignore.
    """
    iters = plan.seg_iters if iters is None else iters
    gen = torch.Generator().manual_seed(seed)
    dgen = _device_generator(images.device, seed)
    torch.manual_seed(seed)
    model = copy.deepcopy(init) if init is not None else TinySegNet(len(CLASSES), plan.seg_width)
    model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=plan.seg_lr, weight_decay=1e-4,
                            **({"fused": True} if str(device).startswith("cuda") else {}))
    weights = class_weights(labels, len(CLASSES)).to(device)
    disc = acc = opt_d = None
    if target_images is not None:
        disc = M.ScoreDiscriminator(len(CLASSES)).to(device)
        opt_d = _adam(disc.parameters(), device, lr=1e-4, betas=(0.9, 0.99))
        # M.RunningAccuracy's rule, kept on the device: reading it every step would stall the GPU.
        ref = M.RunningAccuracy()
        acc = torch.tensor(ref.value, device=device)
        gated_t = torch.zeros((), device=device)
    t0, it, gated, losses = time.perf_counter(), 0, 0, []
    bar = _StageBar(name)
    while True:
        prog = _progress(it, iters, t0, seconds)
        bar.update(prog)
        if prog >= 1.0:
            break
        for g in opt.param_groups:
            g["lr"] = plan.seg_lr * 0.5 * (1.0 + math.cos(math.pi * prog))
        x, y = _batch(images, plan.seg_batch, dgen, labels)
        x, y = _augment(x, y, gen)
        fa = disc is not None and prog >= plan.fa_start
        with _autocast(plan, device):
            if fa:
                xt, _ = _augment(_batch(target_images, plan.seg_batch, dgen)[0], None, gen)
                feats = model.features(torch.cat([x, xt], 0))
                fs, ft = feats[: x.shape[0]], feats[x.shape[0]:]
                out = F.interpolate(fs, size=x.shape[-2:], mode="bilinear", align_corners=False)
            else:
                out = model(x)
            loss = F.cross_entropy(out.float(), y, weight=weights, ignore_index=IGNORE_INDEX)
            if fa:
                ps, pt = F.softmax(fs.float(), 1), F.softmax(ft.float(), 1)
                ls, lt = disc(ps.detach()), disc(pt.detach())
                d_loss = 0.5 * (M.domain_ce(ls.float(), 0) + M.domain_ce(lt.float(), 1))
        if fa:
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
            with torch.no_grad():
                batch_acc = 0.5 * ((ls.argmax(1) == 0).float().mean() + (lt.argmax(1) == 1).float().mean())
                acc.mul_(ref.momentum).add_((1.0 - ref.momentum) * batch_acc)
                gate = (acc > ref.threshold).float()  # the adversarial term acts only while D is > 60 % right
                gated_t += gate
            with _autocast(plan, device):
                loss = loss + plan.fa_weight * gate * M.domain_ce(disc(pt).float(), 0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()) if it % 50 == 0 else losses[-1] if losses else 0.0)
        it += 1
    bar.close()
    model.eval()
    info = {"iterations": it, "seconds": round(time.perf_counter() - t0, 1), "final_loss": round(losses[-1], 4)
            if losses else None}
    if disc is not None:
        gated = int(gated_t.item())
        info.update(fa_iterations_gated=gated, fa_disc_accuracy=round(float(acc), 3))
    log(f"[{name}] {info}")
    return model, info


@torch.no_grad()
def translate(gen_net: nn.Module, images: torch.Tensor, batch: int = 64) -> torch.Tensor:
    """Adapted copies (float in [-1, 1], [N, 3, H, W]) of uint8 images through a generator."""
    gen_net.eval()
    out = [gen_net(to_input(images[i:i + batch])) for i in range(0, images.shape[0], batch)]
    gen_net.train()
    return torch.cat(out, 0)


def train_pixel_level(sources: Sequence[Tuple[str, torch.Tensor, torch.Tensor]], target_images: torch.Tensor,
                      dsc_segmenters: Sequence[TinySegNet], plan: Plan, *, madan: bool, device: str, seed: int,
                      seconds: float = math.inf, iters: Optional[int] = None,
                      log: Callable[[str], None] = print, name: str = "gan") -> Tuple[List[nn.Module], Dict]:
    """CycleGAN+DSC per source; with ``madan`` the target discriminator is shared and SAD + CCD act.

    :param sources: (name, uint8 images, labels) per source, on ``device``.
    :param dsc_segmenters: one source-trained segmenter per source (copied; retrained once on adapted
        images at ``plan.dynamic_at``: the "dynamic" in DSC).
    :returns: the source->target generators G_i and a dict of what was done.
    """
    if madan and len(sources) < 2:
        raise ConfigError("MADAN needs at least two source domains")
    iters = plan.gan_iters if iters is None else iters
    gen = _device_generator(target_images.device, seed)
    torch.manual_seed(seed)
    k = len(sources)
    G = [M.ResnetGenerator(plan.ngf, plan.n_blocks).to(device) for _ in range(k)]   # source -> target
    Fb = [M.ResnetGenerator(plan.ngf, plan.n_blocks).to(device) for _ in range(k)]  # target -> source
    DT = [M.PatchDiscriminator(plan.ndf).to(device) for _ in range(1 if madan else k)]
    DS = [M.PatchDiscriminator(plan.ndf).to(device) for _ in range(k)]
    extra: Dict[str, nn.Module] = {}
    if madan:
        extra["sad"] = M.PatchDiscriminator(plan.ndf).to(device)
        for i in range(k):
            for j in range(k):
                if i != j:
                    extra[f"ccd{j}{i}"] = M.PatchDiscriminator(plan.ndf).to(device)  # real S_j vs F_j(G_i(S_i))
    segs = [copy.deepcopy(s).to(device).eval() for s in dsc_segmenters]
    for s in segs:
        s.requires_grad_(False)
    g_params = [p for net in G + Fb for p in net.parameters()]
    d_params = [p for net in DT + DS + list(extra.values()) for p in net.parameters()]
    opt_g = _adam(g_params, device, lr=plan.gan_lr, betas=(0.5, 0.999))
    opt_d = _adam(d_params, device, lr=plan.gan_lr, betas=(0.5, 0.999))
    pools_t = [M.ImagePool(50, seed + i) for i in range(k)]
    pools_s = [M.ImagePool(50, seed + 10 + i) for i in range(k)]
    t0, it, dynamic_done, hist = time.perf_counter(), 0, False, []
    sad_on = ccd_on = False
    bar = _StageBar(name)
    while True:
        prog = _progress(it, iters, t0, seconds)
        bar.update(prog)
        if prog >= 1.0:
            break
        if prog > 0.5:  # linear decay to 0 over the second half, as CycleGAN does
            for opt in (opt_g, opt_d):
                for g in opt.param_groups:
                    g["lr"] = plan.gan_lr * max(0.0, 2.0 * (1.0 - prog))
        if not dynamic_done and prog >= plan.dynamic_at and plan.dynamic_iters > 0:
            for i, (_sname, simgs, slabs) in enumerate(sources):
                adapted = translate(G[i], simgs)
                segs[i].requires_grad_(True)
                segs[i], _ = train_segmenter(adapted, slabs, plan, device=device, seed=seed + 100 + i,
                                             iters=plan.dynamic_iters, init=segs[i], log=log,
                                             name=f"{name}/dynamic-dsc-{i}")
                segs[i].requires_grad_(False)
            dynamic_done = True
        sad_on = madan and prog >= plan.sad_start
        ccd_on = madan and prog >= plan.ccd_start
        xs = []
        for _sname, simgs, _ in sources:
            xs.append(_batch(simgs, plan.gan_batch, gen)[0])
        xt = _batch(target_images, plan.gan_batch, gen)[0]
        # Every network takes all of its inputs of one step in ONE call (the loop is bound by kernel
        # launches, ~5,000 ops per MADAN step before this): the generators and discriminators use
        # instance norm and the DSC segmenters are in eval mode, so each sample's output is the same
        # as in separate calls.
        b = xt.shape[0]
        idt_on = plan.idt_weight > 0
        terms = {"gan": 0.0, "cyc": 0.0, "dsc": 0.0, "idt": 0.0, "sad": 0.0, "ccd": 0.0}
        cross: Dict[str, torch.Tensor] = {}
        # ---- generators
        with _autocast(plan, device):
            fake_t, fake_s, idt_t, idt_s = [], [], [], []
            for i in range(k):
                out = G[i](torch.cat([xs[i], xt]) if idt_on else xs[i])
                fake_t.append(out[:b])
                idt_t.append(out[b:])
                out = Fb[i](torch.cat([xt, xs[i]]) if idt_on else xt)
                fake_s.append(out[:b])
                idt_s.append(out[b:])
            rec_s = []
            for j in range(k):  # F_j on G_j(x_j) (cycle) and, with CCD on, on G_i(x_i) for i != j
                others = [i for i in range(k) if i != j] if ccd_on else []
                out = Fb[j](torch.cat([fake_t[j]] + [fake_t[i] for i in others]))
                rec_s.append(out[:b])
                for n, i in enumerate(others):
                    cross[f"ccd{j}{i}"] = out[(n + 1) * b:(n + 2) * b]
            if madan:
                d_fake = torch.split(DT[0](torch.cat(fake_t)).float(), b)
            else:
                d_fake = [DT[i](fake_t[i]).float() for i in range(k)]
            loss_g = 0.0
            for i in range(k):
                gan = M.lsgan_loss(d_fake[i], True) + M.lsgan_loss(DS[i](fake_s[i]).float(), True)
                cyc = M.cycle_loss(rec_s[i].float(), xs[i]) + M.cycle_loss(G[i](fake_s[i]).float(), xt)
                seg_src, seg_ad = torch.split(segs[i](torch.cat([xs[i], fake_t[i]])).float(), b)
                dsc = M.dsc_loss(seg_src, seg_ad)
                loss_g = loss_g + gan + plan.cycle_weight * cyc + plan.dsc_weight * dsc
                if idt_on:  # CycleGAN's identity term: a target image through G_i stays itself (and F_i)
                    idt = M.cycle_loss(idt_t[i].float(), xt) + M.cycle_loss(idt_s[i].float(), xs[i])
                    loss_g = loss_g + plan.idt_weight * plan.cycle_weight * idt
                    if it % 100 == 0:
                        terms["idt"] += float(idt.detach())
                if it % 100 == 0:  # reading a value synchronises the GPU: only now and then
                    terms["gan"] += float(gan.detach())
                    terms["cyc"] += float(cyc.detach())
                    terms["dsc"] += float(dsc.detach())
            if sad_on:  # adapted source i should be indistinguishable from the other adapted sources
                d_sad = torch.split(extra["sad"](torch.cat(fake_t)).float(), b)
                sad = sum(M.lsgan_loss(d_sad[i], i != 0) for i in range(k))  # the flipped label
                loss_g = loss_g + plan.sad_weight * sad
                terms["sad"] = float(sad.detach()) if it % 100 == 0 else 0.0
            if ccd_on:
                ccd = sum(M.lsgan_loss(extra[key](img).float(), True) for key, img in cross.items())
                loss_g = loss_g + plan.ccd_weight * ccd
                terms["ccd"] = float(ccd.detach()) if it % 100 == 0 else 0.0
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        # ---- discriminators
        with _autocast(plan, device):
            loss_d = 0.0
            pooled_t = [pools_t[i].query(fake_t[i]) for i in range(k)]
            if madan:  # the shared target discriminator: real target once, each source's fakes
                d_out = torch.split(DT[0](torch.cat([xt] + pooled_t)).float(), b)
                for i in range(k):
                    loss_d = loss_d + 0.5 * (M.lsgan_loss(d_out[0], True) + M.lsgan_loss(d_out[1 + i], False))
            else:
                for i in range(k):
                    d_real, d_fk = torch.split(DT[i](torch.cat([xt, pooled_t[i]])).float(), b)
                    loss_d = loss_d + 0.5 * (M.lsgan_loss(d_real, True) + M.lsgan_loss(d_fk, False))
            for i in range(k):
                d_real, d_fk = torch.split(DS[i](torch.cat([xs[i], pools_s[i].query(fake_s[i])])).float(), b)
                loss_d = loss_d + 0.5 * (M.lsgan_loss(d_real, True) + M.lsgan_loss(d_fk, False))
            if sad_on:  # SAD learns which source an adapted image came from: source 0 -> 1, others -> 0
                d_sad = torch.split(extra["sad"](torch.cat(fake_t).detach()).float(), b)
                for i in range(k):
                    loss_d = loss_d + 0.5 * M.lsgan_loss(d_sad[i], i == 0)
            for key, img in cross.items():
                j = int(key[3])
                d_real, d_fk = torch.split(extra[key](torch.cat([xs[j], img.detach()])).float(), b)
                loss_d = loss_d + 0.5 * (M.lsgan_loss(d_real, True) + M.lsgan_loss(d_fk, False))
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        if it % 100 == 0:
            hist.append({"it": it, **{kk: round(v, 4) for kk, v in terms.items()}})
        it += 1
    bar.close()
    info = {"iterations": it, "seconds": round(time.perf_counter() - t0, 1), "madan": madan,
            "sad_on": sad_on, "ccd_on": ccd_on, "dynamic_dsc": dynamic_done, "last_terms": hist[-1] if hist else None}
    log(f"[{name}] {info}")
    for g_net in G:
        g_net.eval()
    return G, info


def load_camvid_lowres(root: Path, split: str, height: int, width: int, limit: Optional[int] = None
                       ) -> Tuple[np.ndarray, np.ndarray]:
    """CamVid frames resized to height x width (area) and their masks (nearest)."""
    from effdl_ros.data.camvid import pairs
    from effdl_ros.segmentation.domains import resize_pairs

    return resize_pairs(pairs(Path(root), split)[: limit or None], height, width)


def warm_up(src, target: torch.Tensor, plan: Plan, *, device: str, seed: int, baselines: bool = True,
            log: Callable[[str], None] = print) -> float:
    """Untimed, discarded warm-up of every loop (CUDA context, cuDNN autotuning), so that the first
    timed stage is not short-changed; returns the seconds it took."""
    t_w, quiet = time.perf_counter(), (lambda m: None)
    wp = _replace(plan, fa_start=0.0, sad_start=0.0, ccd_start=0.0, dynamic_iters=0)
    probe = TinySegNet(len(CLASSES), plan.seg_width).to(device).eval()
    train_segmenter(src[0][1], src[0][2], wp, device=device, seed=seed, iters=20, target_images=target, log=quiet)
    train_pixel_level(src, target, [probe] * len(src), wp, madan=True, device=device, seed=seed, iters=5, log=quiet)
    if baselines:
        train_pixel_level(src[:1], target, [probe], wp, madan=False, device=device, seed=seed, iters=5, log=quiet)
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()
    took = time.perf_counter() - t_w
    log(f"warm-up (discarded): {took:.1f}s")
    return took


def save_role_checkpoint(path: Path, model: TinySegNet, info: Dict, *, role: str, plan: Plan,
                         sources: Sequence[str], seed: int) -> None:
    """One benchmark checkpoint (float16 storage) with the plan and what training did in its config."""
    cfg = config_for(len(CLASSES), plan.seg_width, (plan.height, plan.width), role=role, sources=list(sources),
                     seed=seed,
                     train={k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in info.items()},
                     plan={k: v for k, v in asdict(plan).items() if not isinstance(v, float) or math.isfinite(v)})
    cfg["storage"] = "float16 (trained in float32" + (", bfloat16 autocast)" if plan.amp else ")")
    save_checkpoint(Path(path), model, cfg, half=True)


def generators_path(checkpoint: Path) -> Path:
    """Where an adapted checkpoint's pixel-level generators go: ``<stem>_generators.pt`` beside it."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(f"{checkpoint.stem}_generators.pt")


def save_role_generators(checkpoint: Path, generators: Sequence[nn.Module], sources: Sequence[str], *, plan: Plan,
                         seed: int) -> None:
    """The generators behind one adapted checkpoint, at generators_path(checkpoint), sized by ``plan``."""
    M.save_generators(generators_path(checkpoint), generators, sources, ngf=plan.ngf, n_blocks=plan.n_blocks,
                      input_hw=(plan.height, plan.width), seed=seed)


#: Checkpoint names the benchmark looks for, per role.
def checkpoint_names(sources: Sequence[str]) -> Dict[str, str]:
    slug = {s: s.replace(":", "_") for s in sources}          # camvid:0006R0 -> madan_source_camvid_0006R0.pt
    names = {f"source:{s}": f"madan_source_{slug[s]}.pt" for s in sources}
    names["source:merged"] = "madan_source_merged.pt"
    names.update({f"single:{s}": f"madan_single_{slug[s]}.pt" for s in sources})
    names["madan"] = "madan_multi.pt"
    names["oracle"] = "madan_oracle.pt"
    return names


class StageStore:
    """Finished stages of one training run, kept in a work folder so that a killed run resumes.

    Each stage (a segmenter, a pixel-level run's generators) is saved atomically when it ends, under
    a key that includes everything that shapes it (plan, sources, target, seed); a rerun with
    ``--resume`` loads what is there and trains only the rest. A stage cut off by a kill starts over.
    """

    def __init__(self, folder: Optional[Path], signature: Dict, log: Callable[[str], None] = print) -> None:
        import hashlib
        import json

        self.folder = Path(folder) if folder is not None else None
        self.key = hashlib.sha1(json.dumps(signature, sort_keys=True, default=str).encode()).hexdigest()[:12]
        self.log = log
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)

    def _path(self, stage: str, kind: str) -> Optional[Path]:
        if self.folder is None:
            return None
        safe = "".join(ch if ch.isalnum() else "_" for ch in stage)
        return self.folder / f"{safe}.{self.key}.{kind}.pt"

    def load_segmenter(self, stage: str):
        from effdl_ros.segmentation.network import load_checkpoint

        p = self._path(stage, "seg")
        if p is None or not p.is_file():
            return None
        model, cfg = load_checkpoint(p)
        self.log(f"[{stage}] resumed from {p}")
        return model, dict(cfg.get("train", {}))

    def save_segmenter(self, stage: str, model: TinySegNet, info: Dict, plan: Plan) -> None:
        p = self._path(stage, "seg")
        if p is not None:
            cfg = config_for(len(CLASSES), plan.seg_width, (plan.height, plan.width), role=stage,
                             train={k: (v if isinstance(v, (int, float, str, bool)) else str(v))
                                    for k, v in info.items()})
            save_checkpoint(p, model, cfg)

    def load_generators(self, stage: str, sources: Sequence[str]):
        p = self._path(stage, "gen")
        if p is None or not p.is_file():
            return None
        gens, cfg = M.load_generators(p)
        self.log(f"[{stage}] resumed from {p}")
        return [gens[s] for s in sources], dict(cfg.get("info", {}))

    def save_generators(self, stage: str, gens: Sequence[nn.Module], sources: Sequence[str], info: Dict,
                        plan: Plan, seed: int) -> None:
        p = self._path(stage, "gen")
        if p is not None:
            M.save_generators(p, gens, sources, ngf=plan.ngf, n_blocks=plan.n_blocks,
                              input_hw=(plan.height, plan.width), seed=seed,
                              info={k: (v if isinstance(v, (int, float, str, bool)) else str(v))
                                    for k, v in info.items()}, half=False)


def train_all(sources: Sequence[str], camvid_root: Path, out_dir: Path, plan: Plan, *, device: str = "cpu",
              seed: int = 0, madan_out: Optional[Path] = None, baselines: bool = True,
              log: Callable[[str], None] = print, samples_png: Optional[Path] = None,
              workers: int = 0, save_generators: bool = False, target=None,
              work_dir: Optional[Path] = None) -> Dict[str, Dict]:
    """Train every model the benchmark compares; returns {role: info}. Writes checkpoints atomically.

    :param sources: rendered styles or ``camvid:SEQ`` (domains.load_source).
    :param target: a domains.TargetDomain (default: CamVid's train frames, unlabelled for adaptation).
    :param work_dir: keep each finished stage there and reuse it on a rerun (StageStore).
    With ``save_generators`` each adapted checkpoint gets its generators beside it (generators_path).
    """
    from effdl_ros.segmentation.domains import load_source, load_target

    if len(sources) < 2:
        raise ConfigError("train madan needs at least two sources, e.g. --sources sunny,dusk")
    t_start = time.perf_counter()
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    out_dir = Path(out_dir)
    names = checkpoint_names(sources)
    H, W = plan.height, plan.width
    src = []
    for k, s in enumerate(sources):
        imgs, labs = load_source(s, height=H, width=W, n_rendered=plan.n_source, seed=seed + k,
                                 camvid_root=camvid_root, workers=workers)
        src.append((s, torch.from_numpy(imgs).to(device), torch.from_numpy(labs).to(device)))
    if target is None:
        target = load_target("camvid", height=H, width=W, camvid_root=camvid_root,
                             limit=None if plan.n_source > 100 else 16)
    target_t = torch.from_numpy(target.images).to(device)
    log(f"data: sources {', '.join(f'{s} ({x.shape[0]} labelled)' for s, x, _ in src)}; target {target.description}; "
        f"{H}x{W}, {time.perf_counter() - t_start:.1f}s")
    store = StageStore(work_dir, {"plan": asdict(plan), "sources": list(sources), "target": target.description,
                                  "target_n": int(target.images.shape[0]), "seed": seed}, log=log)
    if str(device).startswith("cuda"):
        warm_up(src, target_t, plan, device=device, seed=seed, baselines=baselines, log=log)
    S = plan.seconds
    results: Dict[str, Dict] = {}

    def save(role: str, model: TinySegNet, info: Dict, path: Optional[Path] = None, gens=None) -> None:
        p = path or out_dir / names[role]
        save_role_checkpoint(p, model, info, role=role, plan=plan, sources=sources, seed=seed)
        results[role] = {"path": str(p), **info}
        if save_generators and gens is not None:
            save_role_generators(p, gens[0], gens[1], plan=plan, seed=seed)

    def segmenter(stage: str, *args, **kw):
        done = store.load_segmenter(stage)
        if done is not None:
            return done
        model, info = train_segmenter(*args, log=log, name=stage, **kw)
        store.save_segmenter(stage, model, info, plan)
        return model, info

    def pixel_level(stage: str, domains, segs, **kw):
        names_ = [d[0] for d in domains]
        done = store.load_generators(stage, names_)
        if done is not None:
            return [g.to(device) for g in done[0]], done[1]
        gens, info = train_pixel_level(domains, target_t, segs, plan, log=log, name=stage, **kw)
        store.save_generators(stage, gens, names_, info, plan, seed)
        return gens, info

    seg_s = S * plan.share_seg
    source_models = {}
    for k, (s, imgs, labs) in enumerate(src):
        source_models[s], info = segmenter(f"source-only {s}", imgs, labs, plan, device=device, seed=seed + 1,
                                           seconds=seg_s)
        if baselines:
            save(f"source:{s}", source_models[s], info)
    if baselines:
        merged_i = torch.cat([x[1] for x in src], 0)
        merged_l = torch.cat([x[2] for x in src], 0)
        m, info = segmenter("source-only merged", merged_i, merged_l, plan, device=device, seed=seed + 1,
                            seconds=seg_s)
        save("source:merged", m, info)
        del merged_i, merged_l
        if target.labels is not None:
            labs_t = torch.from_numpy(target.labels).to(device)
            m, info = segmenter("oracle (target labels)", target_t, labs_t, plan, device=device, seed=seed + 1,
                                seconds=seg_s)
            save("oracle", m, info)
        for k, (s, imgs, labs) in enumerate(src):
            Gs, ginfo = pixel_level(f"CycleGAN+DSC {s}", [(s, imgs, labs)], [source_models[s]], madan=False,
                                    device=device, seed=seed + 2, seconds=S * plan.share_gan_single)
            adapted = translate(Gs[0], imgs)
            m, info = segmenter(f"single-source adapted {s}", adapted, labs, plan, device=device, seed=seed + 1,
                                seconds=seg_s, target_images=target_t)
            info = {**info, **{f"pixel_{kk}": vv for kk, vv in ginfo.items()}}
            save(f"single:{s}", m, info, gens=(Gs, [s]))
            del Gs, adapted
    Gs, ginfo = pixel_level("MADAN pixel-level", src, [source_models[s] for s in sources], madan=True,
                            device=device, seed=seed + 2, seconds=S * plan.share_gan_madan)
    adapted = torch.cat([translate(g, x[1]) for g, x in zip(Gs, src)], 0)
    labels = torch.cat([x[2] for x in src], 0)
    m, info = segmenter("MADAN segmenter + feature alignment", adapted, labels, plan, device=device, seed=seed + 1,
                        seconds=seg_s, target_images=target_t)
    info = {**info, **{f"pixel_{kk}": vv for kk, vv in ginfo.items()}, "target": target.description}
    save("madan", m, info, path=madan_out, gens=(Gs, list(sources)))
    if samples_png is not None:
        _save_samples(samples_png, src, Gs)
    log(f"total {time.perf_counter() - t_start:.1f}s")
    return results


def _save_samples(path: Path, src, Gs, n: int = 4) -> None:
    """A PNG grid: per source, n rendered scenes above their MADAN-adapted versions."""
    import cv2

    rows = []
    for (_s, imgs, _l), g in zip(src, Gs):
        x = imgs[:n]
        y = translate(g, x).add(1).mul(127.5).clamp(0, 255).byte().permute(0, 2, 3, 1)
        rows.append(torch.cat(list(x.cpu()), 1))
        rows.append(torch.cat(list(y.cpu()), 1))
    grid = torch.cat(rows, 0).numpy()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
