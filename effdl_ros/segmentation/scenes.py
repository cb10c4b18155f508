"""Procedurally rendered street scenes: the labelled SOURCE domains for MADAN.

MADAN (Zhao et al., NeurIPS 2019) adapts from several labelled synthetic sources (GTA, SYNTHIA) to a
real target. Those datasets are not available here, so each source is a renderer: a forward-looking
camera over a street (sky, road, pavements, building facades, trees, poles with signs, fences, cars,
pedestrians, cyclists) drawn far-to-near with the painter's algorithm, so every pixel's label is
exact. Labels use CamVid's 11 classes (effdl_ros.data.camvid.CLASSES), 11 = unlabelled.

Styles differ in textures, colours, lighting and geometry, so that they are distinct domains:
``sunny`` (flat toon colours, blue sky, wide low street) and ``dusk`` (noisy textures, orange-purple
sky, dark lighting, narrow street of tall brick buildings with lit windows, higher horizon).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Tuple

import numpy as np

from effdl_ros.errors import ConfigError

SKY, BUILDING, POLE, ROAD, PAVEMENT, TREE, SIGN, FENCE, CAR, PEDESTRIAN, BICYCLIST = range(11)


@dataclass(frozen=True)
class Style:
    """Everything that makes one source domain look different from another."""
    name: str
    horizon: Tuple[float, float]          # horizon row as a fraction of the height (min, max)
    road_half_width: Tuple[float, float]  # metres
    pavement_width: Tuple[float, float]   # metres
    building_height: Tuple[float, float]  # metres
    sky_top: Tuple[int, int, int]
    sky_bottom: Tuple[int, int, int]
    road: Tuple[int, int, int]
    pavement: Tuple[int, int, int]
    facades: Tuple[Tuple[int, int, int], ...]
    window: Tuple[int, int, int]
    foliage: Tuple[int, int, int]
    car_colours: Tuple[Tuple[int, int, int], ...]
    light: float        # global brightness multiplier
    texture: float      # amplitude of multiplicative grain + blotch noise over the frame (0 = flat toon colours)
    colour_jitter: int  # per-scene random offset of every colour
    n_cars: Tuple[int, int]
    n_people: Tuple[int, int]
    tree_prob: float
    bare_tree_prob: float  # share of trees without leaves
    fence_prob: float
    vignette: float


STYLES: Dict[str, Style] = {
    "sunny": Style(
        name="sunny", horizon=(0.42, 0.52), road_half_width=(4.0, 6.0), pavement_width=(2.0, 4.0),
        building_height=(5.0, 12.0), sky_top=(70, 140, 235), sky_bottom=(170, 210, 250),
        road=(150, 150, 160), pavement=(215, 200, 170),
        facades=((240, 200, 150), (250, 240, 200), (200, 230, 240), (240, 170, 170), (220, 220, 220)),
        window=(90, 140, 200), foliage=(60, 170, 60),
        car_colours=((220, 30, 30), (30, 60, 220), (250, 250, 250), (250, 200, 30), (30, 30, 30)),
        light=1.0, texture=0.0, colour_jitter=15, n_cars=(1, 4), n_people=(0, 3), tree_prob=0.8, bare_tree_prob=0.4,
        fence_prob=0.3, vignette=0.0),
    "dusk": Style(
        name="dusk", horizon=(0.33, 0.43), road_half_width=(3.0, 4.5), pavement_width=(1.5, 2.5),
        building_height=(12.0, 30.0), sky_top=(60, 40, 110), sky_bottom=(250, 140, 70),
        road=(55, 50, 60), pavement=(110, 100, 95),
        facades=((150, 70, 50), (120, 90, 70), (90, 80, 85), (170, 110, 80)),
        window=(255, 210, 110), foliage=(30, 80, 45),
        car_colours=((120, 20, 20), (40, 40, 60), (180, 180, 170), (20, 20, 20), (70, 100, 60)),
        light=0.8, texture=0.18, colour_jitter=20, n_cars=(3, 7), n_people=(1, 5), tree_prob=0.5, bare_tree_prob=0.6,
        fence_prob=0.5, vignette=0.5),
}


def style(name: str) -> Style:
    if name not in STYLES:
        raise ConfigError(f"unknown scene style {name!r}; known styles: {', '.join(sorted(STYLES))}")
    return STYLES[name]


class _Canvas:
    """An RGB image and its label map, painted together so the labels are exact."""

    def __init__(self, h: int, w: int, st: Style, rng: np.random.Generator):
        self.h, self.w, self.st, self.rng = h, w, st, rng
        self.img = np.zeros((h, w, 3), np.float32)
        self.lab = np.zeros((h, w), np.uint8)

    def colour(self, base) -> np.ndarray:
        j = self.st.colour_jitter
        return np.clip(np.asarray(base, np.float32) + self.rng.integers(-j, j + 1, 3), 0, 255)

    def fill_poly(self, pts, colour, label: int) -> None:
        import cv2

        pts = np.round(np.asarray(pts, np.float64) * 8).astype(np.int32).reshape(-1, 1, 2)
        cv2.fillPoly(self.img, [pts], tuple(float(c) for c in colour), cv2.LINE_8, 3)
        cv2.fillPoly(self.lab, [pts], int(label), cv2.LINE_8, 3)

    def fill_ellipse(self, centre, axes, colour, label: int) -> None:
        import cv2

        c = (int(round(centre[0] * 8)), int(round(centre[1] * 8)))
        a = (max(1, int(round(axes[0] * 8))), max(1, int(round(axes[1] * 8))))
        cv2.ellipse(self.img, c, a, 0, 0, 360, tuple(float(v) for v in colour), -1, cv2.LINE_8, 3)
        cv2.ellipse(self.lab, c, a, 0, 0, 360, int(label), -1, cv2.LINE_8, 3)


class _Camera:
    """Pinhole camera at height cam_h looking along +Z; world Y is up, X to the right."""

    def __init__(self, h: int, w: int, horizon: float, cx: float, focal: float, cam_h: float):
        self.h, self.w, self.horizon, self.cx, self.f, self.cam_h = h, w, horizon, cx, focal, cam_h

    def project(self, x: float, y: float, z: float) -> Tuple[float, float]:
        return self.cx + self.f * x / z, self.horizon + self.f * (self.cam_h - y) / z


def render_scene(st: Style, rng: np.random.Generator, height: int = 120, width: int = 160,
                 supersample: int = 2) -> Tuple[np.ndarray, np.ndarray]:
    """One scene: RGB uint8 [H, W, 3] and exact class ids uint8 [H, W] (0..10)."""
    import cv2

    h, w = height * supersample, width * supersample
    cv = _Canvas(h, w, st, rng)
    horizon = rng.uniform(*st.horizon) * h
    cam = _Camera(h, w, horizon, w * rng.uniform(0.42, 0.58), focal=w * rng.uniform(0.55, 0.8),
                  cam_h=rng.uniform(1.3, 1.8))
    road_hw = rng.uniform(*st.road_half_width)
    pave_w = rng.uniform(*st.pavement_width)
    z_near, z_far = 1.0, 400.0

    # Sky: vertical gradient (labels everywhere else are overwritten by later surfaces).
    top, bottom = cv.colour(st.sky_top), cv.colour(st.sky_bottom)
    t = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
    cv.img[:] = top[None, None] * (1 - t) + bottom[None, None] * t
    cv.lab[:] = SKY
    if st.name == "sunny" and rng.random() < 0.6:  # a few flat clouds: still sky
        for _ in range(rng.integers(1, 4)):
            cv.fill_ellipse((rng.uniform(0, w), rng.uniform(0, horizon * 0.6)),
                            (rng.uniform(15, 45) * supersample, rng.uniform(4, 10) * supersample),
                            (245, 245, 250), SKY)

    # Ground: pavements then road, as trapezoids to the vanishing point.
    def strip(x0, x1, colour, label):
        pts = [cam.project(x0, 0, z_near), cam.project(x1, 0, z_near), cam.project(x1, 0, z_far),
               cam.project(x0, 0, z_far)]
        cv.fill_poly(pts, colour, label)

    ground = cv.colour(st.pavement)
    strip(-road_hw - pave_w - 40, road_hw + pave_w + 40, ground * 0.9, PAVEMENT)
    strip(-road_hw, road_hw, cv.colour(st.road), ROAD)
    lane = (240, 240, 230) if st.name == "sunny" else (200, 170, 90)
    for z in np.arange(rng.uniform(2, 5), 120, 6.0):  # dashed centre line, still road
        x = -0.08
        cv.fill_poly([cam.project(x, 0, z), cam.project(-x, 0, z), cam.project(-x, 0, z + 2.5),
                      cam.project(x, 0, z + 2.5)], lane, ROAD)

    # Objects gathered with their depth, then drawn far to near.
    items: List[Tuple[float, callable]] = []
    edge = road_hw + pave_w
    for side in (-1, 1):
        z = rng.uniform(2.0, 6.0)
        while z < 160:
            length = rng.uniform(6, 20)
            hb = rng.uniform(*st.building_height)
            setback = rng.uniform(0.0, 1.5)
            fac = cv.colour(st.facades[rng.integers(len(st.facades))])
            items.append((z + length, _building(cv, cam, side, edge + setback, z, z + length, hb, fac)))
            z += length + (rng.uniform(0, 4) if rng.random() < 0.3 else 0.0)
        for z in np.sort(rng.uniform(3, 60, rng.integers(1, 4))):
            items.append((z, _pole(cv, cam, side * (road_hw + 0.4), z, rng)))
        if rng.random() < st.tree_prob:
            for z in np.sort(rng.uniform(4, 80, rng.integers(2, 8))):
                items.append((z, _tree(cv, cam, side * (road_hw + pave_w * 0.5), z, rng)))
        if rng.random() < st.fence_prob:
            z0 = rng.uniform(3, 20)
            items.append((z0 + 0.01, _fence(cv, cam, side * (edge - 0.2), z0, z0 + rng.uniform(5, 25), rng)))
    for _ in range(rng.integers(st.n_cars[0], st.n_cars[1] + 1)):
        lane_x = rng.choice([-road_hw * 0.5, road_hw * 0.5]) + rng.uniform(-0.5, 0.5)
        z = rng.uniform(4, 60)
        items.append((z, _car(cv, cam, lane_x, z, cv.colour(st.car_colours[rng.integers(len(st.car_colours))]))))
    for _ in range(rng.integers(st.n_people[0], st.n_people[1] + 1)):
        side = rng.choice([-1, 1])
        z = rng.uniform(3, 40)
        if rng.random() < 0.3:
            items.append((z, _cyclist(cv, cam, side * (road_hw - 0.8), z, rng)))
        else:
            items.append((z, _pedestrian(cv, cam, side * (road_hw + rng.uniform(0.3, pave_w)), z, rng)))
    for _, draw in sorted(items, key=lambda it: -it[0]):
        draw()

    img = cv.img * st.light
    if st.texture > 0:  # grain plus blotches: surfaces stop being flat colours
        grain = rng.normal(0.0, st.texture, (h, w)).astype(np.float32)
        blotch = cv2.resize(rng.normal(0.0, st.texture, (h // 16, w // 16)).astype(np.float32), (w, h))
        img *= (1.0 + grain + blotch)[..., None]
    if st.vignette > 0:
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        r2 = ((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2
        img *= (1.0 - st.vignette * 0.35 * r2)[..., None]
    img = np.clip(img, 0, 255).astype(np.uint8)
    img = cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA)
    lab = cv.lab[supersample // 2::supersample, supersample // 2::supersample].copy()
    return img, lab


def _building(cv, cam, side, x, z0, z1, hb, colour):
    def draw():
        # Facade plane parallel to the street, and the front face towards the camera.
        far_x = x + 12.0
        face = [cam.project(side * x, 0, z0), cam.project(side * x, hb, z0), cam.project(side * x, hb, z1),
                cam.project(side * x, 0, z1)]
        front = [cam.project(side * x, 0, z0), cam.project(side * far_x, 0, z0), cam.project(side * far_x, hb, z0),
                 cam.project(side * x, hb, z0)]
        cv.fill_poly(front, colour * 0.75, BUILDING)
        cv.fill_poly(face, colour, BUILDING)
        st, rng = cv.st, cv.rng
        win = np.asarray(st.window, np.float32)
        for fy in np.arange(1.0, hb - 1.0, 3.0):
            for fz in np.arange(z0 + 1.0, z1 - 1.0, 2.5):
                c = win if (st.name == "sunny" or rng.random() < 0.6) else colour * 0.4
                cv.fill_poly([cam.project(side * x, fy, fz), cam.project(side * x, fy + 1.5, fz),
                              cam.project(side * x, fy + 1.5, fz + 1.2), cam.project(side * x, fy, fz + 1.2)],
                             c, BUILDING)
    return draw


def _pole(cv, cam, x, z, rng):
    def draw():
        hp = rng.uniform(3.5, 6.0)
        (xb, yb), (_, yt) = cam.project(x, 0, z), cam.project(x, hp, z)
        half = max(0.6, 0.06 * cam.f / z)
        colour = (90, 90, 90) if cv.st.name == "sunny" else (40, 40, 45)
        cv.fill_poly([(xb - half, yb), (xb + half, yb), (xb + half, yt), (xb - half, yt)], colour, POLE)
        if rng.random() < 0.7:
            s = 0.35 * cam.f / z
            c = [(220, 30, 30), (30, 80, 200), (250, 210, 20)][rng.integers(3)]
            if rng.random() < 0.5:
                cv.fill_ellipse((xb, yt + s), (s, s), c, SIGN)
            else:
                cv.fill_poly([(xb - s, yt), (xb + s, yt), (xb + s, yt + 1.4 * s), (xb - s, yt + 1.4 * s)], c, SIGN)
    return draw


def _tree(cv, cam, x, z, rng):
    """A street tree: leafy (clustered ellipses) or bare (a branch lattice over whatever is behind).

    CamVid's streets have many tall, leafless trees whose crowns are labelled Tree as one region
    (sky shows between the branches); small round bushes alone taught the segmenter nothing of them.
    """
    def draw():
        import cv2

        ht = rng.uniform(5, 12)
        (xb, yb), (_, yt) = cam.project(x, 0, z), cam.project(x, ht, z)
        half = max(0.6, 0.12 * cam.f / z)
        bark = np.asarray((90, 60, 30) if cv.st.name == "sunny" else (45, 35, 30), np.float32)
        cv.fill_poly([(xb - half, yb), (xb + half, yb), (xb + half, yt), (xb - half, yt)], bark, TREE)
        r = rng.uniform(2.0, 4.5) * cam.f / z
        if rng.random() >= cv.st.bare_tree_prob:
            base = cv.colour(cv.st.foliage)
            for _ in range(rng.integers(3, 7)):
                cv.fill_ellipse((xb + rng.uniform(-0.6, 0.6) * r, yt - rng.uniform(0.0, 0.6) * r),
                                (r * rng.uniform(0.6, 1.1), r * rng.uniform(0.5, 0.9)),
                                base * rng.uniform(0.75, 1.15), TREE)
            return
        centre = (xb, yt - 0.6 * r)
        axes = (r * rng.uniform(0.9, 1.4), r * rng.uniform(0.8, 1.2))
        crown = np.zeros(cv.lab.shape, np.uint8)
        cv2.ellipse(crown, (int(centre[0] * 8), int(centre[1] * 8)),
                    (max(1, int(axes[0] * 8)), max(1, int(axes[1] * 8))), 0, 0, 360, 1, -1, cv2.LINE_8, 3)
        inside = crown.astype(bool)
        cv.lab[inside] = TREE
        # The fine twigs, too thin to draw one by one: a speckle of bark colour over the crown.
        twigs = (rng.random(int(inside.sum())) < rng.uniform(0.25, 0.55))[:, None]
        cv.img[inside] = np.where(twigs, bark * rng.uniform(0.6, 1.0), cv.img[inside] * 0.85)
        stack = [(xb, yt, -np.pi / 2, 0.55 * r, max(1, int(1.5 * half)), 0)]
        while stack:  # a binary branching lattice from the trunk top
            bx, by, ang, length, thick, depth = stack.pop()
            ex, ey = bx + length * np.cos(ang), by + length * np.sin(ang)
            cv2.line(cv.img, (int(bx * 8), int(by * 8)), (int(ex * 8), int(ey * 8)), tuple(float(c) for c in bark),
                     thick, cv2.LINE_AA, 3)
            if depth < 6:
                for turn in (-1, 1):
                    stack.append((ex, ey, ang + turn * rng.uniform(0.25, 0.7), length * rng.uniform(0.6, 0.8),
                                  max(1, thick - 1), depth + 1))
    return draw


def _fence(cv, cam, x, z0, z1, rng):
    def draw():
        hf = rng.uniform(0.8, 1.5)
        colour = cv.colour((150, 110, 70) if cv.st.name == "sunny" else (70, 70, 75))
        for z in np.arange(z0, z1, 0.6):  # pickets
            cv.fill_poly([cam.project(x, 0, z), cam.project(x, hf, z), cam.project(x, hf, z + 0.3),
                          cam.project(x, 0, z + 0.3)], colour, FENCE)
        cv.fill_poly([cam.project(x, hf * 0.6, z0), cam.project(x, hf * 0.75, z0), cam.project(x, hf * 0.75, z1),
                      cam.project(x, hf * 0.6, z1)], colour * 0.85, FENCE)
    return draw


def _car(cv, cam, x, z, colour):
    def draw():
        wc, hc = 0.9, 1.4
        (x0, y0), (x1, y1) = cam.project(x - wc, 0.3, z), cam.project(x + wc, hc * 0.55, z)
        cv.fill_poly([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], colour, CAR)
        (cx0, cy0), (cx1, cy1) = cam.project(x - wc * 0.7, hc * 0.55, z), cam.project(x + wc * 0.7, hc, z)
        cv.fill_poly([(x0 + (cx0 - x0) * 0.5, cy0), (x1 - (x1 - cx1) * 0.5, cy0), (cx1, cy1), (cx0, cy1)],
                     colour * 0.8, CAR)
        glass = (40, 50, 70) if cv.st.name == "sunny" else (20, 20, 30)
        cv.fill_poly([(cx0 + 1, cy0 - 1), (cx1 - 1, cy0 - 1), (cx1 - 1, cy1 + 1), (cx0 + 1, cy1 + 1)], glass, CAR)
        r = 0.35 * cam.f / z
        for wx in (x - wc * 0.7, x + wc * 0.7):
            cx, cy = cam.project(wx, 0.3, z)
            cv.fill_ellipse((cx, cy), (r * 0.8, r), (15, 15, 15), CAR)
        lamp = (255, 60, 40) if cv.st.name == "dusk" else (200, 40, 40)
        for lx in (x - wc * 0.8, x + wc * 0.8):
            cx, cy = cam.project(lx, hc * 0.45, z)
            cv.fill_ellipse((cx, cy), (0.12 * cam.f / z, 0.08 * cam.f / z), lamp, CAR)
    return draw


def _person(cv, cam, x, z, rng, label, y0=0.0):
    hp = rng.uniform(1.55, 1.9)
    s = cam.f / z
    (xb, yb) = cam.project(x, y0, z)
    (_, yt) = cam.project(x, y0 + hp, z)
    shirt = cv.colour([(200, 40, 40), (40, 80, 200), (230, 230, 230), (30, 30, 30), (60, 140, 60)][rng.integers(5)])
    cv.fill_poly([(xb - 0.12 * s, yb), (xb - 0.02 * s, yb), (xb - 0.02 * s, yb - 0.9 * s * hp / 1.75),
                  (xb - 0.14 * s, yb - 0.9 * s * hp / 1.75)], (40, 40, 60), label)
    cv.fill_poly([(xb + 0.02 * s, yb), (xb + 0.12 * s, yb), (xb + 0.14 * s, yb - 0.9 * s * hp / 1.75),
                  (xb + 0.02 * s, yb - 0.9 * s * hp / 1.75)], (40, 40, 60), label)
    cv.fill_ellipse((xb, yt + 0.55 * s), (0.22 * s, 0.38 * s), shirt, label)
    cv.fill_ellipse((xb, yt + 0.12 * s), (0.11 * s, 0.13 * s), (225, 180, 150), label)


def _pedestrian(cv, cam, x, z, rng):
    def draw():
        _person(cv, cam, x, z, rng, PEDESTRIAN)
    return draw


def _cyclist(cv, cam, x, z, rng):
    def draw():
        s = cam.f / z
        for dz in (-0.5, 0.5):  # wheels seen from the side of the road, foreshortened
            cx, cy = cam.project(x, 0.35, z + dz)
            cv.fill_ellipse((cx, cy), (0.12 * s, 0.35 * s), (20, 20, 20), BICYCLIST)
        _person(cv, cam, x, z, rng, BICYCLIST, y0=0.5)
    return draw


def _render_range(args) -> Tuple[np.ndarray, np.ndarray]:
    name, seed, start, stop, height, width = args
    st = style(name)
    imgs = np.zeros((stop - start, height, width, 3), np.uint8)
    labs = np.zeros((stop - start, height, width), np.uint8)
    for k, i in enumerate(range(start, stop)):
        rng = np.random.default_rng([seed, sum(map(ord, name)), i])
        imgs[k], labs[k] = render_scene(st, rng, height, width)
    return imgs, labs


def render_domain(name: str, n: int, *, seed: int = 0, height: int = 120, width: int = 160,
                  workers: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """n scenes of one style: images uint8 [n, H, W, 3], labels uint8 [n, H, W].

    Scene i depends only on (seed, name, i), so the result is the same for any number of worker
    processes (workers=0: in this process).
    """
    style(name)  # validate before spawning anything
    if workers <= 1 or n < 64:
        return _render_range((name, seed, 0, n, height, width))
    import multiprocessing as mp

    step = -(-n // workers)
    chunks = [(name, seed, a, min(n, a + step), height, width) for a in range(0, n, step)]
    with mp.get_context("spawn").Pool(len(chunks)) as pool:
        parts = pool.map(_render_range, chunks)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
