"""Training throughput: image-steps per second for networks 1, 3 and 6, by memory layout and precision.

    python benchmarks/bench_train.py [--data FOLDER] [--crop 128] [--batch-size 32] [--steps 6] [--default-heap]

Without --data it uses scikit-image's bundled colour photos scaled to a short side of 256 px (as most of
the training set is). The baseline is the plain loop (float32, contiguous tensors, a prepared batch);
each other row is a ratio to it measured in the same run: channels_last, bfloat16 autocast (only where
the CPU computes it natively), and the training loop's own batches (random crops of the 8-bit photos
in memory, LAB conversion) in the fastest configuration. Figures are medians over --steps timed steps
after one warm-up. With --data it also prints the photos' memory and the peak RSS.
"""

import argparse
import resource
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from skimage import data
from skimage.transform import rescale

from colorize_cli.color import scale_ab, scale_l
from colorize_cli import heap
from colorize_cli.process import configure_process
from colorize_cli.predictor import cpu_runs_bfloat16
from colorize_cli.registry import build_network
from colorize_cli.training_data import PhotoSet, load_photos, random_crops


def sample_photos(count: int = 64) -> PhotoSet:
    names = ["astronaut", "coffee", "chelsea", "rocket"]
    photos = []
    for name in names:
        rgb = getattr(data, name)()
        rgb = rescale(rgb, 256 / min(rgb.shape[:2]), channel_axis=2, anti_aliasing=True)
        photos.append((rgb * 255).round().astype(np.uint8))
    return PhotoSet([photos[i % len(photos)] for i in range(count)], ["."], np.zeros(count, int))


def time_steps(net, optimizer, next_batch, steps: int, dtype, memory_format) -> float:
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        lab = next_batch().contiguous(memory_format=memory_format)
        with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
            loss = F.mse_loss(net(scale_l(lab[:, :1])).float(), scale_ab(lab[:, 1:]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if i:  # the first step warms up
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--archs", default="1,3,6")
    parser.add_argument("--default-heap", action="store_true", help="leave glibc's malloc settings as they are")
    args = parser.parse_args()
    if args.default_heap:  # glibc's own settings: the one thing colorize's set-up would change, switched off
        heap.keep_freed_buffers = lambda: False
    configure_process()  # what `colorize train` (train_network) runs first
    t0 = time.perf_counter()
    photo_set = load_photos(args.data, log=lambda m: None) if args.data else sample_photos()
    if args.data:
        print(f"{len(photo_set)} photos loaded in {time.perf_counter() - t0:.0f} s, "
              f"{photo_set.nbytes / 2**30:.2f} GiB in memory")
    rng = np.random.default_rng(0)
    b = args.batch_size

    def loaded_batch():
        idx = rng.integers(0, len(photo_set), b)
        return torch.from_numpy(random_crops([photo_set.photos[i] for i in idx], args.crop, rng))

    fixed = loaded_batch().contiguous()
    bf16 = cpu_runs_bfloat16()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, crop {args.crop}, batch {b}, "
          f"heap {'glibc default' if args.default_heap else 'kept'}, native bfloat16: {'yes' if bf16 else 'no'}")
    configs = [("float32, contiguous (baseline)", torch.float32, torch.contiguous_format, False),
               ("float32, channels_last", torch.float32, torch.channels_last, False)]
    if bf16:
        configs.append(("bfloat16, channels_last", torch.bfloat16, torch.channels_last, False))
    fastest = configs[-1]
    configs.append((f"{fastest[0]}, with loading", fastest[1], fastest[2], True))
    for arch in (int(a) for a in args.archs.split(",")):
        print(f"network {arch}:  image-steps/s   ratio to baseline")
        baseline = None
        for name, dtype, memory_format, loading in configs:
            torch.manual_seed(0)
            net = build_network(arch).train().to(memory_format=memory_format)
            optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
            rate = b / time_steps(net, optimizer, loaded_batch if loading else (lambda: fixed), args.steps,
                                  dtype, memory_format)
            baseline = baseline or rate
            print(f"  {name:<42} {rate:>8.1f} {rate / baseline:>8.2f}")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")


if __name__ == "__main__":
    main()
