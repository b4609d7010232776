"""LayerCAM helper, vessel mass, image choice, render and cam.json (CPU, tiny inputs)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from thtl_bench import cam
from thtl_bench.cam import CamError, layercam_maps, select_images, vessel_fraction, vessel_mass
from thtl_bench.cli import cam as cam_cli
from thtl_bench.errors import UserError
from thtl_bench.records import Case

RESNET_GROUPS = ("layer1", "layer2", "layer3", "layer4")


class TinyResNet(nn.Module):
    """A torchvision resnet18 with the StagedModel attribute the CAM reads (`cam_layers`)."""

    def __init__(self, num_classes: int = 2, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.net = torchvision.models.resnet18(num_classes=num_classes)
        self.cam_layers = {g: getattr(self.net, g) for g in RESNET_GROUPS}

    def forward(self, x):
        return self.net(x)


@pytest.fixture(scope="module")
def resnet():
    return TinyResNet()


def _images(n: int, size: int = 64, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _check_maps(maps: dict, groups, n: int, size: int) -> None:
    assert list(maps) == list(groups)
    for g, m in maps.items():
        assert m.shape == (n, size, size), g
        assert m.dtype == np.float32
        assert np.isfinite(m).all()
        # grad-cam min-max scales each map on its own, then resizes it bilinearly to the input
        # (which can miss the exact extremes): every map spans nearly [0, 1]
        assert m.min() >= -1e-6 and m.max() <= 1 + 1e-6
        assert (np.ptp(m, axis=(1, 2)) > 0.9).all(), g


# ---------------------------------------------------------------------------------------- helper


def test_one_map_per_group_per_image(resnet):
    maps = layercam_maps(resnet, _images(2), [0, 1], resnet.cam_layers, name="resnet18")
    _check_maps(maps, RESNET_GROUPS, 2, 64)
    # Different depths look at different things: identical maps would mean one layer was reused.
    assert not np.allclose(maps["layer1"], maps["layer3"], atol=1e-3)


def test_layers_are_not_averaged(resnet):
    x = _images(2)
    both = layercam_maps(resnet, x, [0, 1], {"layer2": resnet.net.layer2, "layer4": resnet.net.layer4})
    alone = layercam_maps(resnet, x, [0, 1], {"layer4": resnet.net.layer4})
    # grad-cam given both layers at once would return their mean for each
    np.testing.assert_allclose(both["layer4"], alone["layer4"], atol=1e-5)
    assert not np.allclose(both["layer2"], both["layer4"], atol=1e-3)


def test_each_image_is_explained_for_its_own_label(resnet):
    x = _images(2, seed=3)
    with torch.no_grad():
        logits = resnet.eval()(x)
    # Image 2's label is its least likely class: neither argmax nor image 1's label can stand in.
    labels = [int(logits[0].argmax()), int(logits[1].argmin())]
    batch = layercam_maps(resnet, x, labels, resnet.cam_layers)
    own = layercam_maps(resnet, x[1:], [labels[1]], resnet.cam_layers)
    other = layercam_maps(resnet, x[1:], [1 - labels[1]], resnet.cam_layers)
    first = layercam_maps(resnet, x[:1], [labels[0]], resnet.cam_layers)
    for g in RESNET_GROUPS:
        np.testing.assert_allclose(batch[g][1], own[g][0], atol=1e-5)
        np.testing.assert_allclose(batch[g][0], first[g][0], atol=1e-5)
        assert np.abs(batch[g][1] - other[g][0]).max() > 0.05, g


def test_frozen_layers_work_and_model_state_is_restored():
    model = TinyResNet(seed=2)
    x = _images(2, seed=4)
    reference = layercam_maps(model, x, [1, 0], model.cam_layers)
    # A last-layer arm: everything frozen but the head, mixed train/eval modules, a stale grad.
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith("net.fc."))
    model.train()
    model.net.layer1[0].bn1.eval()
    sentinel = torch.full_like(model.net.conv1.weight, 7.0)
    model.net.conv1.weight.grad = sentinel
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    modes = {n: m.training for n, m in model.named_modules()}

    frozen = layercam_maps(model, x, [1, 0], model.cam_layers)

    for g in RESNET_GROUPS:  # autograd flags must not change the explanation
        np.testing.assert_allclose(frozen[g], reference[g], atol=1e-5)
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    assert {n: m.training for n, m in model.named_modules()} == modes
    assert model.net.conv1.weight.grad is sentinel
    assert model.net.fc.weight.grad is None
    assert not model.net.layer1[0].bn1.training and model.net.layer1[0].bn2.training


class AfterLayer(nn.Module):
    """conv -> (in-place or not) +1 -> head: an in-place op on the CAM layer's output."""

    def __init__(self, inplace: bool):
        super().__init__()
        torch.manual_seed(5)
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.head = nn.Linear(16, 2)
        self.inplace = inplace

    def forward(self, x):
        y = self.conv(x)
        y = y.add_(1.0) if self.inplace else y + 1.0
        return self.head(torch.relu(y).mean(dim=(2, 3)))


