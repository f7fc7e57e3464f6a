"""Decode attention over the compressed cache vs PyTorch fp16 SDPA, same process, same GPU.

python3 bench/bench_attn.py [--quick]     (make gpu-bench runs it; needs build/libkvtc_bench_attn.so and torch)
SDPA gets contiguous fp16 K/V [batch, kv_heads, ctx, d] and enable_gqa; kvtc reads a paged cache (block 16).
Both sides are timed the same way: 20 calls captured in one CUDA graph (so launch overhead does not count),
CUDA events around each graph launch, median (p10-p90) of 30 launches after 3 warm-ups, per-call time =
launch time / 20. Caches exceed L2 at >= 32K tokens, so L2 is not scrubbed.
"""
import ctypes, datetime, os, subprocess, sys
import torch
import torch.nn.functional as F

lib = ctypes.CDLL(os.environ.get("KVTC_BENCH_LIB") or os.path.join(os.path.dirname(__file__), "..", "build", "libkvtc_bench_attn.so"))
MSE, PROD, AFFINE = 1, 2, 3
DEFAULT, SCALAR, TENSOR = 0, 1, 2
INNER, REPS = 20, 30


def kvtc_us(b, hq, hkv, d, ctx, km, kb, vm, vb, kernel, n_split=0, n_exact=0):
    us, p10, p90, by = (ctypes.c_double() for _ in range(4))
    splits, tensor = ctypes.c_int(), ctypes.c_int()
    rc = lib.kvtc_bench_attn(b, hq, hkv, d, ctx, km, kb, vm, vb, kernel, n_split, n_exact, REPS, ctypes.byref(us), ctypes.byref(p10),
                             ctypes.byref(p90), ctypes.byref(by), ctypes.byref(splits), ctypes.byref(tensor))
    if rc:
        raise RuntimeError(f"kvtc_bench_attn failed ({rc})")
    return us.value, p10.value, p90.value, by.value, splits.value, tensor.value


def sdpa_us(b, hq, hkv, d, ctx):
    q = torch.randn(b, hq, 1, d, device="cuda", dtype=torch.float16)
    k = torch.randn(b, hkv, ctx, d, device="cuda", dtype=torch.float16)
    v = torch.randn(b, hkv, ctx, d, device="cuda", dtype=torch.float16)
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):  # warm up outside the graph
        for _ in range(3):
            F.scaled_dot_product_attention(q, k, v, enable_gqa=True)
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for _ in range(INNER):
            F.scaled_dot_product_attention(q, k, v, enable_gqa=True)
    t = []
    for i in range(REPS + 3):
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        e0.record()
        g.replay()
        e1.record()
        torch.cuda.synchronize()
        if i >= 3:
            t.append(e0.elapsed_time(e1) * 1e3 / INNER)
    del g, q, k, v
    torch.cuda.empty_cache()
    t.sort()
    return t[len(t) // 2], t[len(t) // 10], t[len(t) * 9 // 10], 2 * b * hkv * ctx * d * 2


def split_scan():
    """kvtc_cuda_attn_decode at forced split counts, to check the automatic choice."""
    print("| shape | K/V | n_split | us | auto n_split | auto us |")
    print("|---|---|---|---|---|---|")
    for b, ctx in ((1, 4096), (1, 32768), (8, 4096), (8, 32768)):
        auto = kvtc_us(b, 32, 8, 128, ctx, MSE, 4, MSE, 4, DEFAULT)
        for ns in (1, 2, 4, 8, 16, 32, 64):
            r = kvtc_us(b, 32, 8, 128, ctx, MSE, 4, MSE, 4, DEFAULT, ns)
            print(f"| b={b} ctx={ctx} | K4/V4 | {r[4]} | {r[0]:.1f} | {auto[4]} | {auto[0]:.1f} |", flush=True)


def main():
    if "--splits" in sys.argv:
        return split_scan()
    quick = "--quick" in sys.argv
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True).stdout.strip()
    print(f"# decode attention, {datetime.date.today()}, {torch.cuda.get_device_name()}, torch {torch.__version__}, "
          f"CUDA {torch.version.cuda}, commit {commit or 'n/a'}{' + local changes' if dirty else ''}\n")
    print("| q/kv heads | d | batch | context | K/V | kvtc us (p10-p90) | kernel | splits | GB/s | scalar kernel us "
          "| SDPA fp16 us | SDPA GB/s | speed-up vs SDPA |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    configs = [("K4/V4", MSE, 4, MSE, 4), ("K4/V2", MSE, 4, MSE, 2), ("K2/V2", MSE, 2, MSE, 2), ("K8/V4", MSE, 8, MSE, 4)]
    shapes = [(32, 8, 128, b, c) for b in (1, 8, 32) for c in (4096, 32768, 131072)]
    shapes += [(9, 3, 64, 8, 32768), (32, 8, 96, 8, 32768), (32, 8, 256, 8, 32768)]
    if quick:
        shapes = [(32, 8, 128, 8, 32768), (32, 8, 128, 1, 4096)]
    for hq, hkv, d, b, ctx in shapes:
        base = sdpa_us(b, hq, hkv, d, ctx)
        for name, km, kb, vm, vb in (configs if d == 128 else configs[:1]):
            us, p10, p90, by, ns, tensor = kvtc_us(b, hq, hkv, d, ctx, km, kb, vm, vb, DEFAULT)
            sc = kvtc_us(b, hq, hkv, d, ctx, km, kb, vm, vb, SCALAR)[0] if tensor else us
            print(f"| {hq}/{hkv} | {d} | {b} | {ctx} | {name} | {us:.1f} ({p10:.1f}-{p90:.1f}) | "
                  f"{'tensor' if tensor else 'scalar'} | {ns} | {by / us / 1e3:.0f} | {sc:.1f} | {base[0]:.1f} | "
                  f"{base[3] / base[0] / 1e3:.0f} | {base[0] / us:.2f}x |", flush=True)
    # sinks and a recent window in fp16 beside the compressed tokens: the same context, 4 + 128 of it exact
    print("\n| q/kv heads | d | batch | context | K/V | exact fp16 tokens | kvtc us (p10-p90) | without exact tokens us "
          "| SDPA fp16 us | speed-up vs SDPA |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for b, ctx in ((8, 32768), (1, 4096)) if quick else ((1, 4096), (8, 32768), (32, 32768)):
        base = sdpa_us(b, 32, 8, 128, ctx)
        for name, km, kb, vm, vb in configs[:2]:
            plain = kvtc_us(b, 32, 8, 128, ctx, km, kb, vm, vb, DEFAULT)[0]
            us, p10, p90 = kvtc_us(b, 32, 8, 128, ctx - 132, km, kb, vm, vb, DEFAULT, 0, 132)[:3]
            print(f"| 32/8 | 128 | {b} | {ctx} | {name} | 132 | {us:.1f} ({p10:.1f}-{p90:.1f}) | {plain:.1f} | "
                  f"{base[0]:.1f} | {base[0] / us:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
