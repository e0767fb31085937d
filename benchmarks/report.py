"""Turn bench_step.py's results into the text summary and the markdown of docs/benchmarks.md."""

MB64 = {"seed": 1.8, "deep": 1.3}  # batch-64 speed targets (tinygan / PyTorch best)
MB256 = 1.05
FLOOR_TARGET = 0.80                 # deep, batch 256, 1 thread: tinygan step >= 80% of the GEMM floor
RSS_TARGET_MB, GROWTH_TOL_MB = 250, 2.0


def ratio_target(preset, batch):
    return MB64.get(preset, 1.3) if batch == 64 else MB256


def met(ok):
    return "met" if ok else "**not met**"


def rows_of(res):
    rows = [r for w in res["workers"] for r in w["rows"]]
    return sorted(rows, key=lambda r: (r["preset"] != "seed", r["batch"], r["threads"]))


def engine_flops(res, row):
    """The matmul FLOPs tinygan actually runs for this row (counted at batch 64; linear in the batch)."""
    for c in res.get("opcount") or []:
        if c["preset"] == row["preset"] and not c.get("whole_buffer_adam"):
            return c["matmul_flops"] * row["batch"] / c["batch"]
    return None


def ratio(r):
    """tinygan / PyTorch: the median of the per-round ratios (older results: the ratio of the medians)."""
    if not r["torch_its"]:
        return float("nan")
    return r.get("paired_ratio") or r["tinygan_its"] / r["torch_its"]


def speed_table(res):
    out = ["| preset | batch | threads | tinygan it/s | PyTorch best it/s | PyTorch variant | ratio of medians | "
           "ratio (median of rounds) | rounds' min - max | target | status |",
           "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---|"]
    for r in rows_of(res):
        of_medians = r["tinygan_its"] / r["torch_its"] if r["torch_its"] else float("nan")
        lo, hi = r.get("paired_ratio_range") or (float("nan"), float("nan"))
        t = ratio_target(r["preset"], r["batch"])
        out.append(f"| {r['preset']} | {r['batch']} | {r['threads']} | {r['tinygan_its']:.1f} | "
                   f"{r['torch_its'] or float('nan'):.1f} | {r['torch_best']} | {of_medians:.2f}x | {ratio(r):.2f}x | "
                   f"{lo:.2f} - {hi:.2f} | >= {t}x | {met(ratio(r) >= t)} |")
    return out


