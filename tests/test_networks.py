"""The six networks against the layer tables of docs/ARCHITECTURES.md."""

import pytest
import torch
from torch import nn

from colorize_cli.registry import ARCHS, build_network

C, T = "conv", "tconv"
DOWN = [(C, 1, 32), (C, 32, 64), (C, 64, 128), (C, 128, 256)]
DIL = (C, 256, 256, 4, 1, 3, 2)
K3 = (C, 3, 2, 3, 1, 1, 1)


def std(kind, c_in, c_out):
    return (kind, c_in, c_out, 4, 2, 1, 1)


# (kind, in, out, kernel, stride, padding, dilation) in forward order, straight from the tables
TABLES = {
    1: [std(*DOWN[0]), std(*DOWN[1]), std(T, 64, 32), std(T, 32, 2)],
    2: [*(std(*d) for d in DOWN[:3]), std(T, 128, 64), std(T, 64, 32), std(T, 32, 2)],
    3: [*(std(*d) for d in DOWN[:3]), std(T, 128, 64), std(T, 128, 32), std(T, 64, 2), K3],
    4: [*(std(*d) for d in DOWN), std(T, 256, 128), std(T, 256, 64), std(T, 128, 32), std(T, 64, 2), K3],
    5: [*(std(*d) for d in DOWN), DIL, std(T, 256, 128), std(T, 256, 64), std(T, 128, 32), std(T, 64, 2), K3],
    6: [*(std(*d) for d in DOWN), DIL, DIL, std(T, 256, 128), std(T, 256, 64), std(T, 128, 32), std(T, 64, 2), K3],
}


def layer_list(net: nn.Module):
    rows = []
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            kind = T if isinstance(m, nn.ConvTranspose2d) else C
            rows.append((kind, m.in_channels, m.out_channels, m.kernel_size[0], m.stride[0], m.padding[0], m.dilation[0]))
    return rows


@pytest.mark.parametrize("arch", range(1, 7))
def test_layer_list_matches_the_table(arch):
    assert layer_list(build_network(arch)) == TABLES[arch]


@pytest.mark.parametrize("arch", range(1, 7))
def test_batch_norm_follows_every_layer_but_the_last(arch):
    net = build_network(arch)
    n_conv = len(TABLES[arch])
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    assert n_bn == n_conv - (1 if arch <= 2 else 2)


@pytest.mark.parametrize("arch", range(1, 7))
@pytest.mark.parametrize("size", [(400, 400), (37, 53), (1, 1), (3, 500)])
def test_output_is_two_channels_at_the_input_size(arch, size):
    net = build_network(arch).eval()
    with torch.no_grad():
        out = net(torch.zeros(2, 1, *size))
    assert out.shape == (2, 2, *size)


def test_network_6_has_about_3_64_million_parameters():
    count = sum(p.numel() for p in build_network(6).parameters())
    assert 3_600_000 < count < 3_680_000


@pytest.mark.parametrize("arch", [1, 2])
def test_autoencoders_can_predict_negative_ab(arch):
    """The documented fix: no ReLU on the last layer of networks 1 and 2."""
    torch.manual_seed(0)
    net = build_network(arch).eval()
    with torch.no_grad():
        out = net(torch.randn(1, 1, 32, 32))
    assert out.min() < 0


def test_registry_covers_six_networks_with_weights_files():
    assert sorted(ARCHS) == [1, 2, 3, 4, 5, 6]
    assert [ARCHS[n].weights_file for n in ARCHS] == [f"arch{n}.pt" for n in range(1, 7)]


def last_relu_pass_rate(net: nn.Module, steps: int) -> float:
    """Train `steps` Adam steps on a mapping that needs both signs of a, b; the share of pixels the
    ReLU before the output conv passes on the last step."""
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(net.parameters(), 1e-3)
    seen = []
    net.last.register_forward_hook(lambda m, i, out: seen.append(out.detach()))
    for _ in range(steps):
        l = torch.rand(4, 1, 32, 32) * 2 - 1
        target = torch.cat([0.3 * torch.sin(3 * l), 0.3 * torch.cos(3 * l) - 0.15], dim=1)
        loss = ((net(l) - target) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return (seen[-1] > 0).float().mean().item()


@pytest.mark.parametrize("arch", [3, 6])
def test_unet_relu_before_the_output_conv_stays_alive_in_training(arch):
    """With PyTorch's default init this ReLU dies and the U-Net collapses to a 3x3 conv of L."""
    assert last_relu_pass_rate(build_network(arch), steps=40) > 0.99


def test_unet_starts_near_grey():
    net = build_network(6).eval()
    with torch.no_grad():
        out = net(torch.rand(2, 1, 64, 64) * 2 - 1)
    assert out.abs().mean() < 0.2
