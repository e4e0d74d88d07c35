"""Training throughput: image-steps per second for networks 1, 3 and 6, with and without data loading.

    python benchmarks/bench_train.py [--data FOLDER] [--crop 128] [--batch-size 32] [--steps 6] [--default-heap]

Without --data it uses scikit-image's bundled colour photos scaled to a short side of 320 px (as the
training set is). "with loading" includes taking random crops from the cached LAB photos and
building the batch tensor; "network only" reuses one prepared batch. Their ratio shows whether
loading keeps up with the network. Figures are medians over --steps timed steps after one warm-up.
"""

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from skimage import data
from skimage.transform import rescale

from colorize_cli.colour import rgb_to_lab, scale_ab, scale_l
from colorize_cli.heap import keep_freed_buffers
from colorize_cli.registry import build_network
from colorize_cli.train import load_lab_photos, random_crops


def sample_photos(count: int = 64) -> list[np.ndarray]:
    names = ["astronaut", "coffee", "chelsea", "rocket"]
    photos = []
    for name in names:
        rgb = getattr(data, name)().astype(np.float32) / 255
        rgb = rescale(rgb, 320 / min(rgb.shape[:2]), channel_axis=2, anti_aliasing=True).astype(np.float32)
        photos.append(rgb_to_lab(rgb).astype(np.float16))
    return [photos[i % len(photos)] for i in range(count)]


def time_steps(net, optimizer, next_batch, steps: int) -> float:
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        lab = next_batch()
        loss = F.mse_loss(net(scale_l(lab[:, :1])), scale_ab(lab[:, 1:]))
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
    if not args.default_heap:
        keep_freed_buffers()  # as `colorize train` does
    photos = load_lab_photos(args.data, None) if args.data else sample_photos()
    rng = np.random.default_rng(0)
    b = args.batch_size

    def loaded_batch():
        idx = rng.integers(0, len(photos), b)
        return torch.from_numpy(random_crops([photos[i] for i in idx], args.crop, rng))

    fixed = loaded_batch()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, crop {args.crop}, batch {b}, "
          f"heap {'glibc default' if args.default_heap else 'kept'}")
    print(f"{'network':>8} {'with loading':>14} {'network only':>14} {'ratio':>7}   (image-steps/s)")
    for arch in (int(a) for a in args.archs.split(",")):
        torch.manual_seed(0)
        net = build_network(arch).train()
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
        only = b / time_steps(net, optimizer, lambda: fixed, args.steps)
        loading = b / time_steps(net, optimizer, loaded_batch, args.steps)
        print(f"{arch:>8} {loading:>14.1f} {only:>14.1f} {loading / only:>7.2f}")


if __name__ == "__main__":
    main()
