"""The model vocabulary without torch (thtl_bench.catalog): the library names read from source are
the libraries' own lists, and `model_known` says what the model registry says."""

from __future__ import annotations

import subprocess
import sys

import pytest

from thtl_bench import catalog


def test_library_names_are_the_libraries_own_lists():
    import timm
    import torchvision.models as tvm

    assert catalog.library_names("torchvision") == frozenset(tvm.list_models(module=tvm))
    assert catalog.library_names("timm") == frozenset(timm.list_models())


NAMES = ["resnet18", "efficientnet_lite0", "tv:resnet34", "torchvision:resnet34", "timm:resnet10t", "resnet10t",
         "timm:resnet10t.c3_in1k", "mobilenet_v3_small", "test_vit", " resnet18 ",
         "efficientnet_lit0", "resnt18", "tv:resnet10t", "timm:resnet18x", "foo:resnet18", "tv:", "fasterrcnn_resnet50_fpn"]


@pytest.mark.parametrize("name", NAMES)
def test_model_known_agrees_with_the_registry(name):
    from thtl_bench import models
    from thtl_bench.models.registry import UnknownModel

    try:
        models.get(name)
        accepted = True
    except UnknownModel:
        accepted = False
    assert catalog.model_known(name) is accepted


def test_the_vocabulary_check_imports_no_torch():
    code = ("import sys; from thtl_bench import catalog; assert catalog.model_known('timm:resnet10t'); "
            "assert catalog.model_known('efficientnet_lit0') is False; "
            "assert not {'torch', 'torchvision', 'timm'} & set(sys.modules), sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_an_absent_library_leaves_its_names_to_the_registry(monkeypatch):
    monkeypatch.setattr(catalog, "library_names", lambda lib: None if lib == "timm" else frozenset({"resnet18"}))
    assert catalog.model_known("timm:anything") is None and catalog.model_known("anything") is None
    assert catalog.model_known("tv:anything") is False and catalog.model_known("resnet18") is True


def test_the_message_names_every_unknown_name_with_its_nearest_and_the_vocabulary():
    text = catalog.unknown_models_text(["efficientnet_lit0", "zzzz"])
    assert "'efficientnet_lit0' (did you mean efficientnet_lite0" in text and "'zzzz';" in text
    assert ", ".join(catalog.MODELS) in text
