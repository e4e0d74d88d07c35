"""The six networks of the design, layer for layer, as its ARCHITECTURES.md tables give them (a design document
kept outside this repository; README.md lists the networks).

Every network maps scaled L (1 channel, about [-1, 1]) to scaled a, b (2 channels).
Networks 1 and 2 have no ReLU on their last layer, so they can predict negative a, b.
"""

import torch
import torch.nn.functional as F
from torch import nn


def down(c_in: int, c_out: int) -> nn.Sequential:
    """Conv 4x4 stride 2 (halves the side), then BN+ReLU."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 4, 2, 1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


def up(c_in: int, c_out: int) -> nn.Sequential:
    """Transposed conv 4x4 stride 2 (doubles the side), then BN+ReLU."""
    return nn.Sequential(nn.ConvTranspose2d(c_in, c_out, 4, 2, 1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


def dilated(channels: int) -> nn.Sequential:
    """Conv 4x4, stride 1, padding 3, dilation 2 (side kept), then BN+ReLU."""
    return nn.Sequential(nn.Conv2d(channels, channels, 4, 1, 3, dilation=2), nn.BatchNorm2d(channels), nn.ReLU(inplace=True))


class ColorizerNet(nn.Module):
    """Base class: pads any input side to a multiple of 2**depth and crops the output back."""

    depth = 1

    def forward(self, l: torch.Tensor) -> torch.Tensor:
        h, w = l.shape[-2:]
        m = 2**self.depth
        pad_h, pad_w = -h % m, -w % m
        if pad_h or pad_w:
            mode = "reflect" if pad_h < h and pad_w < w else "replicate"
            l = F.pad(l, (0, pad_w, 0, pad_h), mode=mode)
        return self.layers_forward(l)[..., :h, :w]

    def layers_forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class AutoEncoder(ColorizerNet):
    """Networks 1 and 2: plain encoder-decoder, no skips, linear last layer."""

    def __init__(self, widths: tuple[int, ...]):
        super().__init__()
        self.depth = len(widths)
        chans = (1, *widths)
        self.encoder = nn.Sequential(*(down(a, b) for a, b in zip(chans[:-1], chans[1:])))
        back = widths[::-1]
        self.decoder = nn.Sequential(*(up(a, b) for a, b in zip(back[:-1], back[1:])))
        self.last = nn.ConvTranspose2d(widths[0], 2, 4, 2, 1)

    def layers_forward(self, x):
        return self.last(self.decoder(self.encoder(x)))


class UNet(ColorizerNet):
    """Networks 3 to 6: U-Net with skips, optional dilated bottleneck layers, 3x3 output conv."""

    def __init__(self, widths: tuple[int, ...], n_dilated: int = 0):
        super().__init__()
        self.depth = len(widths)
        chans = (1, *widths)
        self.downs = nn.ModuleList(down(a, b) for a, b in zip(chans[:-1], chans[1:]))
        self.dilated = nn.Sequential(*(dilated(widths[-1]) for _ in range(n_dilated)))
        # tconv1 takes the bottleneck; every later tconv takes its predecessor's output cat a skip.
        ups = [up(widths[-1], widths[-2])]
        ups += [up(2 * widths[i], widths[i - 1]) for i in range(len(widths) - 2, 0, -1)]
        self.ups = nn.ModuleList(ups)
        self.last = nn.ConvTranspose2d(2 * widths[0], 2, 4, 2, 1)
        self.output = nn.Conv2d(3, 2, 3, 1, 1)
        self.init_output()

    @torch.no_grad()
    def init_output(self) -> None:
        """Start the ReLU before the output conv in its linear range, so that it cannot die.

        With PyTorch's default init the two ReLU channels go negative everywhere within a few
        hundred steps and the network collapses to a 3x3 conv of L. Here `last` starts small with
        bias +1 and the output conv passes channel c to output c with bias -1: a, b start near 0
        and a channel only stops passing gradient if the prediction reaches -1 (a, b of -110).
        """
        self.last.weight.mul_(0.1)
        self.last.bias.fill_(1.0)
        self.output.weight.zero_()
        self.output.weight[0, 0, 1, 1] = 1.0
        self.output.weight[1, 1, 1, 1] = 1.0
        self.output.bias.fill_(-1.0)

    def layers_forward(self, x):
        skips = []
        h = x
        for layer in self.downs:
            h = layer(h)
            skips.append(h)
        h = self.dilated(h)
        for layer, skip in zip(self.ups, reversed(skips[:-1])):
            h = torch.cat([layer(h), skip], dim=1)
        h = torch.cat([F.relu(self.last(h)), x], dim=1)
        return self.output(h)


class Network1(AutoEncoder):
    """Plain autoencoder, 2 down and 2 up."""

    def __init__(self):
        super().__init__((32, 64))


class Network2(AutoEncoder):
    """Deeper autoencoder, 3 down and 3 up."""

    def __init__(self):
        super().__init__((32, 64, 128))


class Network3(UNet):
    """First U-Net, 3 down and 3 up with skips."""

    def __init__(self):
        super().__init__((32, 64, 128))


class Network4(UNet):
    """U-Net one level deeper, 4 down and 4 up."""

    def __init__(self):
        super().__init__((32, 64, 128, 256))


class Network5(UNet):
    """Network 4 plus one dilated layer at the bottleneck."""

    def __init__(self):
        super().__init__((32, 64, 128, 256), n_dilated=1)


class Network6(UNet):
    """Network 4 plus two dilated layers: the design's final model."""

    def __init__(self):
        super().__init__((32, 64, 128, 256), n_dilated=2)
