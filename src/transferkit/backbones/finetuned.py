"""The backbone a fine-tuned model file holds: rebuilt from its spec and its own weights, checked."""

from __future__ import annotations

import numpy as np

from ..errors import TransferkitError, first_line


def finetuned_backbone(model, origin: str):
    """The backbone a fine-tuned model holds: the architecture built without downloading anything, its
    weights read from the model file, checked against the recorded ``weights_sha256``; features averaged
    over each picture and its mirror image when the spec records ``"tta": "hflip"``, over the five crops
    and their mirror images with ``"ten-crop"`` (files without it: plain features, as before)."""
    import torch

    from .registry import create_backbone
    from .weights import state_dict_sha256

    spec = model.backbone
    backbone = create_backbone(spec["model"], weights="random", layer=spec.get("layer"), pool=spec.get("pool"),
                               preprocess=spec.get("preprocess"))
    state = {k: torch.from_numpy(np.asarray(v)) for k, v in model.backbone_state.items()}
    try:
        backbone.net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise TransferkitError(f"{origin}: its fine-tuned backbone does not fit {spec['model']} "
                               f"({first_line(exc, 160)})") from None
    backbone.net.eval()
    sha = state_dict_sha256(backbone.net)
    if spec.get("weights_sha256") and sha != spec["weights_sha256"]:
        raise TransferkitError(f"{origin}: its fine-tuned backbone weights hash to {sha[:12]}…, "
                               f"not the recorded {spec['weights_sha256'][:12]}… (the file was changed)")
    backbone.weights, backbone.weights_sha256 = spec.get("weights", "finetuned"), sha
    backbone.weights_source = spec.get("weights_source", "")
    # test-time augmentation recorded by finetune: inside the features module, so every engine has it
    from .modules import TTAS, with_tta

    tta = spec.get("tta")
    if tta and tta not in TTAS:
        raise TransferkitError(f"{origin}: its backbone asks for test-time augmentation {tta!r}, which this "
                               f"transferkit does not know (it knows {', '.join(TTAS)}); upgrade transferkit")
    if (tta == "ten-crop") != backbone.preprocess.five_crop:
        raise TransferkitError(f"{origin}: its backbone's test-time augmentation {tta!r} does not match its "
                               "preprocessing (five crops side by side go with ten-crop, and only with it)")
    if tta:
        backbone.features, backbone.tta = with_tta(backbone.features, tta), tta
    return backbone
