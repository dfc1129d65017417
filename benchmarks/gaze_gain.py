"""How far gaze correction moves real eyes, against how far a real eye's iris moves.

For each angle asked (degrees, positive = up) the gaze model redirects both eyes of every face
in a set of real photos that can be reached offline, and `thesis_jax.deepwarp.gain.iris_shift`
measures how far each iris moved (eye widths, perpendicular to the corner line). The gain is
that shift over the shift of a real eye turned by the same angle from straight ahead
(`gain.REAL_EYE`: 10.5 mm from the centre of rotation to the iris a camera sees, 30 mm between
the corners: 0.35 sin(angle) eye widths; against the cruder 12 mm eyeball surface, gains are
0.875 of these). The same is done for the renderer's held-out eyes (their true shift
is known, so the renderer's own geometry gets a gain too), and the renderer's geometry is
listed beside typical adult values.

Photos: skimage's astronaut and the BSDS500 train/val photos (../shared/data) in which
MediaPipe finds open eyes at least 16 px wide (`BSDS_FACES`); each photo is scaled
up (bicubic) so that its smallest measured eye is 40 px wide, then MediaPipe runs again.
Writes `gain.json` (every eye's gains), `gain.png` (gain by angle) and `gain_faces.png` (eyes
at -15, 0, +15 degrees).

    .venv/bin/python benchmarks/gaze_gain.py
    .venv/bin/python benchmarks/gaze_gain.py --checkpoint=runs/deepwarp/eyes_varied --out=runs/gain
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import time

import numpy as np

from experiments import startup

BSDS_FACES = ("181018", "187083", "189003", "198004", "260081", "302003", "189080", "302008")
"""BSDS500 train/val photos where MediaPipe finds a face whose eyes are at least 16 px wide and
both crops show an open eye (left out: 239096, a profile with downcast eyes whose second "eye"
crop is the mouth, and 365025, hair across a squinting eye)."""
MIN_EYE = 16
SCALE_TO = 40
FIRST_RENDERED = 1_000_000  # the renderer's held-out identities (deepwarp.pairs)


def real_photos(bsds_dir: str, names: tuple[str, ...]) -> list[tuple[str, np.ndarray]]:
    import skimage.data
    from PIL import Image

    photos = [("astronaut", skimage.data.astronaut())]
    for name in names:
        found = glob.glob(os.path.join(bsds_dir, "images", "*", f"{name}.jpg"))
        if not found:
            raise SystemExit(f"BSDS500 photo {name}.jpg not found under {bsds_dir}/images")
        photos.append((name, np.asarray(Image.open(found[0]).convert("RGB"))))
    return photos


def eyes_of(photo: np.ndarray, mesh) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The photo scaled so its smallest measured eye is SCALE_TO px wide, its eyes' landmarks
    and mirrored flags (eyes narrower than MIN_EYE before scaling are left out)."""
    from PIL import Image

    from thesis_jax.deepwarp import gaze

    def eyes_and_widths(image: np.ndarray):
        landmarks, mirrored = gaze.mesh_to_eyes(mesh(image))
        return landmarks, mirrored, np.linalg.norm(landmarks[:, 0] - landmarks[:, 3], axis=-1)

    landmarks, mirrored, widths = eyes_and_widths(photo)
    keep = widths >= MIN_EYE
    if not keep.any():
        return photo, landmarks[keep], mirrored[keep]
    factor = SCALE_TO / widths[keep].min()
    if factor > 1:
        size = (round(photo.shape[1] * factor), round(photo.shape[0] * factor))
        photo = np.asarray(Image.fromarray(photo).resize(size, Image.Resampling.BICUBIC))
        landmarks, mirrored, widths = eyes_and_widths(photo)
        keep = widths >= MIN_EYE * factor
    return photo, landmarks[keep], mirrored[keep]


KNOWN_SHIFT = 0.09
"""The synthetic iris shift of the measurement check (eye widths; a real eye turned ~15 deg)."""
SMALL_SHIFTS = (0.03, 0.06)
"""Smaller known shifts, checked by template matching only: a real eye turned 5 and 10 deg."""
STILL_LID_SHIFTS = (-0.06, 0.06)
"""Known shifts of the iris alone, under lids that stay (`move_iris(lids_still=True)`): a model
that moves the iris further than the lids must not be measured by its lids."""


