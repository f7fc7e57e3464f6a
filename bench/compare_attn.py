"""Decode attention of several builds of the library in one process, against fp16 SDPA in the same run.

python3 bench/compare_attn.py NAME=LIB.so [NAME=LIB.so ...]
Each LIB is bench/bench_attn_lib.cu built from some tree (e.g. the previous commit's); timing as in
bench_attn.py (CUDA-graph replays, medians). Shapes: 32/8 heads, d = 128, K4/V4; batch 1 / 4K also at
forced split counts 8 and 32, and batch 1 / 32K at 16, for every library but the first (the baseline).
"""
import ctypes, os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ["KVTC_BENCH_LIB"] = sys.argv[1].split("=")[1]
import bench_attn as B

libs = {a.split("=")[0]: ctypes.CDLL(a.split("=")[1]) for a in sys.argv[1:]}
first = next(iter(libs))
print("| shape | K/V | lib | n_split | us (p10-p90) | splits | SDPA us | x SDPA |")
print("|---|---|---|---|---|---|---|---|")
forced = {(1, 4096): (0, 8, 32), (1, 32768): (0, 16)}  # split counts tried on every library but the first
for b, ctx in ((1, 4096), (1, 32768), (8, 4096), (8, 32768), (32, 4096)):
    base = B.sdpa_us(b, 32, 8, 128, ctx)[0]
    for name in libs:
        B.lib = libs[name]
        for ns in (forced.get((b, ctx), (0,)) if name != first else (0,)):
            us, p10, p90, by, s, tc = B.kvtc_us(b, 32, 8, 128, ctx, B.MSE, 4, B.MSE, 4, B.DEFAULT, ns)
            print(f"| {b}/{ctx} | K4/V4 | {name} | {ns or 'auto'} | {us:.2f} ({p10:.2f}-{p90:.2f}) | {s} | {base:.2f} | "
                  f"{base / us:.3f}x |", flush=True)
