"""Helpers shared by the scripts that record reference tensors from transformers.

They run in the reference virtualenv (torch + transformers; `bash scripts/refenv.sh`), never in
attn's own environment. Sibling scripts import this module by name (scripts/ is on sys.path
when a script of it runs).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import math
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import transformers
from safetensors import safe_open

REPO_ROOT = Path(__file__).resolve().parent.parent


def versions_string() -> str:
    return f"torch={torch.__version__.split('+')[0]} transformers={transformers.__version__}"


def quiet_torch() -> None:
    """The fixture scripts' torch: one thread, no gradients, no progress bars or warnings."""
    torch.set_num_threads(1)
    torch.set_grad_enabled(False)
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """A float32 NumPy copy of a tensor of any float dtype."""
    return t.to(torch.float32).numpy().copy()


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Like np.savez_compressed, but with fixed zip timestamps (byte-reproducible)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asanyarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())


@contextlib.contextmanager
def capture(module_name: str) -> Iterator[dict[str, list]]:
    """Wrap the modeling module's `eager_attention_forward` (and `apply_rotary_pos_emb`)
    to record the exact tensors entering Q.K^T, the mask and the scaling."""
    mod = importlib.import_module(f"transformers.models.{module_name}.modeling_{module_name}")
    rec: dict[str, list] = {k: [] for k in ("q", "k", "v", "mask", "scaling", "q_pre_rope", "k_pre_rope", "softcap", "position_bias")}
    if not hasattr(mod, "eager_attention_forward"):  # MPNet: its attention is inline, in MPNetSelfAttention
        with _capture_mpnet(mod, rec):
            yield rec
        return
    orig_eager = mod.eager_attention_forward

    def eager(module, query, key, value, attention_mask, *args, **kwargs):
        scaling = kwargs["scaling"] if "scaling" in kwargs else args[0]
        rec["q"].append(query.detach()[0].clone())
        rec["k"].append(key.detach()[0].clone())
        rec["v"].append(value.detach()[0].clone())
        rec["mask"].append(None if attention_mask is None else attention_mask.detach()[0, 0].clone())
        rec["scaling"].append(scaling)
        rec["softcap"].append(kwargs.get("softcap"))  # Gemma 2's cap on the scaled scores
        return orig_eager(module, query, key, value, attention_mask, *args, **kwargs)

    patches = {"eager_attention_forward": eager}
    if hasattr(mod, "apply_rotary_pos_emb"):
        orig_rope = mod.apply_rotary_pos_emb

        def rope(q, k, cos, sin, *args, **kwargs):
            rec["q_pre_rope"].append(q.detach()[0].clone())
            rec["k_pre_rope"].append(k.detach()[0].clone())
            return orig_rope(q, k, cos, sin, *args, **kwargs)

        patches["apply_rotary_pos_emb"] = rope
    saved = {k: getattr(mod, k) for k in patches}
    try:
        for k, fn in patches.items():
            setattr(mod, k, fn)
        yield rec
    finally:
        for k, fn in saved.items():
            setattr(mod, k, fn)


@contextlib.contextmanager
def _capture_mpnet(mod, rec: dict[str, list]) -> Iterator[None]:
    """MPNet's self-attention computes q, k, v, the scaling and the relative position bias in
    its own forward: record them from the same modules and arguments, then run it unchanged."""
    cls = mod.MPNetSelfAttention
    orig = cls.forward

    def forward(self, hidden_states, attention_mask=None, position_bias=None, *args, **kwargs):
        shape = (*hidden_states.shape[:-1], -1, self.attention_head_size)
        for key, linear in (("q", self.q), ("k", self.k), ("v", self.v)):
            rec[key].append(linear(hidden_states).view(shape).transpose(1, 2).detach()[0].clone())
        rec["mask"].append(None if attention_mask is None else attention_mask.detach()[0, 0].clone())
        rec["scaling"].append(1 / math.sqrt(self.attention_head_size))
        rec["position_bias"].append(None if position_bias is None else position_bias.detach()[0].clone())
        return orig(self, hidden_states, attention_mask, position_bias, *args, **kwargs)

    cls.forward = forward
    try:
        yield
    finally:
        cls.forward = orig