def measure_known_shift(photo: np.ndarray, landmarks: np.ndarray, mesh) -> dict[str, list]:
    """Moves every eye's iris by KNOWN_SHIFT (`gain.move_iris`) and asks `gain.iris_shift` and
    MediaPipe's iris landmark (the face mesh run again on the moved photo) how far it moved:
    the share of the known shift each finds, per eye; and `gain.iris_shift`'s share of each of
    SMALL_SHIFTS (keys "template <shift>"), where the smallest redirections' gains are read,
    and of STILL_LID_SHIFTS with the lids kept still (keys "lids still <shift>")."""
    from thesis_jax.deepwarp import gain, gaze

    found: dict[str, list] = {"template": [], "mediapipe": []}
    found |= {f"template {shift:g}": [] for shift in SMALL_SHIFTS}
    found |= {f"lids still {shift:g}": [] for shift in STILL_LID_SHIFTS}
    for points in landmarks:
        for shift in SMALL_SHIFTS:
            moved = gain.move_iris(photo, points, shift)
            found[f"template {shift:g}"].append(gain.iris_shift(photo, moved, points).up / shift)
        for shift in STILL_LID_SHIFTS:
            moved = gain.move_iris(photo, points, shift, lids_still=True)
            found[f"lids still {shift:g}"].append(gain.iris_shift(photo, moved, points).up / shift)
        moved = gain.move_iris(photo, points, KNOWN_SHIFT)
        found["template"].append(gain.iris_shift(photo, moved, points).up / KNOWN_SHIFT)
        again, _ = gaze.mesh_to_eyes(mesh(np.clip(moved, 0, 255).round().astype(np.uint8)))
        if len(again) == 0:
            continue
        match = again[np.argmin(np.linalg.norm(again[:, 6] - points[6], axis=-1))]
        _, _, up, width = gain.eye_frame(points)
        before = points[6] - 0.5 * (points[0] + points[3])
        after = match[6] - 0.5 * (match[0] + match[3])
        found["mediapipe"].append(float((after - before) @ up) / width / KNOWN_SHIFT)
    return found


def iris_in_opening(landmarks: np.ndarray) -> dict[str, np.ndarray]:
    """Per eye (E, 7, 2): how high the iris centre sits above the corners' midpoint, and how far
    the upper and lower lid points (1/3 and 2/3 of the way) are above and below it, in eye
    widths."""
    from thesis_jax.deepwarp import gain

    rows = []
    for points in landmarks:
        origin, _, up, width = gain.eye_frame(points)
        height = (points - origin) @ up / width
        rows.append(
            (height[6], height[[1, 2]].mean() - height[6], height[6] - height[[4, 5]].mean())
        )
    iris, upper, lower = np.asarray(rows, np.float64).T
    return {"iris": iris, "upper": upper, "lower": lower}


def renderer_geometry(real_landmarks: np.ndarray, count: int = 2000) -> list[dict]:
    """The renderer's eye geometry ("varied" identities, units of the eye width) beside
    typical adult values (a 30 mm wide, 9-11 mm high opening), and where the iris sits in the
    opening beside the real photos' eyes (`real_landmarks`, MediaPipe's)."""
    from thesis_jax.data import eyes
    from thesis_jax.data.eyes import appearance

    ids = np.arange(FIRST_RENDERED, FIRST_RENDERED + count)
    looks = appearance.vary_identities(appearance.identity_params(ids), ids)
    depth = np.sqrt(looks["ball_radius"] ** 2 - looks["iris_radius"] ** 2)
    pupil = 2 * looks["iris_radius"] * looks["pupil_fraction"]

    def spread(values) -> str:
        low, high = np.percentile(values, [5, 95])
        return f"{low:.2f}-{high:.2f}"

    few = ids[:200]
    _, looking_ahead = eyes.render_eye(few, 0.0, nuisance=few, roll=0.0, appearance="varied")
    rendered, real = iris_in_opening(looking_ahead), iris_in_opening(real_landmarks)
    placement = [
        {"what": f"{what} / eye width", "renderer": spread(rendered[key]),
         "real": f"{spread(real[key])} (the photos' eyes, MediaPipe)"}
        for key, what in (("iris", "iris centre above the corner line, pitch 0"),
                          ("upper", "upper lid points above the iris centre"),
                          ("lower", "lower lid points below the iris centre"))
    ]  # fmt: skip
    return [
        *placement,
        {"what": "iris diameter / eye width", "renderer": spread(2 * looks["iris_radius"]),
         "real": "0.37-0.42 (11-12.5 mm)"},
        {"what": "pupil diameter / eye width (before the light's scaling)",
         "renderer": spread(pupil), "real": "0.10-0.17 (3-5 mm indoors; 2-8 mm)"},
        {"what": "opening height / eye width", "renderer":
         spread(looks["upper_height"] + looks["lower_height"]), "real": "0.30-0.37 (9-11 mm)"},
        {"what": "iris travel / eye width per sin(pitch)", "renderer": spread(depth),
         "real": "0.33-0.37 (the iris seen 10-11 mm from the centre of rotation)"},
        {"what": "upper lid travel / iris travel", "renderer":
         spread(looks["upper_follow"] * looks["ball_radius"] / depth),
         "real": "about 1 (the upper lid follows vertical gaze)"},
    ]  # fmt: skip


