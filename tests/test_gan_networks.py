import pytest
import torch

from fape.gan.config import DiscriminatorConfig, GeneratorConfig
from fape.gan.networks import (
    GENERATORS,
    UNetGenerator,
    WarpUNetGenerator,
    create_discriminator,
    create_generator,
    discriminator_in_chans,
    discriminator_input,
    list_discriminators,
    list_generators,
    num_params,
    patchgan_out_size,
    patchgan_receptive_field,
)

torch.set_num_threads(2)


def _inputs(B, C, M, size, seed=0):
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(B, C, size, size, generator=g) * 2 - 1  # [-1, 1]
    mask = torch.rand(B, M, size, size, generator=g)  # [0, 1]
    return image, mask


def _landmarks(B, size, seed=0):
    # [B, 68, 2] pixels: a face-sized cloud, and the same cloud moved (source, target)
    g = torch.Generator().manual_seed(seed)
    src = size * (0.3 + 0.4 * torch.rand(B, 68, 2, generator=g))
    return src, src + torch.randn(B, 68, 2, generator=g)


def _run(G, image, mask):
    B = image.shape[0]
    src, tgt = _landmarks(8, image.shape[-1])  # drawn for 8 and cut, so image[:1] gets row 0's landmarks
    return G(image, mask, source_landmarks=src[:B], target_landmarks=tgt[:B])


def _check_grads(module):
    for name, p in module.named_parameters():
        assert p.grad is not None, f"no gradient reaches {name}"
        assert torch.isfinite(p.grad).all(), f"non-finite gradient in {name}"


GEN_CASES = [(name, size, norm, M) for name in list_generators() for size in (32, 64)
             for norm in ("batch", "instance") for M in (1, 7, 68)] + [("unet", 128, "batch", 7)]


@pytest.mark.parametrize("name,size,norm,M", GEN_CASES)
def test_generator_forward_backward(name, size, norm, M):
    torch.manual_seed(0)
    G = create_generator(name, in_chans=3, mask_chans=M, image_size=size, width=8, norm=norm, n_blocks=2)
    image, mask = _inputs(2, 3, M, size)
    out = _run(G, image, mask)
    assert out.shape == image.shape
    assert torch.isfinite(out).all()
    assert out.min() >= -1 and out.max() <= 1
    (out - image).abs().mean().backward()
    _check_grads(G)


def test_unet_depth_follows_image_size():
    # depth 0 = down to 1x1: log2(image_size) steps; depth > 0 stops earlier
    for size, steps in ((32, 5), (64, 6), (128, 7), (256, 8)):
        assert create_generator("unet", 3, 1, size, width=4).n_down == steps
    G = create_generator("unet", 3, 1, 64, width=8, depth=4)  # 4x4 bottleneck
    assert G.n_down == 4
    image, mask = _inputs(2, 3, 1, 64)
    assert G(image, mask).shape == image.shape
    # width doubling is capped at 8x: the innermost encoder conv has 8 * width channels
    G = create_generator("unet", 3, 1, 256, width=4)
    assert G.down[-1][-1].out_channels == 32 and G.down[3][1].out_channels == 32
    # dropout only in the 3 innermost decoder layers
    G = create_generator("unet", 3, 1, 64, width=4)
    has_dropout = [any(isinstance(m, torch.nn.Dropout) for m in up) for up in G.up]
    assert has_dropout == [False, False, False, True, True, True]


@pytest.mark.parametrize("size", [33, 48, 16, 0])
def test_unet_rejects_bad_sizes(size):
    with pytest.raises(ValueError, match="power of two"):
        create_generator("unet", 3, 1, size)


def test_bad_depth_and_mismatched_mask_raise():
    with pytest.raises(ValueError, match="depth"):
        create_generator("unet", 3, 1, 64, depth=7)
    with pytest.raises(ValueError, match="divisible"):
        create_generator("resnet", 3, 1, 36, depth=3)
    G = create_generator("resnet", 3, 1, 32, width=4, n_blocks=1)
    with pytest.raises(ValueError, match="same B, H, W"):
        G(torch.zeros(1, 3, 32, 32), torch.zeros(1, 1, 64, 64))


DISC_CASES = [(name, size, norm, layers) for name in list_discriminators() for size in (32, 64)
              for norm in ("batch", "instance", "none") for layers in (2, 3)] + [("patchgan", 256, "batch", 3)]


@pytest.mark.parametrize("name,size,norm,layers", DISC_CASES)
def test_discriminator_forward_backward(name, size, norm, layers):
    torch.manual_seed(0)
    cfg = DiscriminatorConfig(name=name, width=8, layers=layers, norm=norm, condition_on_source=True)
    in_chans = discriminator_in_chans(cfg, img_chans=3, mask_chans=7)
    assert in_chans == 3 + 7 + 3
    D = create_discriminator(cfg, in_chans=in_chans, image_size=size)
    image, mask = _inputs(2, 3, 7, size)
    x = discriminator_input(cfg, image, mask, source=image.flip(0))
    assert x.shape == (2, in_chans, size, size)
    logits = D(x)
    # layers stride-2 4x4 convs halve, the two stride-1 4x4 convs take one pixel each
    h = size // 2 ** layers - 2
    assert h == patchgan_out_size(size, layers)
    assert logits.shape == (2, 1, h, h)
    assert torch.isfinite(logits).all()
    logits.mean().backward()
    _check_grads(D)


