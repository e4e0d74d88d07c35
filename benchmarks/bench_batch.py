"""Batch throughput and memory: the network alone against `colorize batch` on the same images.

    python benchmarks/bench_batch.py [--weights PATH] [--small 24] [--many 1000] [--big 3] [--huge] [--repeats 3]
                                     [--rounds 7] [--device cpu|cuda]

Makes its own inputs in a temporary folder: 400x400 JPEGs from scikit-image's photos, synthetic
12-megapixel JPEG photos, and (with --huge) a 50-megapixel one for tile mode. Each scenario runs in
a fresh child process, which reports its time (model loading excluded) and its peak RSS. The network
alone (one call at a time with all of torch's threads, and in the lanes `colorize batch` uses) and
the whole batch run in --rounds alternating rounds in one process (a VM's speed can drift by 30%
over minutes, so a ratio is only fair between neighbours); the ratio, against the faster way of
running the network alone, is the median of the rounds' ratios. Other figures are medians over
--repeats runs. Printed: images/s of the network alone and of the whole batch (decode to encoded
file on disk, report included), their ratio, seconds per 12 MP photo, and peak RSS for 10 vs
--many (1,000) images and for the 50 MP tile run. A second throughput run times the other precision
worth knowing (bfloat16 where the CPU runs it natively; float32 against float16 on CUDA), and its
batch's speed against the default's is printed.
--default-heap leaves glibc's malloc settings as they are (colorize keeps freed buffers).
"""

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np


