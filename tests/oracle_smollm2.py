#!/usr/bin/env python3
"""Oracle check of examples/smollm2.c against independent implementations.

1. llama.cpp (through llama-cpp-python): token ids of several texts (must be
   identical) and last-position logits of a few prompts (max abs difference).
   llama.cpp multiplies Q4_1/Q8_0 weights with activations quantized to 8 bits,
   so its logits differ from exact fp32 arithmetic by that rounding.
2. llama.cpp again, on an F32 copy of the model (every tensor dequantized by the
   `gguf` package and written back as F32, so llama.cpp multiplies in fp32 too):
   the same prompts, where the difference left is fp32 rounding.
3. A NumPy float64 forward pass over weights dequantized by the `gguf` package
   (exact arithmetic; no KV cache, full causal attention): a tight check of the
   C program's numerics on the same prompts.

Setup (once; builds llama.cpp from source, several minutes):
    python3 -m venv .venv-oracle
    .venv-oracle/bin/pip install numpy gguf llama-cpp-python==0.3.36
Run, from the repository root, after scripts/fetch_model.sh and building ./smollm2:
    .venv-oracle/bin/python tests/oracle_smollm2.py [--bin ./smollm2] [--no-numpy] [--no-f32]
(the F32 copy, about 540 MB, is written once to --f32-copy, default /tmp/smollm2-f32.gguf)
Exit status is nonzero if any token ids differ, or if the logits differ by more
than the tolerances printed at the end.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

MODEL = "models/SmolLM2-135M-Instruct.Q4_1.gguf"

TOKEN_TEXTS = [
    "Hello world! It's 2024, isn't it?  Yes   indeed.\nNew line\ttab",
    "The quick brown fox jumps over the lazy dog.",
    "I'll, we've, they're, she'd, you'm: 'quoted' and \"double\" -- dashes - and ... ellipses!!!",
    "Numbers: 3.14159, 1,000,000 and 42nd; version v2.0.1-rc3 (x86_64).",
    "   leading spaces, trailing spaces   \n\n\n  indented\n\tTabbed\r\nCRLF line",
    "Caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u2014 em dash, \u201ccurly quotes\u201d and \u2018single\u2019, \u00a9 2024, 50\u00b0C, \u00bd cup.",
    "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
    "def f(x):\n    return x**2 + 1  # comment\n\nprint(f(3))\n",
    "UPPER lower MiXeD camelCase snake_case kebab-case CONSTANT_CASE",
    "It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife.",
    "x\u00a0y \u2003z 12\u00b3 na\u0308ive Stra\u00dfe \u4f60\u597d\u4e16\u754c \u0645\u0631\u062d\u0628\u0627 \U0001F600!",
    b"invalid UTF-8 \xff\xfe \xc3 end, a control byte \x04 too",
]
TOKEN_FILES = ["data/eval.txt", "data/calib.txt"]

PPL_TOKENS = 512

LOGIT_PROMPTS = [
    "The capital of France is",
    "Once upon a time, there was a little girl who",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "Sir Walter Elliot, of Kellynch Hall, in Somersetshire, was a man who, for his own amusement, never took up any book but the",
]


def as_bytes(text):
    return text if isinstance(text, bytes) else text.encode()


def c_tokens(binary, model, text=None, path=None):
    args = [binary.encode(), b"--model", model.encode()]
    args += [b"--tokens-of", as_bytes(text)] if path is None else [b"--tokens-of-file", path.encode()]
    out = subprocess.run(args, check=True, capture_output=True).stdout.decode()
    return [int(x) for x in out.split()]


def c_logits(binary, model, text):
    with tempfile.TemporaryDirectory() as d:
        f = os.path.join(d, "logits.bin")
        subprocess.run([binary, "--model", model, "--logits", text, f], check=True, capture_output=True)
        return np.fromfile(f, dtype="<f4")


def write_f32_copy(src, dst):
    """The same model with every tensor dequantized to F32 (metadata copied as is)."""
    import gguf
    from gguf.quants import dequantize

    r = gguf.GGUFReader(src)
    w = gguf.GGUFWriter(dst + ".part", arch="llama")
    for field in r.fields.values():
        if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
            continue
        vt = field.types[0]
        sub = field.types[-1] if vt == gguf.GGUFValueType.ARRAY else None
        v = field.contents()
        if field.name == "general.file_type":
            v = 0  # all F32
        w.add_key_value(field.name, v, vt, sub_type=sub)
    for t in r.tensors:
        a = dequantize(t.data, t.tensor_type).astype(np.float32)
        w.add_tensor(t.name, a.reshape([int(x) for x in reversed(t.shape)]))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    os.replace(dst + ".part", dst)


class NumpyRef:
    """float64 Llama forward over gguf-dequantized weights; RoPE on pairs (2i, 2i+1)."""

    def __init__(self, path):
        from gguf import GGUFReader
        from gguf.quants import dequantize

        r = GGUFReader(path)
        f = r.fields

        def val(k):
            return f[k].contents()

        self.n_layer = val("llama.block_count")
        self.n_head = val("llama.attention.head_count")
        self.n_kv = val("llama.attention.head_count_kv")
        self.eps = val("llama.attention.layer_norm_rms_epsilon")
        self.theta = val("llama.rope.freq_base")
        self.w = {}
        for t in r.tensors:
            a = dequantize(t.data, t.tensor_type).astype(np.float32)
            self.w[t.name] = a.reshape([int(x) for x in reversed(t.shape)]) if a.ndim > 1 else a.reshape(-1)
        self.E = self.w["token_embd.weight"].shape[1]
        self.hd = self.E // self.n_head

    def rms(self, x, w):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + self.eps) * w

    def rope(self, x, n):  # x: [T, n_heads, hd]
        T, hd = x.shape[0], self.hd
        inv = self.theta ** (-np.arange(0, hd, 2, dtype=np.float64) / hd)
        ang = np.arange(T, dtype=np.float64)[:, None] * inv[None, :]
        c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        x0, x1 = x[..., 0::2], x[..., 1::2]
        out = np.empty_like(x)
        out[..., 0::2] = x0 * c - x1 * s
        out[..., 1::2] = x0 * s + x1 * c
        return out

    def logits_last(self, ids):
        W = lambda n: self.w[n].astype(np.float64)
        T, hd, grp = len(ids), self.hd, self.n_head // self.n_kv
        x = W("token_embd.weight")[ids]
        mask = np.triu(np.full((T, T), -np.inf), 1)
        for l in range(self.n_layer):
            p = "blk.%d." % l
            h = self.rms(x, W(p + "attn_norm.weight"))
            q = self.rope((h @ W(p + "attn_q.weight").T).reshape(T, self.n_head, hd), self.n_head)
            k = self.rope((h @ W(p + "attn_k.weight").T).reshape(T, self.n_kv, hd), self.n_kv)
            v = (h @ W(p + "attn_v.weight").T).reshape(T, self.n_kv, hd)
            o = np.empty((T, self.n_head, hd))
            for hh in range(self.n_head):
                s = q[:, hh] @ k[:, hh // grp].T / np.sqrt(hd) + mask
                s = np.exp(s - s.max(-1, keepdims=True))
                o[:, hh] = (s / s.sum(-1, keepdims=True)) @ v[:, hh // grp]
            x = x + o.reshape(T, -1) @ W(p + "attn_output.weight").T
            h = self.rms(x, W(p + "ffn_norm.weight"))
            g = h @ W(p + "ffn_gate.weight").T
            x = x + ((g / (1 + np.exp(-g))) * (h @ W(p + "ffn_up.weight").T)) @ W(p + "ffn_down.weight").T
        h = self.rms(x[-1], W("output_norm.weight"))
        out = W("output.weight") if "output.weight" in self.w else W("token_embd.weight")
        return out @ h


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="./smollm2")
    ap.add_argument("--model", default=MODEL)
    ap.add_argument("--no-numpy", action="store_true", help="skip the NumPy float64 reference")
    ap.add_argument("--no-f32", action="store_true", help="skip llama.cpp on the F32 copy")
    ap.add_argument("--f32-copy", default="/tmp/smollm2-f32.gguf")
    ap.add_argument("--tol-llama", type=float, default=1.5,
                    help="max abs logit difference allowed vs llama.cpp on the Q4_1 file (8-bit activations there)")
    ap.add_argument("--tol-llama-f32", type=float, default=5e-3, help="max abs logit difference allowed vs llama.cpp on the F32 copy")
    ap.add_argument("--tol-numpy", type=float, default=2e-3, help="max abs logit difference allowed vs NumPy float64")
    a = ap.parse_args()
    failures = 0

    from llama_cpp import Llama
    import llama_cpp

    llm = Llama(model_path=a.model, n_ctx=1024, n_batch=512, n_threads=2, verbose=False, logits_all=True,
                type_k=0, type_v=0)  # type 0 = GGML_TYPE_F32: an fp32 KV cache, like the C program
    print("llama-cpp-python %s" % llama_cpp.__version__)

    print("\n== token ids: C program vs llama.cpp (add_bos=False, special=True)")
    cases = [("text %d" % i, t, None) for i, t in enumerate(TOKEN_TEXTS)] + [(p, None, p) for p in TOKEN_FILES]
    for name, text, path in cases:
        raw = as_bytes(text) if path is None else open(path, "rb").read()
        ref = llm.tokenize(raw, add_bos=False, special=True)
        got = c_tokens(a.bin, a.model, text=text, path=path)
        same = ref == got
        failures += not same
        where = ""
        if not same:
            i = next((i for i, (x, y) in enumerate(zip(ref, got)) if x != y), min(len(ref), len(got)))
            where = " first difference at %d: llama.cpp %s vs C %s" % (i, ref[i:i + 5], got[i:i + 5])
        print("  %-16s %6d tokens  identical: %s%s" % (name, len(ref), "yes" if same else "NO", where))

    llm32 = None
    if not a.no_f32:
        if not os.path.exists(a.f32_copy):
            print("\nwriting the F32 copy %s ..." % a.f32_copy)
            write_f32_copy(a.model, a.f32_copy)
        llm32 = Llama(model_path=a.f32_copy, n_ctx=1024, n_batch=512, n_threads=2, verbose=False, logits_all=True,
                      type_k=0, type_v=0)
    npref = None
    if not a.no_numpy:
        print("\nloading the NumPy float64 reference (gguf dequantize) ...")
        npref = NumpyRef(a.model)

    print("\n== last-position logits")
    worst_ll = worst_np = worst_32 = 0.0
    for prompt in LOGIT_PROMPTS:
        ids = llm.tokenize(prompt.encode(), add_bos=False, special=True)
        llm.reset()
        llm.eval(ids)
        ll = np.array(llm.scores[len(ids) - 1], dtype=np.float64)
        c = c_logits(a.bin, a.model, prompt).astype(np.float64)
        d_ll = np.abs(c - ll).max()
        worst_ll = max(worst_ll, d_ll)
        line = "  %3d tokens: max|C - llama.cpp| %.4f (logit range %.1f..%.1f), argmax C %d llama.cpp %d" % (
            len(ids), d_ll, ll.min(), ll.max(), int(c.argmax()), int(ll.argmax()))
        if llm32 is not None:
            llm32.reset()
            llm32.eval(ids)
            l32 = np.array(llm32.scores[len(ids) - 1], dtype=np.float64)
            d_32 = np.abs(c - l32).max()
            worst_32 = max(worst_32, d_32)
            line += "; max|C - llama.cpp F32 copy| %.2e" % d_32
        if npref is not None:
            r = npref.logits_last(ids)
            d_np = np.abs(c - r).max()
            worst_np = max(worst_np, d_np)
            line += "; max|C - numpy f64| %.2e, max|llama.cpp - numpy| %.4f" % (d_np, np.abs(ll - r).max())
        print(line)
    print("\n== perplexity of the first %d tokens of data/eval.txt (one window)" % PPL_TOKENS)
    out = subprocess.run([a.bin, "--model", a.model, "--eval", "data/eval.txt", "--ctx", str(PPL_TOKENS), "--tokens",
                          str(PPL_TOKENS)], check=True, capture_output=True).stdout.decode()
    ppl_c = float(out.split("ppl")[1].split()[0])
    ids = llm.tokenize(open("data/eval.txt", "rb").read(), add_bos=False, special=True)[:PPL_TOKENS]
    ppl_ref = {}
    for name, model in (("llama.cpp", llm), ("llama.cpp F32 copy", llm32)):
        if model is None:
            continue
        model.reset()
        model.eval(ids)
        lg = np.array(model.scores[:len(ids) - 1], dtype=np.float64)
        mx = lg.max(1, keepdims=True)
        lse = (mx[:, 0] + np.log(np.exp(lg - mx).sum(1)))
        ppl_ref[name] = float(np.exp((lse - lg[np.arange(len(ids) - 1), ids[1:]]).mean()))
    print("  C %.4f; " % ppl_c + "; ".join("%s %.4f" % kv for kv in ppl_ref.items()))
    if "llama.cpp F32 copy" in ppl_ref:
        bad = abs(ppl_c / ppl_ref["llama.cpp F32 copy"] - 1) > 1e-3
        failures += bad
        print("  C vs llama.cpp F32 copy: relative difference %.2e (tolerance 1e-3)%s" % (
            abs(ppl_c / ppl_ref["llama.cpp F32 copy"] - 1), " FAIL" if bad else ""))

    print("\nworst max abs logit difference: vs llama.cpp %.4f (tolerance %g)" % (worst_ll, a.tol_llama), end="")
    failures += worst_ll > a.tol_llama
    if llm32 is not None:
        print(", vs llama.cpp on the F32 copy %.2e (tolerance %g)" % (worst_32, a.tol_llama_f32), end="")
        failures += worst_32 > a.tol_llama_f32
    if npref is not None:
        print(", vs NumPy float64 %.2e (tolerance %g)" % (worst_np, a.tol_numpy))
        failures += worst_np > a.tol_numpy
    else:
        print()
    print("%d passed, %d failed" % (len(cases) + 1 + 2 * (llm32 is not None) + (npref is not None) - failures, failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