def floor_table(res):
    sq = {w["info"]["threads"]: w["info"]["square_gemm_gflops"] for w in res["workers"]}
    out = ["| preset | batch | threads | floor MFLOP | tinygan matmul MFLOP | GEMM GFLOP/s (step shapes) | "
           "floor ms | tinygan ms | floor / step | GEMM GFLOP/s (2048^2) | floor / step at 2048^2 rate |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows_of(res):
        floor_ms, step_ms = 1e3 / r["floor_its"], 1e3 / r["tinygan_its"]
        sq_rate = sq[r["threads"]]
        sq_floor_ms = r["floor_flops"] / (sq_rate * 1e9) * 1e3
        ef = engine_flops(res, r)
        out.append(f"| {r['preset']} | {r['batch']} | {r['threads']} | {r['floor_flops'] / 1e6:.1f} | "
                   f"{ef / 1e6 if ef else float('nan'):.1f} | {r['gemm_gflops']:.1f} | {floor_ms:.2f} | {step_ms:.2f} | "
                   f"{floor_ms / step_ms:.0%} | {sq_rate:.1f} | {sq_floor_ms / step_ms:.0%} |")
    return out


def target_lines(res):
    rows = rows_of(res)
    out = []
    for r in rows:
        if r["preset"] == "deep" and r["batch"] == 256 and r["threads"] == 1:
            frac = (1 / r["floor_its"]) / (1 / r["tinygan_its"])
            out.append(f"- deep, batch 256, 1 thread: tinygan step = {frac:.0%} of the GEMM floor "
                       f"(target >= {FLOOR_TARGET:.0%}): {met(frac >= FLOOR_TARGET)}")
    m = res.get("memory")
    if m:
        ok = m["peak_vmhwm_mb"] <= RSS_TARGET_MB and m["growth_mb"] <= GROWTH_TOL_MB
        out.append(f"- seed, batch {m['batch']}, {m['iterations']} iterations: peak RSS (VmHWM) "
                   f"{m['peak_vmhwm_mb']:.1f} MB, RSS growth iteration {m['early_iter']} -> {m['iterations']}: "
                   f"{m['growth_mb']:+.1f} MB (target <= {RSS_TARGET_MB} MB, growth <= {GROWTH_TOL_MB} MB counts "
                   f"as none): {met(ok)}")
    speed = [r for r in rows if r["torch_its"]]
    n_ok = sum(ratio(r) >= ratio_target(r["preset"], r["batch"]) for r in speed)
    out.insert(0, f"- speed vs PyTorch: {n_ok} of {len(speed)} configurations meet their target")
    return out


def variants_table(res):
    names = sorted({n for r in rows_of(res) for n in r["torch_variants"]})
    out = ["| preset | batch | threads | " + " | ".join(names) + " |", "|---|---:|---:|" + "---:|" * len(names)]
    for r in rows_of(res):
        cells = [f"{r['torch_variants'][n]:.1f}" if n in r["torch_variants"] else "-" for n in names]
        out.append(f"| {r['preset']} | {r['batch']} | {r['threads']} | " + " | ".join(cells) + " |")
    return out


def opcount_lines(res):
    out = ["| preset | batch | Adam | array ops per step | of them views (indexing) | kernel-like ops | matmuls | "
           "ops to sample a batch | most frequent |",
           "|---|---:|---|---:|---:|---:|---:|---:|---|"]
    for c in res.get("opcount") or []:
        top = ", ".join(f"{k} {v}" for k, v in list(c["by_op"].items())[:5])
        adam = "whole buffer (as on CuPy)" if c.get("whole_buffer_adam") else "64k chunks (CPU)"
        views = c.get("views", c["by_op"].get("indexing []", 0))
        out.append(f"| {c['preset']} | {c['batch']} | {adam} | {c['step']} | {views} | {c['step'] - views} | "
                   f"{c['matmuls']} | {c['sample']} | {top} |")
    return out


def demand_table(res):
    """Per configuration: the step time each target demands against the least time this engine's step can take."""
    out = ["| preset | batch | threads | PyTorch ms | target | demanded ms | GEMM floor ms | Adam ms | floor + Adam ms | "
           "tinygan ms | demanded / (floor + Adam) |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows_of(res):
        if not r["torch_its"] or "adam_its" not in r:
            continue
        t = ratio_target(r["preset"], r["batch"])
        torch_ms, floor_ms, adam_ms = 1e3 / r["torch_its"], 1e3 / r["floor_its"], 1e3 / r["adam_its"]
        demand = torch_ms / t
        out.append(f"| {r['preset']} | {r['batch']} | {r['threads']} | {torch_ms:.2f} | {t}x | {demand:.2f} | "
                   f"{floor_ms:.2f} | {adam_ms:.2f} | {floor_ms + adam_ms:.2f} | {1e3 / r['tinygan_its']:.2f} | "
                   f"{demand / (floor_ms + adam_ms):.0%} |")
    return out


def gpu_memory_lines(res):
    """CuPy's memory pool after each configuration (and PyTorch CUDA's peak), when the run was on a GPU."""
    rows = [r for r in rows_of(res) if "cupy_pool_used_mb" in r]
    if not rows:
        return []
    out = ["| preset | batch | CuPy pool used MB | CuPy pool total MB | PyTorch CUDA max allocated MB |",
           "|---|---:|---:|---:|---:|"]
    for r in rows:
        out.append(f"| {r['preset']} | {r['batch']} | {r['cupy_pool_used_mb']:.1f} | {r['cupy_pool_total_mb']:.1f} | "
                   f"{r.get('torch_cuda_max_alloc_mb', float('nan')):.1f} |")
    return ["### GPU memory", "", *out, ""]


def gpu_graph_lines(res):
    """The GPU table: tinygan eager and as a CUDA graph against PyTorch eager and PyTorch's captured step."""
    rows = [r for r in rows_of(res) if "tinygan_graph_its" in r]
    if not rows:
        return []
    out = ["| preset | batch | tinygan eager | tinygan graph | PyTorch eager (best) | PyTorch CUDA graph | "
           "graph / PyTorch graph | graph nodes per step |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        tg_graph, t_graph = r["tinygan_graph_its"], r.get("torch_graph_its")
        out.append(f"| {r['preset']} | {r['batch']} | {r['tinygan_its']:.0f} | {tg_graph:.0f} | "
                   f"{r['torch_its'] or float('nan'):.0f} | {t_graph or float('nan'):.0f} | "
                   f"{tg_graph / t_graph if t_graph else float('nan'):.2f}x | {r.get('graph_nodes', 'n/a')} |")
    return ["### GPU: one CUDA graph per iteration (it/s)", "", *out, ""]


def profile_lines(res):
    out = []
    for p in res.get("profile") or []:
        if "matmul_ms_per_step" in p:
            out.append(f"{p['preset']}, batch {p['batch']}, 1 thread: without the profiler {p['plain_ms_per_step']:.2f} ms "
                       f"per step, of which {p['matmul_ms_per_step']:.2f} ms ({p['matmul_ms_per_step'] / p['plain_ms_per_step']:.0%}) "
                       f"inside the step's matmuls (every call timed) and {p['plain_ms_per_step'] - p['matmul_ms_per_step']:.2f} ms "
                       "in everything else.")
            out.append("")
        out.append(f"{p['preset']}, batch {p['batch']}, 1 thread: {p['ms_per_step']:.2f} ms per step under cProfile "
                   f"({p['steps']} steps); own time per step (a matmul's time counts as its caller's):")
        out.append("")
        out.append("| ms / step | % | calls / step | function |")
        out.append("|---:|---:|---:|---|")
        for name, ms, pct, calls in p["rows"]:
            out.append(f"| {ms:.3f} | {pct:.1f} | {calls:.1f} | `{name}` |")
        out.append("")
    return out


def blas(info):
    """'openblas 0.3.x, kernel SkylakeX' from blas_info()."""
    if "architecture" not in info:
        return str(info.get("note", info))
    return f"{info['internal_api']} {info['version']}, kernel {info['architecture']}"


def markdown(res):
    """The generated part of docs/benchmarks.md."""
    h, w0 = res["header"], res["workers"][0]["info"]
    out = [f"Command: `{h['command']}`", "",
           f"Run {h['date']} on {h['cpu']} ({h['nproc']} cores), load average {h['load_before']} before and "
           f"{h['load_after']} after (1/5/15 min). numpy {w0['numpy']} with {blas(w0['blas'])} "
           f"(OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE in the caller's environment: "
           f"{', '.join(str(v) for v in h['openblas_overrides_in_env'].values())}; unset for every run); "
           f"PyTorch {w0['torch']}; {w0['n_images']} training images; backend {w0['backend']}, float32. "
           f"Each number is the median of {h['repeats']} interleaved blocks of ~{h['block_s']} s "
           f"(tinygan, every PyTorch variant, the GEMM floor and Adam alone take turns; order reversed every "
           f"round). The ratio that decides a target is the median over rounds of tinygan's rate / PyTorch's "
           f"best variant's rate in the same round.", "",
           "### Targets", "", *target_lines(res), "",
           "### Speed: tinygan vs PyTorch (best variant)", "", *speed_table(res), "",
           "### GEMM floor", "", *floor_table(res), "",
           "### What each target demands", "",
           "The step time a target allows (PyTorch's best time / target ratio) beside the least this engine's "
           "step can take: its GEMMs at NumPy's measured rate (the floor) plus its two Adam updates alone. "
           "Below 100%, the target asks for less time than those two parts need, before any layer, loss or "
           "sampling work.", "", *demand_table(res), "",
           "### PyTorch variants (it/s)", "", *variants_table(res), "",
           "### Array operations per step", "", *opcount_lines(res), "", *gpu_graph_lines(res), *gpu_memory_lines(res)]
    m = res.get("memory")
    if m:
        out += ["### Memory", "",
                f"seed, batch {m['batch']}, {m['iterations']} iterations of `GAN.step` in a fresh process "
                f"(no PyTorch; BLAS {m['blas'].get('num_threads')} thread(s)): RSS {m['rss_start_mb']:.1f} MB at start, "
                f"{m['rss_setup_mb']:.1f} MB after loading MNIST and building the GAN, {m['rss_early_mb']:.1f} MB at "
                f"iteration {m['early_iter']}, {m['rss_end_mb']:.1f} MB at iteration {m['iterations']}; "
                f"peak (VmHWM) {m['peak_vmhwm_mb']:.1f} MB.", ""]
    if res.get("profile"):
        out += ["### Where the time goes (cProfile)", "", *profile_lines(res)]
    return "\n".join(out).rstrip() + "\n"


def text(res):
    """A short plain summary for the terminal."""
    out = []
    for r in rows_of(res):
        out.append(f"{r['preset']:5s} B={r['batch']:<4d} threads={r['threads']}  tinygan {r['tinygan_its']:8.1f} it/s  "
                   f"torch {r['torch_its'] or float('nan'):8.1f} it/s ({r['torch_best']})  ratio {ratio(r):5.2f}x  "
                   f"floor/step {r['tinygan_its'] / r['floor_its']:4.0%}")
    pool = [f"{r['preset']:5s} B={r['batch']:<4d} CuPy pool used {r['cupy_pool_used_mb']:.1f} MB of "
            f"{r['cupy_pool_total_mb']:.1f} MB" for r in rows_of(res) if "cupy_pool_used_mb" in r]
    return "\n".join(out + pool + target_lines(res))
