#!/usr/bin/env bash
# The GPU checks as one prepared run (about 10 minutes on an H200; results under $OUT, default gpu_out/):
# the CuPy-only tests and the whole suite on CuPy, the step benchmark beside PyTorch, the main command.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
pip install -q -e '.[test]' 2>&1 | tail -2
python -c "import cupy; print('cupy', cupy.__version__, cupy.cuda.runtime.getDeviceProperties(0)['name'])" | tee "$OUT/device.txt"
# 1. the GPU pieces against the plain path (Philox, Adam and EMA kernels, cuBLAS GEMM, the graph step)
timeout 120 python -m pytest -q -p no:cacheprovider tests/test_cuda.py 2>&1 | tee "$OUT/test_cuda.txt" | tail -15
# 2. every array test on both backends
timeout 300 python -m pytest -q -p no:cacheprovider -x 2>&1 | tee "$OUT/suite.txt" | tail -15
# 3. iterations per second: tinygan eager and graph against PyTorch eager and CUDA graph
timeout 240 python benchmarks/bench_step.py --backend cupy --presets seed,deep --batches 64,256,1024 --threads 1 \
    --json "$OUT/bench.json" 2>&1 | tee "$OUT/bench.txt" | tail -25
# 4. the design's main command on the GPU, timed
/usr/bin/time -f "%e s wall" timeout 200 python examples/train_mnist.py --backend cupy --preset deep --conditional \
    --out "$OUT/cond" 2>&1 | tr '\r' '\n' | grep -v "it/s" | tee "$OUT/train.txt" | tail -8
# 5. the same with the captured step
/usr/bin/time -f "%e s wall" timeout 200 python examples/train_mnist.py --backend cupy --cuda-graph --preset deep \
    --conditional --out "$OUT/cond_graph" 2>&1 | tr '\r' '\n' | grep -v "it/s" | tee "$OUT/train_graph.txt" | tail -8
