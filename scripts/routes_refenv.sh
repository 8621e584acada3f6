#!/usr/bin/env bash
# A venv for scripts/make_routes_fixtures.py and benchmarks/bench_contrib.py's routes reference:
# torch 2.13.0 CPU with transformers (and accelerate, gguf for SmolLM2's GGUF file), plus what
# facebookresearch/llm-transparency-tool's routes code imports: einops, jaxtyping, networkx and
# typeguard 2.13.3 (typeguard 4 cannot read jaxtyping's string annotations). Apart from .refenv,
# which stays as scripts/refenv.sh makes it. With pip, as refenv.sh: pip takes the CPU build of torch.
#
#   bash scripts/routes_refenv.sh            # makes .routes-refenv ($ATTN_ROUTES_REFENV to put it elsewhere)
#   git clone https://github.com/facebookresearch/llm-transparency-tool /tmp/ltt   # the code it runs (f1340f0)
#   .routes-refenv/bin/python scripts/make_routes_fixtures.py --tool /tmp/ltt --smollm2 PATH/SmolLM2-135M-Instruct.Q4_1.gguf
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ENV="${ATTN_ROUTES_REFENV:-$ROOT/.routes-refenv}"
[ -x "$ENV/bin/python" ] || python3 -m venv "$ENV"
"$ENV/bin/python" -m pip install --quiet "torch==2.13.0"
"$ENV/bin/python" -m pip install --quiet transformers accelerate "gguf==0.19.0" numpy einops jaxtyping networkx "typeguard==2.13.3"
"$ENV/bin/python" -c "import torch; assert torch.__version__.split('+')[0] == '2.13.0', torch.__version__"
echo "routes refenv: $ENV" >&2