def test_inplace_op_after_the_layer_does_not_change_the_map():
    # grad-cam keeps `output.cpu().detach()`, an alias on CPU; without a copy the +1 leaks into it.
    x = _images(2, size=16)
    a, b = AfterLayer(False), AfterLayer(True)
    ma = layercam_maps(a, x, [0, 1], {"conv": a.conv})
    mb = layercam_maps(b, x, [0, 1], {"conv": b.conv})
    np.testing.assert_allclose(ma["conv"], mb["conv"], atol=1e-5)


class DeadLayer(nn.Module):
    """A CAM layer whose output is all zeros: LayerCAM has nothing to show."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        return self.head(self.conv(x).mean(dim=(2, 3)))


class Detached(DeadLayer):
    def forward(self, x):
        return self.head(self.conv(x).detach().mean(dim=(2, 3)))


def test_out_of_range_label_is_not_swallowed(resnet):
    # grad-cam's __exit__ swallows IndexError; we must still fail, naming model, layer, image.
    with pytest.raises(CamError, match=r"model resnet18, layer layer1: .*\('b', 5\).*2 outputs"):
        layercam_maps(resnet, _images(2), [0, 5], resnet.cam_layers, name="resnet18", image_ids=["a", "b"])


def test_one_by_one_activation_is_refused(resnet):
    # resnet18's layer4 is 1x1 at 32 px: its map would be one flat value
    with pytest.raises(CamError, match="layer layer4: .*1x1"):
        layercam_maps(resnet, _images(1, size=32), [0], resnet.cam_layers, name="resnet18")


def test_constant_map_is_refused_naming_the_image():
    m = DeadLayer()
    with pytest.raises(CamError, match=r"model dead, layer conv, image img-7 \(label 1\): map is constant"):
        layercam_maps(m, _images(1, size=16), [1], {"conv": m.conv}, name="dead", image_ids=["img-7"])


def test_detached_layer_is_refused():
    m = Detached()
    with pytest.raises(CamError, match="no gradient reached the layer"):
        layercam_maps(m, _images(1, size=16), [0], {"conv": m.conv}, name="det")


def test_layer_run_twice_is_refused(resnet):
    # torchvision's BasicBlock calls its one ReLU module twice per forward
    with pytest.raises(CamError, match="ran 2 times"):
        layercam_maps(resnet, _images(1), [0], {"relu": resnet.net.layer1[0].relu})


def test_layer_without_a_spatial_map_is_refused(resnet):
    with pytest.raises(CamError, match=r"layer fc: .*must output \(N, C, h, w\).*got shape \(2, 2\)"):
        layercam_maps(resnet, _images(2), [0, 1], {"fc": resnet.net.fc})


def test_label_count_must_match_images(resnet):
    with pytest.raises(CamError, match="one label and id each"):
        layercam_maps(resnet, _images(2), [0], resnet.cam_layers)


# ---------------------------------------------------------------------------------- vessel mass


def test_vessel_mass_same_grid():
    cam_map = np.array([[1.0, 0.0], [0.0, 1.0]])
    mask = np.array([[255, 0], [0, 0]], dtype=np.uint8)
    assert vessel_mass(cam_map, mask) == pytest.approx(0.5)
    assert vessel_fraction(mask) == pytest.approx(0.25)


def test_vessel_mass_mask_shrunk_by_area():
    cam_map = np.array([[3.0, 1.0], [0.0, 0.0]])
    mask = np.zeros((4, 4), dtype=np.uint8)
    mask[0, 0] = 1  # top-left cell: 1 of 4 pixels are vessel
    mask[0:2, 2:4] = 1  # top-right cell: all 4
    # (3 * 1/4 + 1 * 1) / (3 + 1)
    assert vessel_mass(cam_map, mask) == pytest.approx(1.75 / 4)
    assert vessel_fraction(mask, (2, 2)) == pytest.approx(5 / 16)
    assert vessel_fraction(mask) == pytest.approx(5 / 16)


def test_vessel_mass_mask_grown_nearest():
    cam_map = np.zeros((4, 4))
    cam_map[0, 0], cam_map[3, 3] = 2.0, 1.0
    mask = np.array([[1, 0], [0, 0]])
    assert vessel_mass(cam_map, mask) == pytest.approx(2 / 3)
    assert vessel_fraction(mask, (4, 4)) == pytest.approx(0.25)


@pytest.mark.parametrize("bad", [np.zeros((2, 2)), np.array([[1.0, -1.0], [0, 0]]), np.full((2, 2), np.nan)])
def test_vessel_mass_refuses_empty_or_invalid_maps(bad):
    with pytest.raises(ValueError):
        vessel_mass(bad, np.ones((2, 2)))


def test_segment_mass_splits_the_vessel_mass_by_category():
    # labels on a 4x4 image: 1 straight, 2 tortuous, 3 dots; the map on a 2x2 grid (area-shrunk labels)
    labels = np.array([[1, 1, 2, 2], [1, 1, 2, 0], [0, 0, 3, 0], [0, 0, 0, 0]], dtype=np.uint8)
    cam_map = np.array([[1.0, 3.0], [0.0, 4.0]])
    cov = cam.category_coverage(labels, SEGMENTS, (2, 2))
    assert {c: float(v.sum()) for c, v in cov.items()} == {"straight": 1.0, "tortuous": 0.75, "dots": 0.25}
    mass = cam.segment_mass(cam_map, cov)
    # straight: the top-left cell (map 1); tortuous: 3/4 of the top-right (3); dots: 1/4 of the bottom-right (4)
    assert mass == pytest.approx({"straight": 1 / 8, "tortuous": 2.25 / 8, "dots": 1 / 8})
    assert sum(mass.values()) == pytest.approx(vessel_mass(cam_map, labels))
    # a map on straight pixels only puts nothing on the others
    only = cam.segment_mass(np.array([[1.0, 0.0], [0.0, 0.0]]), cov)
    assert only == {"straight": 1.0, "tortuous": 0.0, "dots": 0.0}
    with pytest.raises(ValueError):
        cam.segment_mass(np.zeros((2, 2)), cov)


# ----------------------------------------------------------------------------- image selection


def _domain(n_per_class=(5, 4), size=64, seed=0, masks=True, classes=("benign", "malignant")):
    """A DomainTensors stand-in: images uint8 NHWC, masks uint8, patients of 2 images each."""
    rng = np.random.default_rng(seed)
    labels = np.concatenate([np.full(k, c) for c, k in enumerate(n_per_class)]).astype(np.int64)
    n = len(labels)
    images = rng.integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)
    m = np.zeros((n, size, size), dtype=np.uint8)
    for i in range(n):  # one bright vertical vessel per image, also drawn into the image
        col = 8 + 5 * i % (size - 16)
        m[i, :, col:col + 3] = 1
        images[i, :, col:col + 3] = 255
    ids = [f"{classes[lab]}/p{i // 2:02d}/img{i:02d}.png" for i, lab in enumerate(labels)]
    groups = [f"{classes[lab]}-p{i // 2:02d}" for i, lab in enumerate(labels)]
    split = np.array(["test"] * n, dtype=object)
    split[[0, 5]] = "train"
    return SimpleNamespace(images=images, labels=labels, ids=ids, groups=groups, split=split,
                           classes=list(classes), masks=m if masks else None, kind="phantom")


def test_select_images_one_per_patient_first_test_split_only():
    dt = _domain()
    # benign: test 1,2,3,4 (patients p00: 1, p01: 2,3, p02: 4); malignant: 6,7,8 (p03: 6,7, p04: 8)
    idx = select_images(dt, 2)
    assert idx.tolist() == [1, 2, 6, 8]
    assert select_images(dt, 4).tolist() == [1, 2, 4, 3, 6, 8, 7]  # other images of seen patients last
    assert select_images(dt, 1, classes=[1]).tolist() == [6]
    # the choice depends on the data only
    assert select_images(dt, 2).tolist() == idx.tolist()


# ------------------------------------------------------------------------ every default model


@pytest.fixture(scope="module")
def registry():
    from thtl_bench import models

    return models


def _trained_like(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """Random init, brought to the conditions of a trained network for the CAM check: batch-norm
    running statistics estimated on the inputs (with the default mean 0 / var 1, deep
    efficientnet_b0 features vanish to ~1e-13 in eval mode) and a non-zero head (torchvision
    zero-initialises ViT's head, which makes every gradient zero)."""
    head = model.stages[model.head_stage]
    if not head.weight.abs().sum():
        nn.init.normal_(head.weight, std=0.1)
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for bn in bns:  # momentum None: one pass sets the exact batch statistics
        bn.reset_running_stats()
        bn.momentum = None
    model.train()
    with torch.no_grad():
        model(x)
    for bn in bns:
        bn.momentum = 0.1
    return model.eval()


def _model_group_cases():
    from thtl_bench.models import MODELS

    for name in MODELS:
        yield pytest.param(name, id=name)


@pytest.mark.parametrize("name", list(_model_group_cases()))
def test_every_default_model_gives_a_map_per_group(registry, name):
    # 64 px (the smoke image size) keeps the deepest groups at >= 2x2; ViT runs at 64 px as well
    # (torchvision builds it for the configured size), so all models share one tiny input.
    torch.manual_seed(0)
    model = registry.build(name, 2, init="random", cfg={"data": {"image_size": 64}})
    x = _images(2, seed=7)
    _trained_like(model, x)
    layers = model.cam_layers
    assert layers, f"{name} exposes no cam_layers"
    known_flat = KNOWN_FLAT.get(name, set())
    ok = {g: m for g, m in layers.items() if g not in known_flat}
    _check_maps(layercam_maps(model, x, [0, 1], ok, name=name), list(ok), 2, 64)
    for g in known_flat:  # see KNOWN_FLAT: fails loudly instead of drawing a blank map
        with pytest.raises(CamError, match=f"model {name}, layer {g}, image #0 .*constant"):
            layercam_maps(model, x, [0, 1], {g: layers[g]}, name=name)


# Layers whose LayerCAM map is flat by construction (none today; ViT's last group targets the last
# block's input norm for this reason, see models/staging.py). An entry here must fail loudly.
KNOWN_FLAT: dict[str, set[str]] = {}


def test_registry_model_explains_each_image_for_its_label(registry):
    torch.manual_seed(1)
    model = registry.build("efficientnet_lite0", 2, init="random", cfg={"data": {"image_size": 64}})
    x = _images(2, seed=8)
    _trained_like(model, x)
    batch = layercam_maps(model, x, [0, 1], model.cam_layers)
    own = layercam_maps(model, x[1:], [1], model.cam_layers)
    other = layercam_maps(model, x[1:], [0], model.cam_layers)
    for g in model.cam_layers:
        np.testing.assert_allclose(batch[g][1], own[g][0], atol=1e-4)
    assert any(np.abs(batch[g][1] - other[g][0]).max() > 0.05 for g in model.cam_layers)


# ------------------------------------------------------------------------------ render, cam.json

ROOT = Path(__file__).resolve().parents[1]
CAM_ARMS = ["onestep_last", "swft"]
ENTRY_KEYS = {"model", "arm", "via", "domain", "image_id", "group", "label", "figure", "vessel_mass",
              "vessel_fraction", "segment_mass", "segment_fraction", "pred", "prob"}
SEGMENTS = ["straight", "tortuous", "dots"]


def _overrides(tmp: Path) -> list[str]:
    return [f"data.root={tmp}/data", f"data.cache_dir={tmp}/cache", f"data.fundus.root={tmp}/data/fundus",
            f"data.larynx.root={tmp}/data/larynx", "synth.image_size=64", "data.image_size=64",
            "synth.fundus.per_grade=[3,3,3,3,3]", "synth.larynx.patients={benign: 4, malignant: 4}",
            "synth.larynx.images_per_patient=[2,2]", f"grid.checkpoints_dir={tmp}/ck",
            f"grid.records_dir={tmp}/records", f"cam.arms=[{', '.join(CAM_ARMS)}]", "cam.images_per_class=1",
            "cam.model=resnet18", "cam.replicate=[0, 0]", "cam.domains=[fundus]", "cam.out_dir=report/figures",
            "report.dir=report", "train.device=cpu"]


def _case(arm: str, domain: str | None = "fundus") -> Case:
    """The cam case of `arm` (resnet18, replicate s0/k0; THTL arms through `domain`)."""
    from thtl_bench import arms

    return Case("resnet18", arm, 0, 0, domain if arms.get(arm).via_intermediate else None)


def save_best(cfg: dict, case: Case, init_seed: int | None = None) -> Path:
    """A best.pt as the engine writes it (case_id tag, classes, StagedModel weights), random init
    (seeded by `init_seed`, default the arm name's length)."""
    from thtl_bench import models
    from thtl_bench.engine import case_id, checkpoint, inputs

    classes = list(cfg["data"][inputs.trains_on(case)]["classes"])
    torch.manual_seed(len(case.arm) if init_seed is None else init_seed)
    net = models.build(case.model, len(classes), init="random", cfg=cfg)
    path = cam.checkpoint_path(cfg["grid"]["checkpoints_dir"], case)
    checkpoint.save({"case_id": case_id(cfg, case), "slug": case.slug, "model_name": case.model,
                     "arm": case.arm, "classes": classes, "model": checkpoint.state_copy(net)}, path)
    return path


@pytest.fixture(scope="module")
def case_set(tmp_path_factory):
    """Tiny phantoms (64 px) and best.pt files for cam.arms and THTL step 1 (via fundus) of
    resnet18, replicate s0/k0."""
    from thtl_bench import config
    from thtl_bench.data import phantoms

    tmp = tmp_path_factory.mktemp("cam")
    overrides = _overrides(tmp)
    cfg = config.load(ROOT / "params.yaml", "smoke", overrides)
    cfg["split"]["dir"] = str(tmp / "splits")  # where the CLI (run from tmp) finds them too
    phantoms.synth(tmp / "data", cfg["synth"])
    for arm in CAM_ARMS + ["thtl_step1"]:
        save_best(cfg, _case(arm))
    return tmp, overrides, cfg


def _cli_args(overrides: list[str], *extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cam_cli.add_cli(parser.add_subparsers(dest="command"))
    sets = [a for o in overrides for a in ("-S", o)]
    return parser.parse_args(["cam", "--params", str(ROOT / "params.yaml"), "--profile", "smoke", *sets, *extra])


def test_render_end_to_end_through_the_cli(case_set, monkeypatch, capsys):
    tmp, overrides, cfg = case_set
    monkeypatch.chdir(tmp)  # the repository root: figure paths in cam.json are relative to it
    stale = tmp / "report" / "figures" / "cam__old.png"
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_bytes(b"png")
    keep = tmp / "report" / "figures" / "swft_steps.png"  # another module's figure stays
    keep.write_bytes(b"png")

    args = _cli_args(overrides)
    assert args.func(args) == 0
    entries = json.loads((tmp / "report" / "cam.json").read_text())
    assert entries and all(set(e) == ENTRY_KEYS for e in entries)
    assert not stale.exists() and keep.exists()

    larynx = [e for e in entries if e["domain"] == "larynx"]
    # one benign and one malignant test image, each explained by every arm, arms in cam.arms order
    assert sorted({e["label"] for e in larynx}) == ["benign", "malignant"]
    assert [e["arm"] for e in larynx] == CAM_ARMS * 2
    # `via`: the intermediate domain of a THTL arm, None for a target-only arm
    assert [e["via"] for e in larynx] == [None, "fundus"] * 2
    groups = ["layer1_stem", "layer2", "layer3", "layer4"]  # front to back
    for e in entries:
        assert e["model"] == "resnet18"
        assert list(e["vessel_mass"]) == groups
        assert all(0.0 <= v <= 1.0 for v in e["vessel_mass"].values())
        assert 0.0 < e["vessel_fraction"] < 1.0
        fig = Path(e["figure"])
        assert not fig.is_absolute() and fig.parts[:2] == ("report", "figures")
        assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # one figure per image, shared by its arms
    assert len({e["figure"] for e in larynx}) == 2
    assert {e["image_id"] for e in larynx} == {e["image_id"] for e in larynx if e["arm"] == "swft"}
    for e in larynx:  # the mediator: mass on straight / tortuous / dot pixels, per layer group
        assert list(e["segment_mass"]) == groups and list(e["segment_fraction"]) == SEGMENTS
        assert e["group"] == e["image_id"].split("/")[1]  # the patient
        # the categories partition the vessel pixels: their masses add up to the vessel mass
        for g in groups:
            assert list(e["segment_mass"][g]) == SEGMENTS
            assert sum(e["segment_mass"][g].values()) == pytest.approx(e["vessel_mass"][g], abs=1e-5)
        assert sum(e["segment_fraction"].values()) == pytest.approx(e["vessel_fraction"], abs=1e-5)
    fundus = [e for e in entries if e["domain"] == "fundus"]
    assert fundus and {(e["arm"], e["via"]) for e in fundus} == {("thtl_step1", "fundus")}
    assert all(e["segment_mass"] is None and e["segment_fraction"] is None for e in fundus)
    # figure names carry the replicate and the images' domain
    assert all(Path(e["figure"]).name.startswith(f"cam__resnet18__s0k0__{e['domain']}__") for e in entries)
    assert "report/cam.json" in capsys.readouterr().out


def test_render_shares_match_the_helper_on_the_same_image(case_set, monkeypatch):
    # The number under each panel is vessel_mass of that image's own map for its own label.
    from thtl_bench.engine.inputs import tensors

    tmp, _, cfg = case_set
    monkeypatch.chdir(tmp)
    entries = cam.render(cfg)
    e = next(x for x in entries if x["arm"] == "swft" and x["label"] == "malignant")
    dt = tensors(cfg, "larynx", 0)  # the target's images on the replicate's split
    i = dt.ids.index(e["image_id"])
    assert dt.split[i] == "test" and dt.classes[dt.labels[i]] == "malignant"
    net = cam.load_case_model(cfg, _case("swft"))
    x = cam._inputs(np.asarray(dt.images[i:i + 1]), torch.device("cpu"))
    maps = layercam_maps(net, x, [int(dt.labels[i])], net.cam_layers)
    for g, share in e["vessel_mass"].items():
        assert share == pytest.approx(vessel_mass(maps[g][0], dt.masks[i]), abs=1e-5)
    # the segment numbers: the same map against the generator's own labels of this image
    from thtl_bench.data import segments

    labels = segments.regenerate(dt.root, [e["image_id"]])[e["image_id"]]
    cov = cam.category_coverage(labels, segments.CATEGORIES, maps["layer2"][0].shape)
    for g in maps:
        want = cam.segment_mass(maps[g][0], cov)
        assert e["segment_mass"][g] == pytest.approx(want, abs=1e-5)
    assert e["segment_fraction"] == pytest.approx({c: float(np.mean(labels == k))
                                                  for k, c in enumerate(SEGMENTS, start=1)}, abs=1e-6)
    assert e["vessel_fraction"] == pytest.approx(float(np.mean(np.asarray(dt.masks[i]) > 0)), abs=1e-6)
    # pred/prob: the same net's softmax on the same input (the CAM passes leave it unchanged)
    with torch.no_grad():
        probs = torch.softmax(net(x), dim=1)[0].numpy()
    assert e["pred"] == dt.classes[int(probs.argmax())]
    assert e["prob"] == pytest.approx(float(probs.max()), abs=1e-5) and e["prob"] >= 0.5


def test_probabilities_are_eval_mode_softmax_and_restore_modes():
    model = TinyResNet(seed=3)
    x = _images(3, seed=5)
    with torch.no_grad():
        want = torch.softmax(model.eval()(x), dim=1).numpy()
    model.train()
    model.net.layer1[0].bn1.eval()
    got = cam._probabilities(model, x)
    np.testing.assert_allclose(got, want, atol=1e-6)  # eval mode: batch norm's running statistics
    assert got.shape == (3, 2) and np.allclose(got.sum(axis=1), 1.0)
    assert model.training and not model.net.layer1[0].bn1.training and model.net.layer1[0].bn2.training


def test_render_without_vessel_masks_reports_no_share(case_set, monkeypatch):
    # Real data has no vessel masks: shares and the chance baseline are null, never invented.
    import dataclasses

    from thtl_bench.engine import inputs

    tmp, _, cfg = case_set
    monkeypatch.chdir(tmp)
    real = inputs.tensors
    monkeypatch.setattr(inputs, "tensors", lambda c, name, *a, **k: dataclasses.replace(real(c, name, *a, **k),
                                                                                         masks=None, kind="real"))
    cfg = {**cfg, "cam": {**cfg["cam"], "arms": ["swft"], "fundus_example": False}}
    entries = cam.render(cfg)
    assert [e["label"] for e in entries] == ["benign", "malignant"]
    for e in entries:
        assert e["domain"] == "larynx" and e["vessel_fraction"] is None and e["via"] == "fundus"
        assert list(e["vessel_mass"]) == ["layer1_stem", "layer2", "layer3", "layer4"]
        assert all(v is None for v in e["vessel_mass"].values())
        assert e["segment_mass"] is None and e["segment_fraction"] is None  # no generator to ask
        assert Path(e["figure"]).is_file()
    assert json.loads((tmp / "report" / "cam.json").read_text()) == entries


def test_missing_checkpoint_names_case_and_command(case_set, tmp_path):
    _, _, cfg = case_set
    cfg = {**cfg, "cam": {**cfg["cam"], "arms": ["onestep_last", "thtl_all"]}}
    with pytest.raises(UserError) as err:
        cam.render(cfg)
    msg = str(err.value)
    assert "resnet18__thtl_all__fundus__s0__k0/best.pt" in msg
    assert "--model resnet18 --arm thtl_all --seed 0 --split 0 --domain fundus --ensure-checkpoint" in msg
    assert "onestep_last" not in msg  # only what is missing


def test_checkpoint_of_other_parameters_is_refused(case_set, tmp_path):
    from thtl_bench.engine import checkpoint

    _, _, cfg = case_set
    ck = tmp_path / "ck"
    src = cam.checkpoint_path(cfg["grid"]["checkpoints_dir"], _case("swft"))
    blob = checkpoint.load(src)
    blob["case_id"] = "0" * 12  # e.g. trained before the data were regenerated
    checkpoint.save(blob, cam.checkpoint_path(ck, _case("swft")))
    with pytest.raises(UserError, match="trained under other parameters.*--model resnet18 --arm swft --seed 0 "
                                        "--split 0 --domain fundus"):
        cam.load_case_model(cfg, _case("swft"), checkpoints_dir=ck)
    # the same weights under another replicate's name are another case: its best.pt is missing
    with pytest.raises(UserError, match=r"resnet18__swft__fundus__s0__k1/best.pt"):
        cam.load_case_model(cfg, Case("resnet18", "swft", 0, 1, "fundus"), checkpoints_dir=ck)


def test_cli_registers_cam_with_common_options():
    args = _cli_args(["cam.replicate=[1, 0]"], "--checkpoints", "elsewhere")
    assert args.command == "cam" and args.func is cam_cli._cmd
    assert args.checkpoints == "elsewhere" and args.overrides == ["cam.replicate=[1, 0]"]


# --------------------------------------------------------------------- figure: colour bar, marks


def _cam_rows(note: str | None = None) -> list[dict]:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    mask = np.zeros((32, 32), dtype=np.uint8)
    mask[:, 10:13] = 1
    maps = {g: rng.random((32, 32)).astype(np.float32) for g in ("layer1", "layer2")}
    return [{"label": "thtl_last", "image": image, "mask": mask, "maps": maps,
             "shares": {"layer1": 0.25, "layer2": None}, "true": "malignant", "pred": "benign", "prob": 0.62,
             "note": None},
            {"label": "swft", "image": image, "mask": None, "maps": maps, "shares": {"layer1": None, "layer2": None},
             "true": "malignant", "pred": "malignant", "prob": 0.91, "note": note}]


def _texts(fig) -> list[str]:
    from matplotlib.text import Text

    return [t.get_text() for t in fig.findobj(Text) if t.get_text()]


def test_cam_figure_has_colour_bar_scale_note_and_predictions():
    fig = cam.build_figure("LayerCAM · test", _cam_rows(), ["layer1", "layer2"])
    bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(bars) == 1
    assert bars[0].get_ylim() == pytest.approx((0.0, 1.0))
    assert "each map min-max scaled to [0, 1]" in " ".join(bars[0].get_ylabel().split())
    image_axes = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert len(image_axes) == 2 * 3  # rows x (input + one map per group)
    texts = _texts(fig)
    assert "true malignant\npred benign (0.62)" in texts and "true malignant\npred malignant (0.91)" in texts
    assert "layer1\nvessel mass 25%" in texts and "layer2\nvessel mass n/a" in texts
    assert not any("SWFT chose" in t for t in texts)


def test_cam_figure_marks_the_noted_row_only(tmp_path):
    note = "SWFT chose step 1\n= THTL last-layer weights"
    rows = _cam_rows(note)
    rows[1]["same_as"] = "thtl_last"
    fig = cam.build_figure("t", rows, ["layer1", "layer2"])
    image_axes = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    first, second = image_axes[:3], image_axes[3:]
    assert second[0].get_xlabel() == note and first[0].get_xlabel() == ""
    framed = {tuple(np.round(sp.get_edgecolor(), 3)) for ax in second for sp in ax.spines.values()}
    plain = {tuple(np.round(sp.get_edgecolor(), 3)) for ax in first for sp in ax.spines.values()}
    assert len(framed) == 1 and framed != plain
    from matplotlib.colors import to_rgba

    from thtl_bench.report import style

    assert framed == {tuple(np.round(to_rgba(style.arm_colour("thtl_last")), 3))}  # the arm it equals
    # the saved figure: same bytes twice, pixel size as built
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    cam._figure(a, "t", _cam_rows(note), ["layer1", "layer2"])
    cam._figure(b, "t", _cam_rows(note), ["layer1", "layer2"])
    assert a.read_bytes() == b.read_bytes()
    from PIL import Image

    assert Image.open(a).size == fig.canvas.get_width_height()  # no tight bbox: the size as built
    assert fig.canvas.get_width_height()[0] == style.pixel_size(1.0)[0] == 880


def _swft_record(cfg: dict, records_dir: Path, selected: int, case_id: str | None = None,
                 case: Case | None = None) -> Path:
    """A minimal valid SWFT record whose swft_steps say which step validation selected."""
    from thtl_bench import records
    from thtl_bench.engine import case_id as cid

    case = case or _case("swft")
    rec = {"schema": records.SCHEMA, "case_id": case_id or cid(cfg, case), "slug": case.slug, "status": "ok",
           "case": case.as_dict() | {"profile": "smoke"}, "config": {},
           "created": "2026-01-01T00:00:00+00:00",
           **{k: {} for k in ("data", "weights", "trainable", "metrics", "predictions", "timing", "env")},
           "history": [], "swft_steps": [{"step": k, "selected": k == selected} for k in (1, 2, 3)]}
    return records.write(records_dir, rec)


@pytest.mark.parametrize(("selected", "same_weights", "record_id", "note", "same_as"), [
    (1, True, None, "SWFT chose step 1\n= THTL last-layer weights", "thtl_last"),
    (1, False, None, "SWFT chose step 1\n(head only)", None),
    (3, True, None, None, None),
    (1, True, "0" * 12, None, None),  # a record of other parameters says nothing about these weights
    (None, True, None, None, None),  # no record
])
def test_render_marks_swft_rows_that_kept_step_1(case_set, monkeypatch, tmp_path, selected, same_weights,
                                                 record_id, note, same_as):
    tmp, _, cfg = case_set
    monkeypatch.chdir(tmp)
    cfg = {**cfg, "grid": {**cfg["grid"], "checkpoints_dir": str(tmp_path / "ck"),
                           "records_dir": str(tmp_path / "records")},
           "cam": {**cfg["cam"], "arms": ["thtl_last", "swft"], "fundus_example": False}}
    save_best(cfg, _case("swft"), init_seed=3)
    save_best(cfg, _case("thtl_last"), init_seed=3 if same_weights else 4)
    if selected is not None:
        _swft_record(cfg, tmp_path / "records", selected, record_id)
    drawn = []
    monkeypatch.setattr(cam, "_figure", lambda path, title, rows, groups: drawn.append(rows))
    cam.render(cfg)
    assert len(drawn) == 2  # one benign, one malignant image
    for rows in drawn:
        assert [r["label"] for r in rows] == ["thtl_last", "swft"]
        assert rows[0]["note"] is None and rows[1]["note"] == note
        assert rows[0]["same_as"] is None and rows[1]["same_as"] == same_as


# ------------------------------------------------------------------- cases: replicate, domains


def test_cam_cases_one_row_per_arm_and_intermediate_domain():
    cfg = {"cam": {"model": "resnet18", "replicate": [2, 1], "domains": ["fundus", "angio"],
                   "arms": ["onestep_last", "thtl_last", "swft"]}}
    cases = cam.cam_cases(cfg)
    # target-only arms once (no domain); THTL arms once per domain, labelled with it
    assert cases == {"onestep_last": Case("resnet18", "onestep_last", 2, 1),
                     "thtl_last [fundus]": Case("resnet18", "thtl_last", 2, 1, "fundus"),
                     "thtl_last [angio]": Case("resnet18", "thtl_last", 2, 1, "angio"),
                     "swft [fundus]": Case("resnet18", "swft", 2, 1, "fundus"),
                     "swft [angio]": Case("resnet18", "swft", 2, 1, "angio")}
    one = cam.cam_cases({"cam": {**cfg["cam"], "domains": ["angio"]}})
    assert one == {"onestep_last": Case("resnet18", "onestep_last", 2, 1),
                   "thtl_last": Case("resnet18", "thtl_last", 2, 1, "angio"),
                   "swft": Case("resnet18", "swft", 2, 1, "angio")}  # one domain: plain arm labels


def test_swft_note_compares_with_the_last_layer_arm_of_its_own_domain(monkeypatch, tmp_path):
    # Two intermediate domains: each SWFT row that kept step 1 is "= THTL last-layer weights" only
    # when ITS domain's last-layer weights are identical, whatever the other domain's are.
    cfg = {"grid": {"records_dir": str(tmp_path / "records")},
           "cam": {"model": "resnet18", "replicate": [0, 0], "domains": ["fundus", "angio"],
                   "arms": ["thtl_last", "swft"]}}
    monkeypatch.setattr(cam, "case_id", lambda cfg, case: f"id-{case.slug}")
    cases = cam.cam_cases(cfg)
    for d in ("fundus", "angio"):
        c = Case("resnet18", "swft", 0, 0, d)
        _swft_record(cfg, tmp_path / "records", 1, case_id=f"id-{c.slug}", case=c)
    digests = {"thtl_last [fundus]": "A", "swft [fundus]": "B", "thtl_last [angio]": "B", "swft [angio]": "B"}
    notes = cam._swft_notes(cfg, cases, digests)
    assert notes == {"swft [fundus]": ("SWFT chose step 1\n(head only)", None),
                     "swft [angio]": ("SWFT chose step 1\n= THTL last-layer weights", "thtl_last [angio]")}
