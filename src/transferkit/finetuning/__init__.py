"""Fine-tuning the top of the backbone when frozen features plateau: ``finetune(DATA, MODEL)``.

:mod:`.data` (split, validation part, augmentation, threaded decoding), :mod:`.model` (the network cut
into a frozen and a trainable part, the head, rebuilding a fine-tuned backbone from a model file),
:mod:`.checkpoint` (the per-epoch checkpoint) and :mod:`.loop` (the LP-FT loop). See docs/finetune.md.
"""

from .loop import FinetuneResult, finetune

__all__ = ["FinetuneResult", "finetune"]
