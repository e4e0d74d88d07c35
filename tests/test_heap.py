"""keep_freed_buffers: after the first images, the network's passes no longer page-fault their buffers."""

import json
import os
import subprocess
import sys

import pytest

from colorize_cli import heap
from colorize_cli.heap import USER_SETTINGS, keep_freed_buffers

OTHER_SETTINGS = (*USER_SETTINGS, "GLIBC_TUNABLES")  # dask, for one, sets MALLOC_TRIM_THRESHOLD_ in its process

PASSES = """
import json, resource, sys, torch
from colorize_cli.heap import keep_freed_buffers
from colorize_cli.networks import Network6
from colorize_cli.predictor import Colorizer
torch.set_num_threads(1)
kept = keep_freed_buffers() if sys.argv[1] == "keep" else False
colorizer = Colorizer(Network6(), "cpu", batch_size=1)
l = torch.rand(1, 1, 400, 400) * 100
faults = []
for _ in range(10):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    colorizer.run_network(l)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"kept": kept, "faults": faults}))
"""


def faults_per_pass(setting: str) -> dict:
    env = {name: value for name, value in os.environ.items() if name not in OTHER_SETTINGS}
    done = subprocess.run([sys.executable, "-c", PASSES, setting], capture_output=True, text=True, check=True, env=env)
    return json.loads(done.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc and page-fault counts")
def test_kept_buffers_stop_page_faults_after_the_first_passes():
    result = faults_per_pass("keep")
    if not result["kept"]:
        pytest.skip("not glibc")
    kept = result["faults"]
    # pages of 4 KiB; a pass's activations are about 10,000. The median of the last eight, because
    # a pass now and then still grows the heap (glibc's defaults: thousands on most passes)
    assert sorted(kept[2:])[4] < 200
    assert kept[0] > 1000  # the first pass faults its buffers in: the count measures what it should


def test_the_users_own_malloc_settings_win(monkeypatch):
    for name in OTHER_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "1048576")
    assert keep_freed_buffers() is False
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_")
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=0")
    assert keep_freed_buffers() is False


RELEASE = """
import json, numpy as np
from colorize_cli.heap import image_done, keep_freed_buffers
def rss_mib():
    return int(next(line for line in open("/proc/self/status") if line.startswith("VmRSS")).split()[1]) // 1024
kept = keep_freed_buffers()
blocks = [np.ones(1 << 20, np.uint8) for _ in range(128)]  # 128 MiB in blocks of 1 MiB, from the heap
del blocks  # freed, and kept by the heap
before = rss_mib()
released = [image_done() for _ in range(64)]
print(json.dumps({"kept": kept, "released": released, "freed_mib": before - rss_mib()}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc and /proc")
def test_kept_free_pages_go_back_to_the_os_every_32nd_image():
    env = {name: value for name, value in os.environ.items() if name not in OTHER_SETTINGS}
    done = subprocess.run([sys.executable, "-c", RELEASE], capture_output=True, text=True, check=True, env=env)
    result = json.loads(done.stdout)
    if not result["kept"]:
        pytest.skip("not glibc")
    assert [i + 1 for i, done in enumerate(result["released"]) if done] == [32, 64]
    assert result["freed_mib"] > 100


def test_nothing_is_released_unless_the_buffers_were_kept(monkeypatch):
    monkeypatch.setattr(heap, "_malloc_trim", None)
    monkeypatch.setattr(heap, "_images_done", 0)
    assert not any(heap.image_done() for _ in range(64))
