#!/usr/bin/env bash
# Create (if missing) a throwaway *reference* virtualenv holding torch,
# transformers, accelerate and gguf (transformers' GGUF loader needs both), sentencepiece
# (transformers' MarianTokenizer: scripts/make_opus_mt_fixture.py) and the
# packaged all-MiniLM-L6-v2 model files. It is only used to (re)generate the
# reference fixtures (scripts/make_*.py); the project itself never needs it.
#
# Uses pip on purpose (not uv): pip picks the CPU-only torch wheel from the
# local wheel dir in PIP_FIND_LINKS, uv would pull a multi-GB CUDA build.
#
# Location: ${ATTN_REFENV:-.refenv}, relative to the repo root (gitignored).
# Idempotent: re-running only installs what is missing. Prints the venv's
# python path as its last line.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

REFENV="${ATTN_REFENV:-.refenv}"
case "$REFENV" in
  /*) ;;
  *) REFENV="$ROOT/$REFENV" ;;
esac

TORCH_VERSION="2.13.0"
PY="$REFENV/bin/python"

if [ ! -x "$PY" ]; then
  echo "refenv: creating virtualenv at $REFENV" >&2
  python3 -m venv "$REFENV"
fi

# Already complete? Then nothing to install.
if "$PY" - "$TORCH_VERSION" >/dev/null 2>&1 <<'PYEOF'
import sys, importlib.metadata as md
assert md.version("torch").split("+")[0] == sys.argv[1]
md.version("transformers"); md.version("numpy"); md.version("accelerate"); md.version("gguf"); md.version("sentencepiece")
PYEOF
then
  echo "refenv: already complete" >&2
else
  echo "refenv: installing torch==$TORCH_VERSION transformers accelerate gguf numpy sentencepiece" >&2
  "$PY" -m pip install --quiet "torch==$TORCH_VERSION" transformers accelerate gguf numpy sentencepiece
fi

echo "$PY"
