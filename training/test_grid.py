"""The model card's grid: test photos in rows, columns input (grey) / truth / network 6 / reference model.

    python training/test_grid.py GREY_DIR TRUTH_DIR OURS_DIR PEER_DIR OUT.jpg [--per-source 1] [--side 200]
"""

import argparse
from pathlib import Path

from PIL import Image, ImageDraw

COLUMNS = ("input", "truth", "network 6", "reference")


def first_of_each_source(grey: Path, per_source: int) -> list[Path]:
    """Relative stems: the first `per_source` photos (sorted) of each source folder."""
    picked = []
    for folder in sorted(p for p in grey.iterdir() if p.is_dir()):
        picked += [p.relative_to(grey).with_suffix("") for p in sorted(folder.glob("*.png"))[:per_source]]
    return picked


def find(folder: Path, stem: Path) -> Path:
    return next(p for p in (folder / stem.parent).glob(stem.name + ".*"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("grey", "truth", "ours", "peer"):
        parser.add_argument(name, type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--per-source", type=int, default=1)
    parser.add_argument("--side", type=int, default=200)
    args = parser.parse_args()
    stems = first_of_each_source(args.grey, args.per_source)
    side, label = args.side, 18
    grid = Image.new("RGB", (side * 4, label + side * len(stems)), "white")
    draw = ImageDraw.Draw(grid)
    for c, name in enumerate(COLUMNS):
        draw.text((c * side + 4, 3), name, fill="black")
    for r, stem in enumerate(stems):
        for c, folder in enumerate((args.grey, args.truth, args.ours, args.peer)):
            with Image.open(find(folder, stem)) as im:
                tile = im.convert("RGB")
                tile.thumbnail((side, side))
                grid.paste(tile, (c * side + (side - tile.width) // 2, label + r * side + (side - tile.height) // 2))
    grid.save(args.out, quality=85)
    print(f"{args.out}: {len(stems)} photos")


if __name__ == "__main__":
    main()