def test_patchgan_geometry_matches_pix2pix():
    assert patchgan_out_size(256, 3) == 30 and patchgan_out_size(64, 3) == 6
    assert patchgan_receptive_field(3) == 70 and patchgan_receptive_field(2) == 34
    with pytest.raises(ValueError, match="layers"):
        create_discriminator("patchgan", 3, 32, layers=4)


def test_discriminator_input_channels_and_order():
    image, mask = _inputs(2, 3, 7, 32)
    source = torch.full_like(image, 0.25)
    for on_mask in (False, True):
        for on_source in (False, True):
            cfg = DiscriminatorConfig(condition_on_mask=on_mask, condition_on_source=on_source)
            x = discriminator_input(cfg, image, mask, source)
            assert x.shape[1] == discriminator_in_chans(cfg, 3, 7) == 3 + 7 * on_mask + 3 * on_source
            assert torch.equal(x[:, :3], image)  # the judged image comes first
            if on_mask:
                assert torch.equal(x[:, 3:10], mask)
            if on_source:
                assert torch.equal(x[:, -3:], source)
    with pytest.raises(ValueError, match="condition_on_source"):
        discriminator_input(DiscriminatorConfig(condition_on_source=True), image, mask)


def test_unknown_names_raise():
    with pytest.raises(ValueError, match="unet"):  # the message lists the registered names
        create_generator("nope", 3, 1, 64)
    with pytest.raises(ValueError, match="patchgan"):
        create_discriminator("nope", 3, 64)
    with pytest.raises(ValueError, match="norm"):
        create_generator("unet", 3, 1, 64, norm="layer")
    with pytest.raises(TypeError, match="widht"):
        create_generator("unet", 3, 1, 64, widht=8)


def test_create_generator_from_config_and_overrides():
    cfg = GeneratorConfig(name="resnet", width=8, n_blocks=3, norm="instance", dropout=0.0)
    G = create_generator(cfg, in_chans=1, mask_chans=68, image_size=32)
    assert sum(type(m).__name__ == "ResBlock" for m in G.modules()) == 3
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in G.modules())
    assert G.encoder[1].in_channels == 1 + 68
    G2 = create_generator(cfg, in_chans=1, mask_chans=68, image_size=32, n_blocks=1, width=4)
    assert sum(type(m).__name__ == "ResBlock" for m in G2.modules()) == 1
    assert G2.encoder[1].out_channels == 4
    assert cfg.n_blocks == 3 and cfg.width == 8  # overrides do not mutate the caller's config
    G3 = create_generator(GeneratorConfig(width=8), 3, 7, 64, name="unet")
    assert isinstance(G3, UNetGenerator)
    image, mask = _inputs(1, 1, 68, 32)
    assert _run(G, image, mask).shape == image.shape


@pytest.mark.parametrize("name", list_generators())
def test_eval_mode_is_deterministic(name):
    # dropout is pix2pix's only noise: on in train (outputs differ), off in eval (outputs repeat)
    torch.manual_seed(0)
    G = create_generator(name, 3, 7, 32, width=8, n_blocks=2, dropout=0.5)
    image, mask = _inputs(2, 3, 7, 32)
    G.train()
    assert not torch.equal(_run(G, image, mask), _run(G, image, mask))
    G.eval()
    with torch.no_grad():
        a, b = _run(G, image, mask), _run(G, image, mask)
        single = _run(G, image[:1], mask[:1])  # eval batch norm uses running stats: a batch of 1 gives the same
    assert torch.equal(a, b)
    assert torch.allclose(a[:1], single, atol=1e-5)


def test_warp_unet_blends_the_warp_with_drawn_pixels():
    from fape.gan.warp import warp_to_landmarks

    torch.manual_seed(0)
    G = create_generator("warp_unet", 3, 7, 32, width=8, dropout=0.0).eval()
    assert isinstance(G, WarpUNetGenerator) and "warp_unet" in list_generators()
    image, mask = _inputs(2, 3, 7, 32)
    src, tgt = _landmarks(2, 32)
    with pytest.raises(ValueError, match="source_landmarks"):
        G(image, mask)
    with torch.no_grad():
        warped = warp_to_landmarks(image, src, tgt)
        assert torch.equal(G.warp(image, src, tgt), warped)
        out = G(image, mask, src, tgt)
        G.blend_bias.fill_(60.0)  # alpha = 1: the output is the warp, whatever the U-Net draws
        assert torch.allclose(G(image, mask, src, tgt), warped, atol=1e-6)
        G.blend_bias.fill_(-60.0)  # alpha = 0: only the drawn pixels, which differ from the warp
        assert not torch.allclose(G(image, mask, src, tgt), warped, atol=1e-2)
    # an untrained G starts near the warp (alpha ~ 0.88), far nearer than to the unwarped source
    assert (out - warped).abs().mean() < 0.5 * (out - image).abs().mean()
    # the U-Net reads the warped face, the source and the target pose: 2 * 3 + 7 input channels
    assert G.refine.down[0][0].in_channels == 13 and G.refine.up[0][1].out_channels == 4


