"""ROAM model pieces: resized-filter shapes per aspect ratio, batched heads = per-clip heads, and the
learned optimiser's / meta-initialiser's step lowers the loss on a fixed sample."""
import pytest
import torch

from effdl_ros.tracking.meta_optimizer import LSTMOptimizer
from effdl_ros.tracking.roam import (
    RoamConfig,
    RoamNet,
    decode_deltas,
    encode_deltas,
    filter_size,
    gaussian_label,
    odd,
    tracking_loss,
)


@pytest.mark.parametrize("h,w,expected", [
    (32, 32, (13, 13)),     # square: 1.5 * (161/5) / 4 = 12.1 -> odd 13
    (64, 16, (25, 7)),      # aspect 4: sqrt(4)=2 -> 24.1 -> 25 and 6.04 -> 7
    (16, 64, (7, 25)),
    (45, 20, (19, 9)),      # sqrt(2.25)=1.5 -> 18.1 -> 19 and 8.05 -> 9
])
def test_filter_shapes_follow_aspect(h, w, expected):
    assert filter_size((h, w), 161, 27) == expected
    kh, kw = expected
    assert kh % 2 == 1 and kw % 2 == 1


def test_filter_size_clamped_and_odd():
    assert filter_size((400, 1), 161, 27) == (27, 3)
    assert odd(12.0) == 13 and odd(13.0) == 13


def test_heads_resize_filters_to_requested_shape_and_batch_matches_single():
    torch.manual_seed(0)
    net = RoamNet(RoamConfig(backbone="resnet18_layer1"))   # 64-channel features
    p = net.init_params()
    params = {k: (torch.randn_like(v) * 0.05).unsqueeze(0).repeat(2, *[1] * v.dim()) for k, v in p.items()}
    f = net.resized_filters(params["g_f"][:1], torch.tensor([[19, 9]]))
    assert f.shape == (4, 32, 19, 9)
    padded = net.resized_filters(params["g_f"], torch.tensor([[19, 9], [7, 25]]))
    assert padded.shape == (8, 32, net.max_filter, net.max_filter)
    feats = torch.randn(2, 3, 64, 41, 41)
    fs = torch.tensor([[19, 9], [7, 25]])
    r, g = net.heads(feats, params, fs)
    assert r.shape == (2, 3, 41, 41) and g.shape == (2, 3, 4, 41, 41)
    r1, g1 = net.heads(feats[1:], {k: v[1:] for k, v in params.items()}, fs[1:])
    assert torch.allclose(r1, r[1:], atol=1e-4) and torch.allclose(g1, g[1:], atol=1e-4)


def test_box_deltas_round_trip_and_label_peak():
    box = torch.tensor([[[70.0, 90.0, 30.0, 50.0]]])
    anchor = torch.tensor([[[32.0, 40.0]]])
    d = encode_deltas(box, anchor, 161)
    back = decode_deltas(d, anchor, 161)
    assert torch.allclose(back[0, 0, :, 10, 10], box[0, 0], atol=1e-4)
    label = gaussian_label(torch.tensor([[80.0, 80.0, 32.0, 32.0]]), 161)
    assert label.shape == (1, 41, 41) and float(label[0, 20, 20]) == pytest.approx(1.0)
    assert float(label[0, 20, 30]) < 0.01


def _loss_and_grads(net, feats, params, fs, boxes, anchors):
    leaf = {k: v.detach().requires_grad_(True) for k, v in params.items()}
    loss = tracking_loss(net, feats, leaf, fs, boxes, anchors)
    grads = torch.autograd.grad(loss.sum(), list(leaf.values()))
    return loss.detach(), {k: g for k, g in zip(leaf, grads)}


def test_initialiser_step_and_lstm_steps_lower_the_loss_on_a_real_crop():
    """The shipped model on a CamVid *val* frame (never trained on): one meta-initialiser step, then
    each learned-optimiser step, lowers the tracking loss of a fixed sample."""
    from pathlib import Path

    import cv2
    import numpy as np

    from effdl_ros.resources import shared_data_dir
    from effdl_ros.tracking.tracker import RoamTracker, load_model
    model_path = Path(__file__).resolve().parents[1] / "models" / "roam_r18l1.pt"
    val = sorted((shared_data_dir() / "segmentation" / "camvid" / "val").glob("*.jpg"))
    if not val or not model_path.is_file():
        pytest.skip("../shared/data CamVid val or models/roam_r18l1.pt absent")
    torch.set_num_threads(1)
    m = load_model(model_path)
    tr = RoamTracker(m)
    img = cv2.cvtColor(cv2.imread(str(val[0])), cv2.COLOR_BGR2RGB)
    side = (40 * 60) ** 0.5 * 5
    feats = tr._features([tr._crop(img, np.array([220.0, 180.0]), side, 161)]).unsqueeze(0)
    k = 161 / side
    boxes = torch.tensor([[[80.0, 80.0, 40 * k, 60 * k]]], dtype=torch.float32)
    anchors = boxes[..., 2:].clone()
    fs = tr._fsize(anchors[0, 0].tolist())
    theta = m.init.initial(1)
    l0, g0 = _loss_and_grads(m.net, feats, theta, fs, boxes, anchors)
    theta = m.init.first_step(theta, g0)
    l1, g1 = _loss_and_grads(m.net, feats, theta, fs, boxes, anchors)
    assert float(l1) < float(l0)
    lr0 = {n: m.init.log_lr[n].exp() for n in m.init.names}
    state = m.optimizer.init_state(theta, lr0)
    with torch.no_grad():
        theta2, state = m.optimizer.step(theta, g1, l1, state, lr0)
    l2, _ = _loss_and_grads(m.net, feats, theta2, fs, boxes, anchors)
    assert float(l2) < float(l1)
    assert any(not torch.equal(theta2[n], theta[n]) for n in theta)


