"""Decode attention over the compressed cache vs PyTorch fp16 SDPA, same process, same GPU.

python3 bench/bench_attn.py [--quick]     (make gpu-bench runs it; needs build/libkvtc_bench_attn.so and torch)
SDPA gets contiguous fp16 K/V [batch, kv_heads, ctx, d] and enable_gqa; kvtc reads a paged cache (block 16).
Times are CUDA-event medians (p10-p90) of 30 runs after 5 warm-ups; caches exceed L2, so L2 is not scrubbed.
"""
import ctypes, datetime, os, subprocess, sys
import torch
import torch.nn.functional as F

lib = ctypes.CDLL(os.path.join(os.path.dirname(__file__), "..", "build", "libkvtc_bench_attn.so"))
MSE, PROD, AFFINE = 1, 2, 3

def kvtc_us(b, hq, hkv, d, ctx, km, kb, vm, vb, reps=30):
    us, p10, p90, by = (ctypes.c_double() for _ in range(4))
    splits = ctypes.c_int()
    rc = lib.kvtc_bench_attn(b, hq, hkv, d, ctx, km, kb, vm, vb, reps, ctypes.byref(us), ctypes.byref(p10),
                             ctypes.byref(p90), ctypes.byref(by), ctypes.byref(splits))
    if rc:
        raise RuntimeError(f"kvtc_bench_attn failed ({rc})")
    return us.value, p10.value, p90.value, by.value, splits.value

def sdpa_us(b, hq, hkv, d, ctx, reps=30):
    q = torch.randn(b, hq, 1, d, device="cuda", dtype=torch.float16)
    k = torch.randn(b, hkv, ctx, d, device="cuda", dtype=torch.float16)
    v = torch.randn(b, hkv, ctx, d, device="cuda", dtype=torch.float16)
    t = []
    for i in range(reps + 5):
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        e0.record()
        F.scaled_dot_product_attention(q, k, v, enable_gqa=True)
        e1.record()
        torch.cuda.synchronize()
        if i >= 5:
            t.append(e0.elapsed_time(e1) * 1e3)
    del q, k, v
    torch.cuda.empty_cache()
    t.sort()
    return t[len(t) // 2], t[len(t) // 10], t[len(t) * 9 // 10]

def main():
    quick = "--quick" in sys.argv
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(f"# decode attention, {datetime.date.today()}, {torch.cuda.get_device_name()}, torch {torch.__version__}, "
          f"CUDA {torch.version.cuda}, commit {commit or 'n/a'}\n")
    print("| q/kv heads | d | batch | context | K/V | kvtc us (p10-p90) | splits | GB/s | SDPA fp16 us | speed-up |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    configs = [("K4/V4", MSE, 4, MSE, 4), ("K4/V2", MSE, 4, MSE, 2), ("K2/V2", MSE, 2, MSE, 2), ("K8/V4", MSE, 8, MSE, 4)]
    shapes = [(32, 8, 128, b, c) for b in (1, 8, 32) for c in (4096, 32768, 131072)]
    shapes += [(9, 3, 64, 8, 32768), (32, 8, 96, 8, 32768)]
    if quick:
        shapes = [(32, 8, 128, 8, 32768), (32, 8, 128, 1, 4096)]
    for hq, hkv, d, b, ctx in shapes:
        base = sdpa_us(b, hq, hkv, d, ctx)
        for name, km, kb, vm, vb in (configs if d == 128 else configs[:1]):
            us, p10, p90, by, ns = kvtc_us(b, hq, hkv, d, ctx, km, kb, vm, vb)
            print(f"| {hq}/{hkv} | {d} | {b} | {ctx} | {name} | {us:.1f} ({p10:.1f}-{p90:.1f}) | {ns} | {by / us / 1e3:.0f} "
                  f"| {base[0]:.1f} | {base[0] / us:.2f}x |", flush=True)

if __name__ == "__main__":
    main()
