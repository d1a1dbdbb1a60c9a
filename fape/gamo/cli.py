"""``fape gamo serve`` and ``fape gamo retrain`` (heavy imports inside the handlers)."""
from __future__ import annotations

from pathlib import Path

from fape.utils.cli import add_group, lazy


def register(groups) -> None:
    sub = add_group(groups, "gamo", help="the GaMo expression game and its retraining loop",
                    description="GaMo (CIFE/GaMo paper, sections 5-6): a browser game that collects balanced, "
                                "labelled faces into a fape dataset, and the loop that retrains on them.")
    q = sub.add_parser("serve", help="serve the game on http://HOST:PORT (localhost by default)",
                       description="fape gamo serve [--model RUN] [--data DIR] [--host 127.0.0.1 --port 8000]. "
                                   "State in DIR: gamo.sqlite, dataset/ (a fape dataset), frames/, models/.")
    q.add_argument("--model", default=None, help="initial model, a run or checkpoint folder (default: the shipped "
                                                 "one); later the registry's current version is served")
    q.add_argument("--data", default="gamo", help="state folder (default: ./gamo)")
    q.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: this machine only)")
    q.add_argument("--port", type=int, default=8000)
    q.add_argument("--lives", type=int, default=5)
    q.add_argument("--fall-seconds", type=float, default=8.0, help="time a bomb takes to land")
    q.add_argument("--bomb-every", type=float, default=3.0, help="seconds between new bombs")
    q.add_argument("--max-bombs", type=int, default=2, help="bombs falling at once")
    q.add_argument("--frame-interval-ms", type=int, default=1000, help="how often the page sends a frame")
    q.add_argument("--threshold", action="append", default=[], metavar="EXPR=P",
                   help="per-expression verification threshold, e.g. --threshold happy=0.7 (repeatable)")
    q.add_argument("--explore", type=float, default=0.2, help="chance of a random target instead of the least collected")
    q.add_argument("--template-margin", type=float, default=0.0,
                   help="customized version: nearest template must beat the second by this L2 distance")
    q.add_argument("--rate", type=float, default=2.0, help="frames a session may send per second")
    q.add_argument("--max-upload-bytes", type=int, default=2_000_000)
    q.add_argument("--seed", type=int, default=None, help="target choice seed (default: random)")
    q.add_argument("--log-level", default="warning")
    q.set_defaults(handler=lazy("fape.gamo.cli", "cli_serve"))

    q = sub.add_parser("retrain", help="fine-tune on the collected faces; promote if not worse on the held-out part",
                       description="fape gamo retrain [--data DIR] [--epochs 3] [--base DATASET]: fine-tunes the served "
                                   "model, evaluates it and the served one on the fixed held-out part, promotes it only "
                                   "if not worse, and records a card for the new version either way.")
    q.add_argument("--data", default="gamo", help="the game's state folder")
    q.add_argument("--model", default=None, help="initial model if the folder has no registry yet")
    q.add_argument("--epochs", type=int, default=3)
    q.add_argument("--lr", type=float, default=1e-4)
    q.add_argument("--batch-size", type=int, default=32)
    q.add_argument("--heldout-by", default=None, choices=("player", "session", "image"),
                   help="held-out unit, fixed at the first round (default player)")
    q.add_argument("--heldout-fraction", type=float, default=None, help="share of units held out (default 0.25)")
    q.add_argument("--min-heldout", type=int, default=10, help="no promotion with fewer held-out images")
    q.add_argument("--base", default="", help="base dataset (same label names) added to the training images")
    q.add_argument("--base-mix", type=float, default=0.5, help="base images per epoch / collected training images")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--threads", type=int, default=1)
    q.set_defaults(handler=lazy("fape.gamo.cli", "cli_retrain"))

    q = sub.add_parser("evaluate", help="self and cross evaluation: base and game model on base and game test data",
                       description="fape gamo evaluate --data DIR --base DATASET [--version vNNNN]: the paper's section "
                                   "6.2 experiment. The base model (v0000) and a retrained game model (default: the "
                                   "newest version) are each scored on the base dataset's test part and on the "
                                   "collection's fixed held-out part, with bootstrap intervals; writes results.json "
                                   "and table.md to --out (default DIR/models/crosseval/vNNNN).")
    q.add_argument("--data", default="gamo", help="the game's state folder")
    q.add_argument("--base", required=True, help="the base model's dataset (fape format), e.g. FER2013 imported "
                                                 "with `fape data import fer2013-folders`")
    q.add_argument("--version", default=None, help="the game model (default: the newest retrained version)")
    q.add_argument("--out", default=None, help="output folder (default DIR/models/crosseval/VERSION)")
    q.add_argument("--boot", type=int, default=2000, help="bootstrap replicates")
    q.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    q.add_argument("--threads", type=int, default=1)
    q.set_defaults(handler=lazy("fape.gamo.cli", "cli_evaluate"))


