"""``fape data split``: the command (the library never imports it)."""
from __future__ import annotations

import json

from fape.data.splits.files import save_split
from fape.data.splits.split import make_split
from fape.errors import SplitError


# ------------------------------------------------------------------ CLI
def cli_split(args, overrides) -> int:
    from fape.data.format import read_index

    options = {}
    for tok in getattr(args, "option", None) or []:
        if "=" not in tok:
            raise SplitError(f"--option expects key=value, got {tok!r}")
        k, v = tok.split("=", 1)
        options[k.strip().replace("-", "_")] = v.strip()
    idx = read_index(args.dir)
    split = make_split(idx, args.protocol, args.seed, **options)
    path = save_split(args.dir, split, out=args.out)
    summary = json.loads(path.with_suffix(".json").read_text())
    if split.kfold:
        sizes = ", ".join(f"{f['counts']['test']}" for f in summary["folds"])
        print(f"{path}: {len(split.folds)} folds, test sizes {sizes}")
    else:
        c = summary["counts"]
        print(f"{path}: train {c['train']}, val {c['val']}, test {c['test']}")
    print(f"split_sha256 {summary['split_sha256']}")
    return 0
