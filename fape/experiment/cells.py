"""Classifier cells: where each lives, the pool that trains them ``workers`` at once, and the
pooling of a k-fold task's folds into one test evaluation."""
from __future__ import annotations

import contextlib
import json
from pathlib import Path

from fape.utils.io import atomic_write_json, atomic_write_text


def cell_run(out: Path, task: str, setting: str, seed: int, fold: int | None) -> Path:
    """A classifier cell's run folder: ``OUT/clf/TASK/SETTING/sSEED[/foldK]``."""
    run = out / "clf" / Path(task).stem / setting / f"s{seed}"
    return run if fold is None else run / f"fold{fold}"


def run_seconds(result: str | Path) -> float:
    """Training wall time of a cell (``done.json``), summed over its folds for a k-fold cell."""
    done = [Path(result) / "done.json"] if (Path(result) / "done.json").is_file() else \
        sorted(Path(result).glob("fold*/done.json"))
    return float(sum(json.loads(d.read_text())["train_seconds"] for d in done))


def count_parameters(run: str | Path) -> int:
    """Parameters of a finished run's selected model (weights only, no BatchNorm statistics)."""
    from fape.classifiers.io import load_run

    return sum(p.numel() for p in load_run(run).model.parameters())


def pool_folds(fold_runs: list[Path], out: Path) -> dict:
    """The test predictions of a k-fold cell's folds as one result (each image tested once):
    ``out/eval/test/{predictions.csv, results.json}``, read by :func:`compare` like a run's."""
    import pandas as pd

    from fape.classifiers.evaluate import read_predictions
    from fape.classifiers.metrics import classification_metrics

    frames = [read_predictions(Path(r) / "eval" / "test" / "predictions.csv") for r in fold_runs]
    df = pd.concat(frames, ignore_index=True)
    if df["row"].duplicated().any():
        raise ValueError(f"{out}: an image is in the test part of two folds")
    names = list(json.loads((Path(fold_runs[0]) / "eval" / "test" / "results.json").read_text())["per_class"])
    res = classification_metrics(df["label"].to_numpy(), df["pred"].to_numpy(), names)
    res.update(folds=[str(r) for r in fold_runs], split="test")
    dest = out / "eval" / "test"
    dest.mkdir(parents=True, exist_ok=True)
    atomic_write_text(dest / "predictions.csv", df.to_csv(index=False))
    atomic_write_json(dest / "results.json", res)
    return res


def default_workers() -> int:
    """Classifier cells trained at once: 2 on a CPU with at least 2 cores, else 1. A narrow
    LightCNN keeps 2 threads only partly busy, so two 1-thread cells finish sooner than two
    2-thread cells in turn (benchmarks/parallel_cells.py); a GPU is left to one process."""
    import os

    import torch

    return 1 if torch.cuda.is_available() else max(1, min(2, os.cpu_count() or 1))


def count_images(dataset: str) -> int:
    """Images of a fape dataset folder (``dataset.json``); 0 for "" (no synthesized set)."""
    return int(json.loads((Path(dataset) / "dataset.json").read_text())["num_images"]) if dataset else 0


def _train_images(cfg) -> int:
    """Training images per epoch of a cell (real + synthesized): the pool starts the largest first."""
    from fape.data.splits import load_split

    fold = cfg.data.fold if cfg.data.fold >= 0 else None  # k-fold files: the cell's own fold
    return len(load_split(cfg.data.split, fold)["train"]) + count_images(cfg.data.synthetic)


class CellPool:
    """Classifier cells, ``workers`` at once in spawned processes with ``cpu_count // workers`` threads
    each (or in turn in this process for ``workers`` <= 1). Cells can be added while others train
    (:meth:`submit`, largest first within each call, so no worker is left with a long cell at the
    end); :meth:`result` waits for one (in turn: trains it). A cell's result does not depend on the
    order, only (through float summation order) slightly on its thread count. Finished cells are
    reused (``train_and_eval``)."""

    def __init__(self, workers: int, part: str = "test"):
        self.workers, self.part = int(workers), part
        self.parallel = self.workers > 1
        self._cfg: dict[str, object] = {}  # run folder -> ClfConfig
        self._done: dict[str, dict] = {}  # run folder -> result (in turn)
        self._futures: dict = {}  # run folder -> Future (parallel)
        self._pool = None
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> "CellPool":
        if self.parallel:
            from fape.utils.procs import threads_per_worker, worker_pool

            self.threads = threads_per_worker(self.workers)
            # on an error, queued cells are cancelled before the running ones are awaited
            self._pool = self._stack.enter_context(worker_pool(self.workers, self.threads))
        return self

    def __exit__(self, *exc) -> None:
        self._stack.__exit__(*exc)

    def submit(self, jobs: list[tuple[object, Path]]) -> None:
        """Add ``(ClfConfig, run folder)`` cells; a folder already added is not added again."""
        from fape.classifiers.train_eval import train_and_eval

        new = [(cfg, run) for cfg, run in jobs if str(run) not in self._cfg]
        for cfg, run in new:
            self._cfg[str(run)] = cfg
        if self._pool is not None:
            for cfg, run in sorted(new, key=lambda j: _train_images(j[0]), reverse=True):
                self._futures[str(run)] = self._pool.submit(train_and_eval, cfg, run, False, self.part)

    def result(self, run: str | Path) -> dict:
        """The evaluation of cell ``run`` (added before), once it is trained."""
        from fape.classifiers.train_eval import train_and_eval

        key = str(run)
        if self._pool is not None:
            return self._futures[key].result()
        if key not in self._done:
            self._done[key] = train_and_eval(self._cfg[key], Path(key), split=self.part)
        return self._done[key]

    @contextlib.contextmanager
    def sharing_cpu(self):
        """This process's own work while the workers train (the GAN, synthesis): one torch thread,
        since OpenMP threads that find every core busy spin and run several times slower (the
        quick start's GAN: 22 s with 1 thread, 120 s with 2 beside two busy cores)."""
        import torch

        if self._pool is None:
            yield
            return
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(threads)


def train_cells(jobs: list[tuple[str, object, Path]], workers: int = 1, part: str = "test"):
    """Train ``(label, ClfConfig, run folder)`` cells and evaluate each on ``part``; yields ``(label, result)``
    in table order (:class:`CellPool`)."""
    with CellPool(workers if len(jobs) > 1 else 1, part) as pool:
        pool.submit([(cfg, run) for _, cfg, run in jobs])
        for label, _, run in jobs:
            yield label, pool.result(run)