def make_inputs(folder: Path, small: int, many: int, big: int, huge: bool) -> dict[str, Path]:
    from PIL import Image
    from skimage import data
    from skimage.transform import resize

    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket(), data.stereo_motorcycle()[0]]
    dirs = {name: folder / name for name in ("small10", "small", "many", "big", "huge")}
    for d in dirs.values():
        d.mkdir(parents=True)
    for i in range(max(small, many)):
        rgb = (resize(photos[i % len(photos)], (400, 400), anti_aliasing=True) * 255).astype(np.uint8)
        rgb = rgb[:, ::-1] if (i // len(photos)) % 2 else rgb
        image = Image.fromarray(np.ascontiguousarray(rgb))
        if i < small:
            image.save(dirs["small"] / f"{i:03d}.jpg", quality=90)
        if i < 10:
            image.save(dirs["small10"] / f"{i:03d}.jpg", quality=90)
        if i < many:
            image.save(dirs["many"] / f"{i:04d}.jpg", quality=90)

    def photo_of(h, w, seed):
        base = resize(photos[seed % len(photos)], (h // 4, w // 4), anti_aliasing=True)
        up = np.asarray(Image.fromarray((base * 255).astype(np.uint8)).resize((w, h), Image.BICUBIC))
        noise = np.random.default_rng(seed).normal(0, 4, (h, w, 1))
        return np.clip(up + noise, 0, 255).astype(np.uint8)

    for i in range(big):
        Image.fromarray(photo_of(3000, 4000, i)).save(dirs["big"] / f"{i:02d}.jpg", quality=90)
    if huge:
        Image.fromarray(photo_of(5773, 8660, 7)).save(dirs["huge"] / "huge.jpg", quality=90)
    return dirs


def colorize_folder(folder: Path, output: Path, colorizer, jobs: int):
    """The library's colorize_folder; for a checkout from before it existed (the baseline), its equivalent."""
    try:
        from colorize_cli.batch import colorize_folder as library_version
    except ImportError:
        from colorize_cli.batch import plan_jobs, run_batch
        from colorize_cli.report import ColourReport  # the baseline's name

        report = ColourReport()
        run_batch(plan_jobs([folder], output)[0], colorizer, report, overwrite=True)
        report.write(output, 0.0)
        return report
    return library_version(folder, output, colorizer, jobs)


def child(args) -> None:
    """One scenario in this process; prints a JSON line with its figures and peak RSS."""
    import torch

    from colorize_cli.predictor import Colorizer
    from colorize_cli.registry import load_network

    from colorize_cli import heap

    if args.default_heap:  # glibc's own settings: the one thing colorize's set-up would change, switched off
        heap.keep_freed_buffers = lambda: False
    try:  # colorize_folder sets the process up itself, as the command line does
        from colorize_cli.process import configure_process  # noqa: F401
    except ImportError:  # a checkout from before (the baseline): its command line kept the heap at start
        heap.keep_freed_buffers()
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    net, _ = load_network(None, Path(args.weights), args.device)
    precision = {} if args.precision is None else {"precision": args.precision}  # the baseline lacks it
    colorizer = Colorizer(net, args.device, args.mode, args.batch_size, **precision)
    if args.scenario == "throughput":
        figures = alternate_rounds(colorizer, Path(args.input), Path(args.output), args.jobs, args.rounds)
    else:
        started = time.perf_counter()
        count = len(colorize_folder(Path(args.input), Path(args.output), colorizer, args.jobs).rows)
        figures = {"seconds": time.perf_counter() - started, "count": count}
    print(json.dumps({**figures, "batch_size": colorizer.batch_size, "rss_mib": peak_rss_mib()}))


def bfloat16_runs_here() -> bool:
    """Whether this checkout has --precision and this CPU runs bfloat16 natively."""
    try:
        from colorize_cli.predictor import cpu_runs_bfloat16
    except ImportError:  # a checkout from before it existed (the baseline)
        return False
    return cpu_runs_bfloat16()


def alternate_rounds(colorizer, folder: Path, output: Path, jobs: int, rounds: int) -> dict:
    """Images/s of the network alone (on the images' L, decoded beforehand) and of the whole batch on the
    same folder, in alternating rounds after one untimed round of each, so all see the machine alike.

    The network alone runs two ways: one call at a time with all of torch's threads, and in the lanes
    the batch uses (Colorizer.network_lanes); the ratio is against the faster of the two in each round."""
    import torch

    try:
        from colorize_cli.color import l_of_pixels
    except ImportError:  # the baseline's spelling
        from colorize_cli.colour import l_of_pixels
    from colorize_cli.decode import decode

    files = sorted(folder.glob("*.jpg"))
    count = len(files)
    l = torch.stack([torch.from_numpy(l_of_pixels(decode(f, 0).pixels)) for f in files])[:, None]
    calls = l.split(colorizer.batch_size)
    threads = torch.get_num_threads()
    lanes = colorizer.network_lanes(jobs) if hasattr(colorizer, "network_lanes") else (1, threads)
    figures = {"network": [], "network_lanes": [], "batch": []}
    for r in range(rounds + 1):
        timed = {}
        for name, (n_lanes, per_lane) in (("network", (1, threads)), ("network_lanes", lanes)):
            started = time.perf_counter()
            network_alone(colorizer, calls, n_lanes, per_lane)
            timed[name] = count / (time.perf_counter() - started)
        started = time.perf_counter()
        colorize_folder(folder, output / f"round{r}", colorizer, jobs)
        timed["batch"] = count / (time.perf_counter() - started)
        if r:
            for name, value in timed.items():
                figures[name].append(value)
    return {**figures, "lanes": list(lanes)}


def network_alone(colorizer, calls, lanes: int, threads_per_lane: int) -> None:
    """Every call through the network, `lanes` at a time. One lane runs in this thread, as a batch
    before lanes did: OpenMP's threads would be started afresh for a new thread, and those of this
    one would still be spinning."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(threads_per_lane)  # not predictor.torch_threads: the baseline checkout lacks it
    try:
        if lanes == 1:
            for call in calls:
                colorizer.run_network(call)
        else:
            with ThreadPoolExecutor(lanes) as pool:
                for _ in pool.map(colorizer.run_network, calls):
                    pass  # each output dropped as it comes, as the batch does
    finally:
        torch.set_num_threads(threads)


def peak_rss_mib() -> float:
    """This process's peak resident memory. VmHWM starts afresh at exec; ru_maxrss would include the
    parent's memory from before the fork, so it is only the fallback where /proc is missing."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(scenario: str, input_dir: Path, out: Path, weights: Path, args, mode="resize",
              precision=None) -> dict:
    cmd = [sys.executable, __file__, "--child", scenario, "--input", str(input_dir), "--output", str(out),
           "--weights", str(weights), "--mode", mode, "--jobs", str(args.jobs), "--rounds", str(args.rounds),
           "--device", args.device] + (["--precision", precision] if precision else [])
    for flag, value in (("--batch-size", args.batch_size), ("--torch-threads", args.torch_threads)):
        if value:
            cmd += [flag, str(value)]
    if args.default_heap:
        cmd.append("--default-heap")
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(done.stderr)
    return json.loads(done.stdout.strip().splitlines()[-1])


def print_throughput(title: str, figures: dict) -> None:
    best = [max(one, lanes) for one, lanes in zip(figures["network"], figures["network_lanes"])]
    ratios = [b / n for n, b in zip(best, figures["batch"])]
    n_lanes, per_lane = figures["lanes"]
    print(f"{title}: network alone {statistics.median(figures['network']):.2f} images/s one call at a time, "
          f"{statistics.median(figures['network_lanes']):.2f} in {n_lanes} lanes of {per_lane} thread(s); batch "
          f"{statistics.median(figures['batch']):.2f} images/s; ratio to the faster network "
          f"{statistics.median(ratios):.2f} (rounds {min(ratios):.2f} to {max(ratios):.2f})")


def median_of(repeats: int, run) -> dict:
    results = [run(i) for i in range(repeats)]
    return {key: statistics.median(r[key] for r in results) for key in results[0]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, help="weights file (default: the shipped network 6)")
    parser.add_argument("--small", type=int, default=24)
    parser.add_argument("--many", type=int, default=1000, help="images for the memory check against 10")
    parser.add_argument("--big", type=int, default=3)
    parser.add_argument("--huge", action="store_true", help="also a 50 MP photo in tile mode")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, help="images per network call (default: colorize's own)")
    parser.add_argument("--jobs", type=int, default=2, help="decode/encode threads, as `colorize batch --jobs`")
    parser.add_argument("--torch-threads", type=int, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--default-heap", action="store_true", help="leave glibc's malloc settings as they are")
    parser.add_argument("--child")
    parser.add_argument("--input")
    parser.add_argument("--output")
    parser.add_argument("--mode", default="resize")
    parser.add_argument("--rounds", type=int, default=7, help="alternating network / batch rounds for the ratio")
    parser.add_argument("--precision", help="child processes only; the default is colorize's (auto)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda, as `colorize batch --device`")
    args = parser.parse_args()
    if args.child:
        args.scenario = args.child
        return child(args)

    import torch

    from colorize_cli.registry import ARCHS, models_dir

    weights = args.weights or models_dir() / ARCHS[6].weights_file
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if not weights.is_file():
            from colorize_cli.registry import build_network, write_weights

            weights = tmp / "arch6.pt"
            write_weights(build_network(6), 6, weights)  # timing does not depend on the values
        dirs = make_inputs(tmp / "in", args.small, args.many, args.big, args.huge)
        throughput = run_child("throughput", dirs["small"], tmp / "t", weights, args)
        # the other precision worth knowing, in a process of its own (alternating two in one process
        # slowed the float32 batch by 4%): bfloat16 where this CPU has it; float32 against CUDA's float16
        other = "float32" if args.device == "cuda" else "bfloat16" if bfloat16_runs_here() else None
        if other:
            other_run = run_child("throughput", dirs["small"], tmp / "t2", weights, args, precision=other)
        print(f"torch {torch.__version__}, {args.device}, batch size {throughput['batch_size']}, jobs {args.jobs}, torch threads "
              f"{args.torch_threads or torch.get_num_threads()}, heap {'glibc default' if args.default_heap else 'kept'}, "
              f"medians of {args.repeats} runs, {args.rounds} rounds for the ratio")
        print_throughput("400x400 JPEG, resize", throughput)
        if other:
            print_throughput(f"  --precision {other}", other_run)
            speed = statistics.median(other_run["batch"]) / statistics.median(throughput["batch"])
            print(f"  {other} batch: {speed:.2f}x the default's images/s (the run just before)")
        if args.big:
            big = median_of(args.repeats, lambda i: run_child("batch", dirs["big"], tmp / f"g{i}", weights, args))
            print(f"12 MP JPEG, resize: {big['seconds'] / big['count']:.3f} s per photo, "
                  f"peak RSS {big['rss_mib']:.0f} MiB")
        few = median_of(args.repeats, lambda i: run_child("batch", dirs["small10"], tmp / f"m10-{i}", weights, args))
        many = median_of(args.repeats, lambda i: run_child("batch", dirs["many"], tmp / f"many{i}", weights, args))
        print(f"peak RSS: 10 images {few['rss_mib']:.0f} MiB, {args.many} images {many['rss_mib']:.0f} MiB, "
              f"ratio {many['rss_mib'] / few['rss_mib']:.2f}")
        if args.huge:
            huge = run_child("batch", dirs["huge"], tmp / "h", weights, args, mode="tile")
            print(f"50 MP JPEG, tile: {huge['seconds']:.2f} s, peak RSS {huge['rss_mib']:.0f} MiB")


if __name__ == "__main__":
    main()
