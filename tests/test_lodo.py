"""fape data merge + the leave-one-dataset-out protocol, on tiny generated datasets: no image of
the held-out dataset reaches training or selection, and a classifier trains and tests on it."""
import json

import numpy as np
import pandas as pd
import pytest

from _fixtures import REPO
from fape.data import splits
from fape.data.format import DatasetInfo, read_index, save_image, write_index
from fape.data.merge import merge


def _dataset(root, labels, subjects=3, frames=2, split=None, seed=0, eye_crop=False):
    """subjects x labels x frames random 32x32 gray images; ``split``: a Training/PublicTest/
    PrivateTest column by subject (FER2013's kind of split)."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(subjects):
        for k, lab in enumerate(labels):
            for f in range(frames):
                path = f"images/s{s}_{lab}_{f}.png"
                save_image(root / path, rng.integers(0, 256, (32, 32, 1), dtype=np.uint8))
                row = dict(path=path, subject=f"s{s}", expression=lab, label=k, pose="F", sequence=f"s{s}_{lab}",
                           frame=f, source=path)
                if split:
                    row["split"] = split[s % len(split)]
                rows.append(row)
    origin = {"kind": "test", "options": {"eye_crop": eye_crop}}
    write_index(root, pd.DataFrame(rows), DatasetInfo(name=root.name, label_names=labels, channels=1,
                                                      image_size=[32, 32], origin=origin))
    return root


@pytest.fixture(scope="module")
def merged(tmp_path_factory):
    t = tmp_path_factory.mktemp("lodo")
    fer = _dataset(t / "fer", ["angry", "happy", "neutral"], subjects=6,
                   split=["Training", "Training", "Training", "Training", "PublicTest", "PrivateTest"])
    ck = _dataset(t / "ck", ["anger", "contempt", "happy"], seed=1)  # CK+'s names
    jaffe = _dataset(t / "jaffe", ["angry", "happy", "neutral"], seed=2)
    return merge([("fer2013", fer), ("ckplus48", ck), ("jaffe", jaffe)], t / "all")


def test_merge_unifies_names_and_keeps_sources_apart(merged):
    idx = read_index(merged)
    m = idx.manifest
    assert idx.info.label_names == ["angry", "happy", "neutral", "contempt"]  # anger -> angry, first order kept
    assert m["dataset"].value_counts().to_dict() == {"fer2013": 36, "ckplus48": 18, "jaffe": 18}
    assert set(m.loc[m["dataset"] == "ckplus48", "expression"]) == {"angry", "contempt", "happy"}
    assert not set(m.loc[m["dataset"] == "jaffe", "subject"]) & set(m.loc[m["dataset"] == "ckplus48", "subject"])
    assert all((merged / p).is_file() for p in m["path"])
    np.testing.assert_array_equal(idx.info.label_names[0], "angry")


def test_merge_keeps_the_sources_crop_and_refuses_a_mix(tmp_path):
    from fape.data.format import DatasetError
    from fape.data.preprocess import preprocess_spec

    a = _dataset(tmp_path / "a", ["angry", "happy"], eye_crop=True)
    b = _dataset(tmp_path / "b", ["angry", "happy"], eye_crop=True, seed=1)
    square = _dataset(tmp_path / "sq", ["angry", "happy"], seed=2)
    eye = read_index(merge([("a", a), ("b", b)], tmp_path / "eye")).info.origin
    assert preprocess_spec(48, 1, eye)["crop"] == "eye"  # a model trained on the merge records the eye crop
    with pytest.raises(DatasetError, match="cropped differently.*a: eye.*sq: square"):
        merge([("a", a), ("sq", square)], tmp_path / "mixed")
    assert not (tmp_path / "mixed").exists()


@pytest.mark.parametrize("held", ["jaffe", "ckplus48"])
def test_held_out_dataset_only_in_test(merged, held):
    idx = read_index(merged)
    m = idx.manifest
    sp = splits.make_split(idx, "leave-one-dataset-out", seed=0, test=held)
    p = sp.parts
    ds = m["dataset"].to_numpy()
    assert set(ds[p["test"]]) == {held}
    assert held not in set(ds[p["train"]]) | set(ds[p["val"]])  # nothing of it in training or selection
    names = np.array(idx.info.label_names)[m["label"].to_numpy()]
    assert "contempt" not in set(names[np.concatenate([p["train"], p["val"], p["test"]])])
    # FER2013's PublicTest selects, its PrivateTest is in no part; its Training trains
    fer = m.index[ds == "fer2013"].to_numpy()
    split_col = m["split"].to_numpy()
    assert set(split_col[np.intersect1d(fer, p["val"])]) == {"PublicTest"}
    assert not np.isin(fer[split_col[fer] == "PrivateTest"], np.concatenate(list(p.values()))).any()
    expected_test = (ds == held) & (names != "contempt")
    assert len(p["test"]) == int(expected_test.sum())
    meta = sp.summary()
    assert meta["test_dataset"] == held and meta["label_names"] == ["angry", "happy", "neutral"]


def test_unknown_held_out_dataset_is_named(merged):
    with pytest.raises(splits.SplitError, match="test='kdef'.*ckplus48, fer2013, jaffe"):
        splits.make_split(merged, "leave-one-dataset-out", test="kdef")


@pytest.mark.slow
def test_train_and_test_across_datasets(merged, tmp_path):
    from fape.classifiers import train as clf_train
    from fape.classifiers.config import ClfConfig
    from fape.classifiers.evaluate import evaluate_run
    from fape.config import load_config

    cfg = load_config(ClfConfig, REPO / "configs/clf/fanet_lodo_jaffe.yaml",
                      [f"--data.root={merged}", "--model.name=cnn3", "--model.init_from=", "--data.image_size=32",
                       "--train.batch_size=8", "--train.epochs=1", "--train.mixed_precision=no"])
    run = clf_train.train(cfg, tmp_path / "run", progress=False)
    res = evaluate_run(run, "test")
    assert res["n"] == 18 and set(res["per_class"]) == {"angry", "happy", "neutral"}
    split = json.loads((run / "labels.json").read_text())["split"]
    assert "leave-one-dataset-out" in split and "test=jaffe" in split


def test_class_source_weights_balance_classes_and_temper_sources():
    from fape.classifiers.data import source_weights

    labels = np.array([0] * 90 + [0] * 10 + [1] * 50)
    sources = np.array(["fer"] * 90 + ["ck"] * 10 + ["fer"] * 50, dtype=object)
    w = source_weights(labels, sources)
    assert np.isclose(w[labels == 0].sum(), w[labels == 1].sum())
    per_fer, per_ck = w[0], w[90]
    assert np.isclose(per_ck / per_fer, 3.0)  # sqrt(90 / 10): drawn 3x as often per image, not 9x
    assert np.isclose(w[sources == "ck"].sum() / w[labels == 0].sum(), 10 * 3 / (90 + 30))


def test_robust_augmentation_keeps_shape_range_and_seed():
    import torch

    from fape.classifiers.augment import augment

    x = torch.rand(16, 1, 32, 32) * 2 - 1
    torch.manual_seed(3)
    a = augment(x, "robust")
    torch.manual_seed(3)
    b = augment(x, "robust")
    assert a.shape == x.shape and float(a.min()) >= -1 and float(a.max()) <= 1
    assert torch.equal(a, b) and not torch.allclose(a, x)


def test_mixup_and_class_source_train(merged, tmp_path):
    from fape.classifiers import train as clf_train
    from fape.classifiers.config import ClfConfig
    from fape.config import load_config

    cfg = load_config(ClfConfig, REPO / "configs/clf/fanet_lodo_jaffe.yaml",
                      [f"--data.root={merged}", "--model.name=cnn3", "--data.image_size=32", "--train.batch_size=8",
                       "--train.epochs=1", "--train.mixed_precision=no", "--train.mixup=0.2",
                       "--data.balance=class_source", "--data.augment=robust", "--train.label_smoothing=0.1"])
    run = clf_train.train(cfg, tmp_path / "run", progress=False)
    assert (run / "done.json").is_file()
