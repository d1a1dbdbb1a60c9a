"""Adapters: ``fape data import KIND SRC --out DIR`` converts a public dataset layout into the fape format.

Each kind scans its layout into records (``base.Scan``); ``base.run_import`` does the conversion.
"""
from __future__ import annotations

from pathlib import Path

from fape.data.adapters import ckplus, f2ed, fer2013, generic, jaffe, kdef
from fape.data.adapters.base import Adapter, ImportOptions

ADAPTERS: dict[str, Adapter] = {a.kind: a for a in (
    fer2013.FOLDERS, fer2013.CSV, jaffe.ADAPTER, ckplus.ADAPTER48, ckplus.ADAPTER, kdef.ADAPTER,
    f2ed.ADAPTER, generic.FOLDER, generic.CSV)}
ADAPTER_HELP = "\n".join(f"  {a.kind:<16} {a.help}" for a in ADAPTERS.values())


def import_dataset(kind: str, src: str | Path, out: str | Path,
                   options: ImportOptions | dict | None = None) -> Path:
    """Import ``src`` (layout ``kind``) into the dataset folder ``out``; returns ``out``."""
    from fape.errors import UserError
    from fape.data.adapters.base import run_import

    if kind not in ADAPTERS:
        raise UserError(f"unknown dataset kind {kind!r}; known kinds: {', '.join(ADAPTERS)}")
    if isinstance(options, dict):
        options = ImportOptions(**options)
    return run_import(ADAPTERS[kind], Path(src), Path(out), options or ImportOptions())


def cli_import(args, overrides) -> int:
    import json

    opts = ImportOptions(image_size=args.image_size, gray=args.gray, crop=args.crop, eye_crop=args.eye_crop,
                         assume_cropped=args.assume_cropped,
                         ckplus_frames=args.ckplus_frames, skip_bad=args.skip_bad, max_pixels=args.max_pixels,
                         overwrite=args.overwrite, limit=args.limit)
    out = import_dataset(args.kind, args.src, args.out, opts)
    report = json.loads((out / "import_report.json").read_text())
    print(f"imported {report['num_images']} images into {out} in {report['elapsed_seconds']} s "
          f"({len(report['skipped'])} skipped, {len(report['no_face'])} without a face)")
    return 0
