"""attn: see what self-attention does inside a real transformer.

The package is laid out as the pipeline runs, each layer importing only the ones above it:

    maths/    pure NumPy: norms, GELU, RoPE, softmax, attention; word level, rollout, norms
    models/   one forward pass per architecture, over a `Weights` it is given
    loading/  model files → `Model`: safetensors, tokenizers, folders, the hub cache, the catalog
    compute/  what each command computes and keeps: one result type per command
    views/    the terminal (Rich) views, plots and their palette
    cli/      the Typer commands; `api` is the same for Python

For notebooks: `import attn_cli as attn; attn.inspect(attn.load_model(), "The cat sat.", query="cat")`
(see `attn_cli.api`). Names are loaded on first use, so `import attn_cli` stays cheap.
"""

__version__ = "0.1.0"

_API = (
    "AblateResult",
    "CompareResult",
    "GenerateResult",
    "HeadsResult",
    "HeadEdit",
    "InspectResult",
    "Interventions",
    "KnockoutResult",
    "Knockout",
    "LensResult",
    "Model",
    "PageResult",
    "RolloutResult",
    "RoutesResult",
    "StatsResult",
    "Tokenization",
    "ValueZeroing",
    "ablate",
    "compare",
    "generate",
    "heads",
    "inspect",
    "knockout",
    "lens",
    "load_model",
    "page",
    "rollout",
    "show",
    "routes",
    "stats",
    "tokenize",
)
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'attn_cli' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