def plot(path: str, angles, rows: dict[str, np.ndarray]) -> None:
    import matplotlib

    from thesis_jax.deepwarp import gain

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    for (label, gains), marker in zip(rows.items(), "osd^", strict=False):
        stats = [gain.summarise(g) for g in gains]
        median, low, high = (np.array([s[key] for s in stats]) for key in ("median", "q25", "q75"))
        ax.plot(angles, median, marker=marker, label=label)
        ax.fill_between(angles, low, high, alpha=0.15)
    ax.axhspan(0.8, 1.2, color="green", alpha=0.08, label="0.8-1.2 of a real eye")
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set_xlabel("redirection asked (degrees, + = up)")
    ax.set_ylabel("iris shift / a real eye's (median, quartiles)")
    ax.set_ylim(0, 1.5)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def face_strips(path: str, shown: list[tuple[np.ndarray, np.ndarray]], redirector, angle):
    """Rows: the eyes of a few photos at -angle, as given, +angle (zoomed crops)."""
    from PIL import Image

    from thesis_jax.core import image_grid, save_png

    tiles = []
    for photo, (landmarks, mirrored) in shown:
        points = landmarks.reshape(-1, 2)
        width = np.linalg.norm(landmarks[0, 0] - landmarks[0, 3])
        x0, y0 = points.min(0) - 0.6 * width
        x1, y1 = points.max(0) + 0.6 * width
        y0, y1 = points[:, 1].mean() - 0.55 * width, points[:, 1].mean() + 0.55 * width
        box = (int(max(x0, 0)), int(max(y0, 0)), int(min(x1, photo.shape[1])),
               int(min(y1, photo.shape[0])))  # fmt: skip
        for a in (-angle, 0.0, angle):
            out = photo if a == 0 else redirector.redirect(photo, landmarks, mirrored, a)
            crop = Image.fromarray(out[box[1] : box[3], box[0] : box[2]])
            scale = 300 / crop.width
            tiles.append(np.asarray(crop.resize((300, round(crop.height * scale)))))
    height = min(t.shape[0] for t in tiles)
    save_png(path, image_grid([t[:height] for t in tiles], ncols=3, pad=4))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default=None, help="default: the shipped model")
    parser.add_argument("--angles", default="-30,-25,-20,-15,-10,10,15,20,25,30")
    parser.add_argument("--rendered", type=int, default=40, help="renderer eyes (0: none)")
    parser.add_argument("--bsds-dir", default="../shared/data/BSDS500")
    parser.add_argument("--photos", type=int, default=len(BSDS_FACES), help="BSDS photos used")
    parser.add_argument("--out", default="runs/gaze/gain", help="folder of the pictures")
    parser.add_argument("--json-out", default=None, help="default: <out>/gain.json")
    args = parser.parse_args()

    from thesis_jax.data.locations import beside_repository
    from thesis_jax.deepwarp import gain, gaze
    from thesis_jax.deepwarp.landmarks import FaceMesh

    angles = [float(a) for a in args.angles.split(",")]
    os.makedirs(args.out, exist_ok=True)
    redirector = gaze.GazeRedirector.load(args.checkpoint)
    started = time.time()
    rows: dict[str, np.ndarray] = {}
    report: dict = {"checkpoint": args.checkpoint or str(gaze.DEFAULT_MODEL), "angles": angles,
                    "geometry": vars(gain.REAL_EYE) | {"min_score": gain.MIN_SCORE}}  # fmt: skip
    if args.rendered:
        ids = range(FIRST_RENDERED, FIRST_RENDERED + args.rendered)
        images, points, truth = gain.rendered_eyes(ids, angles=angles)
        truth_gains = truth / gain.REAL_EYE.shift(np.asarray(angles))[:, None]
        result = gain.redirection_gain(
            redirector, list(images), [p[None] for p in points], [np.zeros(1, bool)] * len(ids),
            angles,
        )  # fmt: skip
        rows["renderer's eyes (truth)"] = truth_gains
        rows["model, rendered eyes"] = result.gains()
        report["rendered"] = {"eyes": len(ids), "truth": truth_gains.tolist(),
                              "gains": rows["model, rendered eyes"].tolist()}  # fmt: skip

    photos = real_photos(beside_repository(args.bsds_dir), BSDS_FACES[: args.photos])
    shown, per_photo, gains, every, real_landmarks = [], {}, [], [], []
    check: dict[str, list] = {}
    with FaceMesh(max_faces=4) as mesh:
        for name, photo in photos:
            photo, landmarks, mirrored = eyes_of(photo, mesh)
            if len(landmarks) == 0:
                print(f"{name}: no face with eyes of {MIN_EYE} px or more; skipped")
                continue
            result = gain.redirection_gain(redirector, [photo], [landmarks], [mirrored], angles)
            real_landmarks.append(landmarks)
            gains.append(result.gains())
            per_photo[name] = {"eye_widths": result.widths.round(1).tolist(),
                               "gains": result.gains(min_score=-1).round(3).tolist(),
                               "scores": result.scores.round(3).tolist()}  # fmt: skip
            every.append(result.gains(min_score=-1))
            if len(shown) < 4 and len(landmarks) >= 2:
                shown.append((photo, (landmarks[:2], mirrored[:2])))
            for kind, values in measure_known_shift(photo, landmarks, mesh).items():
                check.setdefault(kind, []).extend(values)
    rows["model, real photos"] = np.concatenate(gains, axis=1)
    rows["real, every match"] = np.concatenate(every, axis=1)
    report["real"] = per_photo
    report["known_shift_recovered"] = {k: gain.summarise(v) for k, v in check.items()}

    eye = gain.REAL_EYE
    print(
        f"gain = iris shift / a real eye's (iris {eye.rotation_radius_mm:g} mm from the centre "
        f"of rotation, {eye.eye_width_mm:g} mm wide); median [quartiles] (eyes measured)"
    )
    print(f"{'angle':>6}  " + "  ".join(f"{label:>26}" for label in rows))
    summary = []
    for k, angle in enumerate(angles):
        cells, entry = [], {"angle": angle}
        for label, values in rows.items():
            stats = gain.summarise(values[k])
            count = int(np.isfinite(values[k]).sum())
            entry[label] = stats | {"eyes": count}
            cells.append(f"{stats['median']:.2f} [{stats['q25']:.2f}-{stats['q75']:.2f}] ({count})")
        summary.append(entry)
        print(f"{angle:>+6g}  " + "  ".join(f"{c:>26}" for c in cells))
    report["summary"] = summary
    known = report["known_shift_recovered"]
    print(f"\nthe measurement on the real photos' eyes, each iris moved {KNOWN_SHIFT:g} eye widths "
          f"(gain.move_iris): iris_shift finds {known['template']['median']:.2f} of it, "
          f"MediaPipe's iris landmarks on the moved photo {known['mediapipe']['median']:.2f} "
          f"[{known['mediapipe']['q25']:.2f}-{known['mediapipe']['q75']:.2f}]; moved "
          + " and ".join(f"{shift:g}" for shift in SMALL_SHIFTS)
          + " (a real eye turned 5 and 10 degrees), iris_shift finds "
          + " and ".join(f"{known[f'template {shift:g}']['median']:.2f}"
                         for shift in SMALL_SHIFTS)
          + "; the iris alone moved "
          + " and ".join(f"{shift:+g}" for shift in STILL_LID_SHIFTS)
          + " under still lids: "
          + " and ".join(f"{known[f'lids still {shift:g}']['median']:.2f}"
                         for shift in STILL_LID_SHIFTS))  # fmt: skip
    report["renderer_geometry"] = renderer_geometry(np.concatenate(real_landmarks))
    print("\nthe renderer's geometry (5-95% of identities) beside typical adult eyes:")
    for row in report["renderer_geometry"]:
        print(f"  {row['what']:<58} {row['renderer']:>11}   real: {row['real']}")
    json_out = args.json_out or os.path.join(args.out, "gain.json")
    with open(json_out, "w") as f:
        json.dump(report, f, indent=1)
    plot(os.path.join(args.out, "gain.png"), angles, rows)
    face_strips(os.path.join(args.out, "gain_faces.png"), shown, redirector, 15.0)
    print(f"wrote {json_out}, {args.out}/gain.png, gain_faces.png ({time.time() - started:.0f} s)")


if __name__ == "__main__":
    startup.reexec_with_hugepages()  # the allocator the binaries run with
    main()