@pytest.mark.parametrize("name", ["unet", "resnet", "warp_unet"])
def test_resize_upsampling_replaces_every_transposed_conv(name):
    G = create_generator(name, 3, 7, 32, width=8, n_blocks=1, upsample="resize")
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in G.modules())
    assert sum(isinstance(m, torch.nn.Upsample) for m in G.modules()) == (2 if name == "resnet" else 5)
    image, mask = _inputs(2, 3, 7, 32)
    assert _run(G, image, mask).shape == image.shape
    with pytest.raises(ValueError, match="upsample"):
        create_generator(name, 3, 7, 32, width=8, upsample="pixelshuffle")


def test_default_parameter_counts():
    counts = {}
    for name in GENERATORS:
        for size in (64, 256):
            counts[f"G {name} @{size}"] = num_params(create_generator(name, 3, 7, size))
    for size in (64, 256):
        cfg = DiscriminatorConfig()
        counts[f"D patchgan @{size}"] = num_params(create_discriminator(cfg, discriminator_in_chans(cfg, 3, 7), size))
    for k, v in counts.items():
        print(f"{k}: {v / 1e6:.2f}M")
    # pix2pix's printed totals (networks.print_network; 3-channel input, 6 for its conditional D):
    # unet_256 54.414 M, resnet_6blocks 7.841 M, basic D 2.769 M. Ours take 7 more input channels
    # (the part masks; D: image + mask = 10 instead of 6), which only widen the first conv: unet
    # 4x4x64 and resnet 7x7x64 weights per extra channel (no bias before a batch norm), D 4x4x64.
    # 0.1% is below one missing layer of D (its smallest, the 512->1 conv, is 0.3%), one missing
    # U-Net level inside the outermost (>= 0.7%) and one residual block (15%).
    pix2pix = {"G unet @256": (54.414e6, 7 * 4 * 4 * 64), "G resnet @256": (7.841e6, 7 * 7 * 7 * 64),
               "D patchgan @256": (2.769e6, 4 * 4 * 4 * 64)}
    for k, (ref, extra) in pix2pix.items():
        assert counts[k] - extra == pytest.approx(ref, rel=1e-3), k
    # the encoder depth grows with image_size, the resnet and patchgan do not
    assert counts["G unet @256"] > counts["G unet @64"]
    assert counts["G resnet @256"] == counts["G resnet @64"]


def test_resize_conv_draws_no_checkerboard_on_a_flat_input():
    # a stride-2 4x4 transposed conv spreads a flat input unevenly: a period-2 pattern (Odena et al. 2016)
    from fape.gan.networks import up_conv

    torch.manual_seed(0)
    x = torch.ones(1, 4, 8, 8)
    for kind, flat in (("deconv", False), ("resize", True)):
        y = torch.nn.Sequential(*up_conv(4, 3, kind))(x)[..., 2:-2, 2:-2]  # [1, 3, 12, 12] interior
        assert y.shape[-1] == 12
        spread = (y - y.mean((2, 3), keepdim=True)).abs().max()
        assert (spread < 1e-5) == flat, (kind, spread)


def test_spectral_norm_bounds_every_conv_of_d():
    torch.manual_seed(0)
    cfg = DiscriminatorConfig(width=8, layers=2, spectral_norm=True)
    D = create_discriminator(cfg, in_chans=4, image_size=32)
    plain = create_discriminator(DiscriminatorConfig(width=8, layers=2), in_chans=4, image_size=32)
    convs = [m for m in D.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 4 and all(hasattr(m, "parametrizations") for m in convs)
    assert not any(hasattr(m, "parametrizations") for m in plain.modules())
    x = torch.randn(2, 4, 32, 32)
    D.train()
    for _ in range(30):  # each training forward runs one power iteration
        D(x)
    for m in convs:
        sigma = torch.linalg.matrix_norm(m.weight.detach().flatten(1), ord=2)
        assert sigma == pytest.approx(1.0, abs=0.05)
    # a checkpoint round trip rebuilds the same parametrised D
    D2 = create_discriminator(cfg, in_chans=4, image_size=32)
    D2.load_state_dict(D.state_dict())
    D.eval(), D2.eval()
    assert torch.allclose(D(x), D2(x))


def test_discriminator_returns_its_features_for_feature_matching():
    D = create_discriminator(DiscriminatorConfig(width=8, layers=3), in_chans=4, image_size=32).eval()
    x = torch.randn(2, 4, 32, 32)
    logits, feats = D(x, return_features=True)
    assert torch.equal(logits, D(x))
    # one map after every LeakyReLU: layers strided ones + the stride-1 one, widths 8, 16, 32, 64
    assert [f.shape[1] for f in feats] == [8, 16, 32, 64]
    assert [f.shape[-1] for f in feats] == [16, 8, 4, 3]
