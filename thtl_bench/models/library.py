"""The unstaged torchvision / timm model, as the registry builds it and the weights loader checks it."""

from __future__ import annotations

from torch import nn

from thtl_bench.models.spec import ModelSpec


def library_model(spec: ModelSpec, num_classes: int, image_size: int = 224, pretrained_layout: bool = False) -> nn.Module:
    """The unstaged torchvision/timm model as `build` creates it (tests compare the stage chain to it).

    pretrained_layout skips the random init that ImageNet weights overwrite anyway.
    """
    if spec.library == "torchvision":
        import torchvision.models as tvm

        kwargs: dict = {}
        if spec.arch == "googlenet":
            # aux heads are training-only extras not in our stage chain; transform_input is what the
            # ImageNet weights expect and is kept on for every init so both inits share one graph.
            kwargs = dict(aux_logits=False, transform_input=True, init_weights=not pretrained_layout)
        if spec.fixed_size:
            kwargs["image_size"] = image_size
        return tvm.get_model(spec.arch, weights=None, num_classes=num_classes, **kwargs)
    import timm

    return timm.create_model(spec.arch, pretrained=False, num_classes=num_classes)
