#!/usr/bin/python3
"""The table of bench/llama_bench.sh from its result lines (bench/llama/measure.h's print_result):
per measure and dtype the best tokens/s of each engine over the rounds and rankserve / llama.cpp,
then each engine's best dtype per measure, then how many greedy tokens agree.

  summarize.py RESULTS_FILE
"""
import sys

DTYPES = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}  # rankserve's name -> the GGUF type llama.cpp ran


def describe(spec):
    parts = spec.split(":")
    if parts[0] == "prefill":
        return f"prefill {parts[1]} tokens, {parts[2]} thr"
    return f"decode batch {parts[1]}, {parts[2]} thr"


def common_prefix(a, b):
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def main():
    best, ids, specs = {}, {}, []
    with open(sys.argv[1]) as f:
        for line in f:
            fields = line.split()
            if len(fields) != 6 or fields[0] != "result":
                continue
            _, engine, dtype, spec, rate, id_field = fields
            dtype = next((r for r, g in DTYPES.items() if g == dtype), dtype)
            if spec not in specs:
                specs.append(spec)
            key = (engine, dtype, spec)
            best[key] = max(best.get(key, 0.0), float(rate))
            seqs = id_field[len("ids="):]
            if seqs:
                ids[key] = [[int(t) for t in s.split(",")] for s in seqs.split(";")]
    dtypes = [d for d in DTYPES if any(k[1] == d for k in best)]
    print(f"{'measure':<28} {'dtype':<5} {'rankserve tok/s':>15} {'llama.cpp tok/s':>15} {'ratio':>6}")
    for spec in specs:
        for d in dtypes:
            ours, theirs = best.get(("rankserve", d, spec)), best.get(("llama.cpp", d, spec))
            if ours is None or theirs is None:
                continue
            print(f"{describe(spec):<28} {d:<5} {ours:>15.1f} {theirs:>15.1f} {ours / theirs:>6.2f}")
    print(f"\n{'measure':<28} {'rankserve best':>20} {'llama.cpp best':>20} {'ratio':>6}")
    for spec in specs:
        row = []
        for engine in ("rankserve", "llama.cpp"):
            rates = [(best[(engine, d, spec)], d) for d in dtypes if (engine, d, spec) in best]
            row.append(max(rates) if rates else None)
        if None in row:
            continue
        (ours, our_dtype), (theirs, their_dtype) = row
        print(f"{describe(spec):<28} {ours:>13.1f} {our_dtype:>6} {theirs:>13.1f} {their_dtype:>6} {ours / theirs:>6.2f}")
    print("\ngreedy tokens: rankserve's against llama.cpp's, the same prompts (tokens before the first difference)")
    for d in dtypes:
        for spec in specs:
            a, b = ids.get(("rankserve", d, spec)), ids.get(("llama.cpp", d, spec))
            if not a or not b:
                continue
            same = sum(common_prefix(x, y) for x, y in zip(a, b))
            total = sum(len(x) for x in a)
            whole = sum(1 for x, y in zip(a, b) if x == y)
            print(f"{d:<5} {describe(spec):<28} {same}/{total} tokens, {whole}/{len(a)} sequences identical")


if __name__ == "__main__":
    main()