def test_lstm_step_is_lambda0_times_gradient_at_start():
    """With its zero-initialised output layer the optimiser starts exactly at theta - lambda_0 * g."""
    p = {"w": torch.randn(2, 3, 4)}
    g = {"w": torch.randn(2, 3, 4)}
    lr0 = {"w": torch.full((3, 4), 1e-3)}
    opt = LSTMOptimizer()
    new, _ = opt.step(p, g, torch.tensor([0.5, 0.7]), opt.init_state(p, lr0), lr0)
    assert torch.allclose(new["w"], p["w"] - 1e-3 * g["w"], atol=1e-7)


def test_fft_correlation_equals_direct_convolution():
    import torch.nn.functional as F

    from effdl_ros.tracking.roam import xcorr_same

    torch.manual_seed(0)
    x = torch.randn(6, 8, 21, 25)
    for kh, kw in ((3, 3), (9, 5), (7, 13)):
        w = torch.randn(4, 8, kh, kw)
        ref = F.conv2d(x, w, padding=(kh // 2, kw // 2))
        assert torch.allclose(xcorr_same(x, w), ref, atol=1e-3 * float(ref.abs().max()))


# ------------------------------------------------------------------ loss and recovery (issue 16)

def _shipped_model():
    from pathlib import Path

    from effdl_ros.tracking.tracker import load_model

    path = Path(__file__).resolve().parents[1] / "models" / "roam_hc16.pt"
    if not path.is_file():
        pytest.skip("models/roam_hc16.pt absent")
    return load_model(path)


def vanishing_clip(n_before=8, n_absent=10, n_after=14):
    """A red-and-white target on a smooth background moves right, vanishes, and comes back 100 px
    away (outside the normal search window, side 5 x 24 = 120 px): frames, boxes (None while absent)."""
    import numpy as np

    rng = np.random.default_rng(0)
    h, w = 160, 240
    yy, xx = np.mgrid[0:h, 0:w]
    bg = (110 + 20 * np.sin(xx / 17.0) * np.cos(yy / 23.0)).astype(np.float32)
    bg = np.stack([bg, bg * 1.05, bg * 0.9], -1) + rng.normal(0, 2, (h, w, 3))
    bg = bg.clip(0, 255).astype(np.uint8)
    target = np.zeros((24, 24, 3), np.uint8)
    target[:] = (210, 30, 40)
    target[8:16, :] = (250, 250, 250)
    frames, boxes = [], []
    for i in range(n_before + n_absent + n_after):
        img = bg.copy()
        if i < n_before:
            x, y = 30 + 2 * i, 60
        elif i < n_before + n_absent:
            x = None
        else:
            x, y = 150 + (i - n_before - n_absent), 70
        if x is not None:
            img[y:y + 24, x:x + 24] = target
            boxes.append(np.array([x, y, 24, 24], dtype=np.float64))
        else:
            boxes.append(None)
        frames.append(img)
    return frames, boxes


def test_lost_target_widens_the_search_and_is_reacquired():
    from effdl_ros.tracking import metrics
    from effdl_ros.tracking.tracker import LOST, SEARCHING, TRACKING, RoamTracker, TrackerSettings

    torch.set_num_threads(1)
    frames, boxes = vanishing_clip()
    tr = RoamTracker(_shipped_model(), TrackerSettings())
    tr.init(frames[0], boxes[0])
    results = [tr.update(f) for f in frames[1:]]
    states = [r.state for r in results]
    absent, after = results[7:17], results[17:]
    assert all(s == TRACKING for s in states[:7]), states
    assert SEARCHING in [r.state for r in absent] and absent[-1].state == LOST and absent[-1].lost
    zooms = [r.search_zoom for r in absent]
    assert zooms[:4] == sorted(zooms[:4]) and max(zooms) > 2.0  # the window widens frame after frame
    assert any(r.recovered for r in after)
    assert after[-1].state == TRACKING and not after[-1].lost
    assert metrics.iou(after[-1].box, boxes[-1])[0] > 0.4       # found again, 100 px from where it vanished
