"""Play GaMo with the fake camera, one player per JAFFE subject, to collect a small GaMo set for
the documented retraining round (docs/gamo.md) and take the pages' screenshots.

    python tools/gamo_demo.py --data runs/gamo_round --jaffe ../shared/data/jaffe \
        --subjects KA KL KM KR MK NA NM TM UY YM --screenshots docs/img \
        --serve-args "--lives 12 --fall-seconds 10 --bomb-every 2.5 --frame-interval-ms 500 --seed 0"
    python tools/gamo_demo.py --data runs/gamo_round --ckplus ../shared/data/ckplus48 --subjects S011 S014 \
        --serve-args "--lives 12 --fall-seconds 10 --bomb-every 2.5 --frame-interval-ms 500 --seed 3"
    fape gamo retrain --data runs/gamo_round
    python tools/gamo_demo.py --data runs/gamo_round --admin-only --screenshots docs/img
    python tools/gamo_demo.py --data runs/gamo_shots --subjects KA --register-only --hold 2 --screenshots docs/img

Each subject is a new browser (a new player after consent) whose camera plays that subject's
expressions (JAFFE: 7, one take; CK+48 with --ckplus: those it has, no neutral) in a loop, each
held --hold seconds. Prints one line per game.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from fape.gamo import browser as B
from fape.gamo.fakecam import ckplus_faces, clip_frames, jaffe_faces, write_y4m


def small_png(path: Path) -> None:
    """Screenshots at most 800 px wide in 128 colours: tens of kB each in the docs."""
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
    im.thumbnail((800, 800))
    im.quantize(128).save(path, optimize=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="the game's state folder")
    ap.add_argument("--jaffe", default="../shared/data/jaffe")
    ap.add_argument("--subjects", nargs="+", default=["KA"])
    ap.add_argument("--ckplus", default=None, help="play CK+48 subjects (e.g. S011) from this folder instead of JAFFE")
    ap.add_argument("--take", type=int, default=0, help="which JAFFE take of each expression (0 = the first)")
    ap.add_argument("--hold", type=float, default=1.2, help="seconds each expression is shown")
    ap.add_argument("--screenshots", default=None, help="folder for gamo_{play,register,admin}.png")
    ap.add_argument("--admin-only", action="store_true", help="no games: only the admin page's screenshot")
    ap.add_argument("--register-only", action="store_true",
                    help="no games: a new player registers the first subject's 7 faces (screenshot)")
    ap.add_argument("--serve-args", default="--fall-seconds 10 --bomb-every 2.5 --frame-interval-ms 500 --seed 0")
    args = ap.parse_args()

    data, port = Path(args.data), B.free_port()
    base = f"http://127.0.0.1:{port}"
    shots = Path(args.screenshots) if args.screenshots else None
    server = B.start_server(data, port, *args.serve_args.split(), log=data.parent / f"{data.name}.server.log")
    try:
        if args.admin_only:
            driver = B.chrome(Path("/dev/null"))
            driver.get(base + "/admin")
            B.wait_for(driver, "document.querySelectorAll('#versions tbody tr').length > 0", 30, "the admin page")
            driver.save_screenshot(str(shots / "gamo_admin.png"))
            driver.quit()
            small_png(shots / "gamo_admin.png")
            return
        if args.register_only:
            clip = data.parent / f"{data.name}.register.y4m"
            write_y4m(clip, clip_frames([f for _, f in jaffe_faces(args.jaffe, args.subjects[0])], args.hold, 10), 10)
            driver = B.chrome(clip)
            B.consent(driver, base)
            print(B.register_templates(driver, base, pause=args.hold, synced=True))
            driver.save_screenshot(str(shots / "gamo_register.png"))
            driver.quit()
            clip.unlink()
            small_png(shots / "gamo_register.png")
            return
        for i, subject in enumerate(args.subjects):
            faces = [f for _, f in (ckplus_faces(args.ckplus, subject) if args.ckplus
                                    else jaffe_faces(args.jaffe, subject, args.take))]
            clip = data.parent / f"{data.name}.{subject}.y4m"
            write_y4m(clip, clip_frames(faces, args.hold, fps=10), fps=10)
            driver = B.chrome(clip)
            try:
                t0 = time.time()
                who = B.consent(driver, base)
                last = i == len(args.subjects) - 1
                shot = (7.0, shots / "gamo_play.png") if shots and last else None
                st = B.play_until_over(driver, timeout=600, shot=shot)
                print(f"{subject} as {who}: score {st['shown']['score']}, {st['frames']} frames, defused "
                      f"{[d['expression'] for d in st['defused']]} ({time.time() - t0:.0f} s)", flush=True)
                if shots and last:
                    B.register_templates(driver, base, pause=args.hold)
                    driver.save_screenshot(str(shots / "gamo_register.png"))
            finally:
                driver.quit()
                clip.unlink()
    finally:
        B.stop_server(server)
    if shots:
        for name in ("gamo_play.png", "gamo_register.png"):
            small_png(shots / name)


if __name__ == "__main__":
    main()