def parse_thresholds(items: list[str], base: dict) -> dict:
    from fape.errors import UserError

    out = dict(base)
    for item in items:
        name, _, value = item.partition("=")
        try:
            p = float(value)
        except ValueError:
            p = -1.0
        if not name or not 0.0 <= p <= 1.0:
            raise UserError(f"--threshold {item!r}: expected EXPRESSION=P with P in [0, 1]")
        out[name] = p
    return out


def server_config(args):
    from fape.gamo.config import DEFAULT_THRESHOLDS, GameConfig, ServerConfig

    game = GameConfig(lives=args.lives, fall_seconds=args.fall_seconds, bomb_every_seconds=args.bomb_every,
                      max_bombs=args.max_bombs, frame_interval_ms=args.frame_interval_ms,
                      thresholds=parse_thresholds(args.threshold, DEFAULT_THRESHOLDS), explore=args.explore,
                      template_margin=args.template_margin)
    return ServerConfig(data=args.data, model=args.model or "", max_upload_bytes=args.max_upload_bytes,
                        rate_per_second=args.rate, rate_burst=max(2, int(round(2 * args.rate))), game=game)


def cli_serve(args, overrides) -> int:
    import torch
    import uvicorn

    from fape.gamo.app import create_app
    from fape.gamo.game import Game
    from fape.predict.run import default_model

    torch.set_num_threads(1)  # one frame a second per player; leave the cores to the detector and others
    cfg = server_config(args)
    game = Game(cfg, Path(cfg.model) if cfg.model else default_model(), seed=args.seed)
    unknown = sorted(set(cfg.game.thresholds) - set(game.names))
    if unknown:
        from fape.errors import UserError

        raise UserError(f"--threshold names unknown expression(s) {unknown}; the model's are {game.names}")
    print(f"GaMo on http://{args.host}:{args.port}/  model {game.engine().version} ({game.engine().path}), "
          f"data {Path(cfg.data).resolve()}")
    uvicorn.run(create_app(game), host=args.host, port=args.port, log_level=args.log_level)
    return 0


def cli_retrain(args, overrides) -> int:
    import torch

    from fape.gamo.retrain import retrain

    torch.set_num_threads(args.threads)
    card = retrain(Path(args.data), args.epochs, args.lr, args.batch_size, args.heldout_by, args.heldout_fraction,
                   base=args.base, base_mix=args.base_mix, seed=args.seed, min_heldout=args.min_heldout,
                   initial_model=Path(args.model) if args.model else None)
    d = card["data"]
    print(f"{card['version']}: trained on {d['train']['images']} images (val {d['val']['images']}), held-out "
          f"{d['heldout']['images']} images of {d['heldout']['players']} player(s)")
    print(f"{'promoted' if card['promoted'] else 'not promoted'}: {card['reason']}")
    print(f"card: {Path(args.data) / 'models' / card['version'] / 'card.md'}")
    return 0


def cli_evaluate(args, overrides) -> int:
    import torch

    from fape.gamo.crosseval import cross_evaluate

    torch.set_num_threads(args.threads)
    res = cross_evaluate(Path(args.data), Path(args.base), args.version, Path(args.out) if args.out else None,
                         args.boot, args.seed)
    out = Path(args.out) if args.out else Path(args.data) / "models" / "crosseval" / res["version"]
    print((out / "table.md").read_text(), end="")
    print(f"results: {out / 'results.json'}")
    return 0