def allowed_mask(seq: int, causal: bool, window: int | None) -> np.ndarray:
    """[q, kv] True where attention is allowed (transformers 5.23 rule); an encoder's window is
    two-sided (ModernBERT's local layers: |q - kv| < window)."""
    q = np.arange(seq)[:, None]
    kv = np.arange(seq)[None, :]
    allowed = np.ones((seq, seq), dtype=bool)
    if causal:
        allowed &= kv <= q
    if window is not None:
        allowed &= (kv > q - window) if causal else (np.abs(q - kv) < window)
    return allowed


def check_reference(name: str, causal: bool, window, arrays: dict, masks: list) -> dict[str, float]:
    """Sanity checks of recorded attention: rows sum to 1, masked keys get 0, and softmax(q·k·scaling)
    recomputed from the recorded q and k equals the recorded weights. `window`: None, a window
    for every layer, or a tuple of per-layer windows (None for a global layer, as in Gemma 3)."""
    att = arrays["attentions"].astype(np.float64)
    layers, heads, seq, _ = att.shape
    windows = window if isinstance(window, tuple) else (window,) * layers
    allowed = np.stack([allowed_mask(seq, causal, w) for w in windows])[:, None]  # (layers, 1, q, kv)
    for layer, m in enumerate(masks):
        if m is None:
            assert not causal, name
        else:
            m = m.numpy()
            assert np.array_equal(m == 0, allowed[layer, 0]), f"{name}: captured mask differs from the documented rule"
            assert np.all(m[~allowed[layer, 0]] == np.finfo(np.float32).min), name
    row_sum_dev = float(np.abs(att.sum(-1) - 1.0).max())
    allowed = np.broadcast_to(allowed, att.shape)
    masked_max = float(np.abs(att[~allowed]).max()) if (~allowed).any() else 0.0

    q = arrays["q"].astype(np.float64)
    k = arrays["k"].astype(np.float64)
    kv_heads = k.shape[1]
    group = heads // kv_heads
    k_rep = np.repeat(k, group, axis=1)  # query head h uses kv head h // group
    scores = np.einsum("lhqd,lhkd->lhqk", q, k_rep) * float(arrays["scaling"])
    if "position_bias" in arrays:  # MPNet: the relative position term, shared by every layer
        scores = scores + arrays["position_bias"].astype(np.float64)[None]
    if "softcap" in arrays:  # Gemma 2: cap·tanh(s/cap) before the mask
        scores = np.tanh(scores / float(arrays["softcap"])) * float(arrays["softcap"])
    scores = np.where(allowed, scores, -np.inf)
    scores -= scores.max(-1, keepdims=True)
    p = np.exp(scores)
    p /= p.sum(-1, keepdims=True)
    softmax_dev = float(np.abs(p - att).max())

    # typical peakiness: row maxima over rows that can see >= 4 keys
    rows = allowed.sum(-1) >= 4
    row_max = att.max(-1)[rows]
    return {
        "row_sum_dev": row_sum_dev,
        "masked_max": masked_max,
        "softmax_dev": softmax_dev,
        "row_max_median": float(np.median(row_max)),
        "row_max_p90": float(np.quantile(row_max, 0.9)),
        "rows_gt_0.99": float((row_max > 0.99).mean()),
    }


def safetensors_keys(dest: Path) -> list[str]:
    keys: list[str] = []
    for f in sorted(dest.glob("*.safetensors")):
        with safe_open(str(f), framework="np") as st:
            keys.extend(st.keys())
    return sorted(keys)


def safetensors_dtypes(dest: Path) -> set[str]:
    dtypes: set[str] = set()
    for f in sorted(dest.glob("*.safetensors")):
        raw = f.read_bytes()
        n = int.from_bytes(raw[:8], "little")
        header = json.loads(raw[8 : 8 + n])
        dtypes |= {v["dtype"] for k, v in header.items() if k != "__metadata__"}
    return dtypes
