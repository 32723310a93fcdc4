#!/usr/bin/env bash
# Here, before a GPU session: put inside the checkout what benchmarks/gpu_check.py needs on the GPU
# machine, which has torch but no Hydra and no network (see /work/shared/gpu-notes.md):
# .whl/ (hydra-core, omegaconf, antlr4, submitit, the submitit launcher, pytest) and .bench_data/
# (Fashion-MNIST's four .gz files). Both are git-ignored: name them in the device call's carry.
# The joblib and Optuna plugin wheels: ganlab registers its launchers and sweeper built on them at start-up.
set -euo pipefail
cd "$(dirname "$0")/.."
exclude=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$exclude")"
for path in /.whl/ /.bench_data/; do
  grep -qxF "$path" "$exclude" 2>/dev/null || echo "$path" >> "$exclude"
done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux2014_x86_64 -d .whl \
  hydra-core==1.3.8 omegaconf==2.3.1 submitit==1.5.4 hydra-submitit-launcher==1.2.0 \
  hydra-joblib-launcher==1.2.0 hydra-optuna-sweeper==1.3.0 \
  pytest==9.2.0 pluggy==1.7.0 iniconfig==2.3.1 packaging==26.4   # pytest: tests/test_step.py's CUDA tests
python3 -m pip wheel -q --no-deps antlr4-python3-runtime==4.9.3 -w .whl   # PyPI has only its sdist
mkdir -p .bench_data
cp "${1:-/usr/share/datasets/fashion-mnist}"/*-ubyte.gz .bench_data/
du -sh .whl .bench_data
cat <<'MSG'
Device call (carry: [".whl", ".bench_data"], timeout_s: 570):
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD && python3 benchmarks/gpu_check.py --root .bench_data
MSG
