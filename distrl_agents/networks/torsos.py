"""Torsos: observation -> feature vector ``[B, F]``. Frames stay uint8 until here."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn


def frames_to_float(obs: Tensor) -> Tensor:
    """uint8 frames -> float in [0, 1] on the device; float inputs pass through unchanged.

    Under bf16 autocast the frames go straight to bf16 (0..255 are exact there) and are divided
    in place (fp32 arithmetic, rounded once): the very values the convolution would get by
    casting the fp32 ``obs / 255`` to bf16, without that full-size intermediate and its cast.
    In fp32 too the division is in place on the converted copy (the values of ``obs.float() /
    255``, without a second full-size tensor: 0.1 ms of a DER update's 2 ms forward pass).
    Every torso starts with it, so frames converted before the torso (``Agent.learn`` converts
    each batch's frames once for all the passes over them) reach it unchanged: bf16 inputs
    under bf16 autocast stay bf16 (the values the torso would have made of the uint8 frames).
    """
    if obs.dtype == torch.uint8:
        if _autocast_bf16(obs.device.type):
            return obs.to(torch.bfloat16).div_(255.0)
        return obs.float().div_(255.0)
    if obs.dtype == torch.bfloat16 and _autocast_bf16(obs.device.type):
        return obs
    return obs.float()


def _autocast_bf16(device_type: str) -> bool:
    if device_type not in ("cpu", "cuda") or not torch.is_autocast_enabled(device_type):
        return False
    return torch.get_autocast_dtype(device_type) == torch.bfloat16


class _ConvStack(nn.Module):
    """An image torso: ``layers`` (built for the observation's ``S`` channels) over the frames
    scaled to [0, 1], then flattened; ``output_dim`` is measured on a zero frame."""

    def __init__(
        self, name: str, obs_shape: Sequence[int], layers: Callable[[int], list[nn.Module]]
    ) -> None:
        super().__init__()
        if len(obs_shape) != 3:
            raise ValueError(
                f"torso {name!r} needs image observations [S, H, W]; got obs_shape={tuple(obs_shape)}"
            )
        self.net = nn.Sequential(*layers(obs_shape[0]), nn.Flatten())
        with torch.no_grad():
            self.output_dim = int(self.net(torch.zeros(1, *obs_shape)).shape[-1])

    def forward(self, obs: Tensor) -> Tensor:
        return self.net(frames_to_float(obs))


class NatureCNN(_ConvStack):
    """Nature DQN convolutional torso (Mnih et al. 2015, Methods "Model architecture").

    ``[B, S, 84, 84]`` uint8 -> conv 32x8x8/4 -> conv 64x4x4/2 -> conv 64x3x3/1 -> ``[B, 3136]``.
    The 512-unit fully connected layer belongs to the head (its ``hidden`` width).
    """

    def __init__(self, obs_shape: Sequence[int]) -> None:
        super().__init__(
            "nature",
            obs_shape,
            lambda channels: [
                nn.Conv2d(channels, 32, kernel_size=8, stride=4),
                nn.ReLU(),
                nn.Conv2d(32, 64, kernel_size=4, stride=2),
                nn.ReLU(),
                nn.Conv2d(64, 64, kernel_size=3, stride=1),
                nn.ReLU(),
            ],
        )


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's (and Flax's, ``lax.padtype_to_pads``) SAME padding of one spatial dimension.

    The output has ``ceil(size / stride)`` positions; the padding they need,
    ``max((ceil(size / stride) - 1) * stride + kernel - size, 0)``, is split ``(before, after)``
    with the odd pixel after (bottom / right). E.g. 21 wide, kernel 4, stride 2: 11 outputs,
    3 pixels of padding, ``(1, 2)``.
    """
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def same_conv(
    in_channels: int, out_channels: int, kernel: int, stride: int, size: tuple[int, int]
) -> tuple[list[nn.Module], tuple[int, int]]:
    """A convolution padded SAME for ``size = (H, W)`` inputs, and its output size.

    Symmetric padding goes to the ``nn.Conv2d`` itself; asymmetric padding is a ``ZeroPad2d``
    before an unpadded ``nn.Conv2d`` (plain convolutions either way, so bf16 weight storage and
    channels_last treat them like any other).
    """
    (top, bottom), (left, right) = (same_padding(n, kernel, stride) for n in size)
    out = (-(-size[0] // stride), -(-size[1] // stride))
    if top == bottom and left == right:
        conv = nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=(top, left))
        return [conv], out
    conv = nn.Conv2d(in_channels, out_channels, kernel, stride=stride)
    return [nn.ZeroPad2d((left, right, top, bottom)), conv], out


class DopamineCNN(_ConvStack):
    """Dopamine's Nature DQN torso: :class:`NatureCNN`'s three convolutions padded SAME.

    Dopamine's networks (``atari_lib.NatureDQNNetwork`` and the other TF networks use
    ``padding='same'``; the JAX ``networks.py`` modules use ``nn.Conv``, whose default padding
    is SAME) keep ``ceil(in / stride)`` positions per layer:
    ``[B, S, 84, 84]`` -> conv 32x8x8/4 (pad 2, 2) -> 21x21 -> conv 64x4x4/2 (pad 1, 2) -> 11x11
    -> conv 64x3x3/1 (pad 1, 1) -> 11x11 -> ``[B, 7744]`` (64 x 11 x 11), where ``NatureCNN``
    (VALID, the DQN paper's) gives 20 -> 9 -> 7 and 3,136 features.
    """

    def __init__(self, obs_shape: Sequence[int]) -> None:
        def layers(channels: int) -> list[nn.Module]:
            size = (int(obs_shape[1]), int(obs_shape[2]))
            out: list[nn.Module] = []
            for in_ch, out_ch, kernel, stride in (
                (channels, 32, 8, 4),
                (32, 64, 4, 2),
                (64, 64, 3, 1),
            ):
                conv, size = same_conv(in_ch, out_ch, kernel, stride, size)
                out += [*conv, nn.ReLU()]
            return out

        super().__init__("dopamine", obs_shape, layers)


class DataEfficientCNN(_ConvStack):
    """Data-efficient Rainbow's smaller torso (van Hasselt et al. 2019, Appendix, hyperparameter
    table: channels 32, 64; filter sizes 5x5, 5x5; strides 5, 5).

    ``[B, S, 84, 84]`` uint8 -> conv 32x5x5/5 -> conv 64x5x5/5 -> ``[B, 576]`` (64 x 3 x 3).
    The paper's 256-unit hidden layer belongs to the head (``hidden: 256``).
    """

    def __init__(self, obs_shape: Sequence[int]) -> None:
        super().__init__(
            "der",
            obs_shape,
            lambda channels: [
                nn.Conv2d(channels, 32, kernel_size=5, stride=5),
                nn.ReLU(),
                nn.Conv2d(32, 64, kernel_size=5, stride=5),
                nn.ReLU(),
            ],
        )


class _ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv0(torch.relu(x))
        out = self.conv1(torch.relu(out))
        return x + out


class ImpalaCNN(nn.Module):
    """IMPALA ResNet torso (Espeholt et al. 2018, Fig. 3 right, "large" network).

    Per stage: conv 3x3 -> max-pool 3x3/2 -> two residual blocks; then ReLU, flatten. The
    paper's LSTM and its own fully connected layer are not used (the head's ``hidden`` layer
    plays that role).
    """

    def __init__(self, obs_shape: Sequence[int], channels: Sequence[int] = (16, 32, 32)) -> None:
        super().__init__()
        if len(obs_shape) != 3:
            raise ValueError(
                f"torso 'impala' needs image observations [S, H, W]; got obs_shape={tuple(obs_shape)}"
            )
        layers: list[nn.Module] = []
        in_ch = obs_shape[0]
        for out_ch in channels:
            layers += [
                nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1),
                nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
                _ResidualBlock(out_ch),
                _ResidualBlock(out_ch),
            ]
            in_ch = out_ch
        layers += [nn.ReLU(), nn.Flatten()]
        self.net = nn.Sequential(*layers)
        with torch.no_grad():
            self.output_dim = int(self.net(torch.zeros(1, *obs_shape)).shape[-1])

    def forward(self, obs: Tensor) -> Tensor:
        return self.net(frames_to_float(obs))


class MLPTorso(nn.Module):
    """Fully connected torso for vector observations (tiny test tasks): flatten -> [Linear, ReLU]*."""

    def __init__(self, obs_shape: Sequence[int], sizes: Sequence[int] = (64, 64)) -> None:
        super().__init__()
        in_dim = 1
        for d in obs_shape:
            in_dim *= int(d)
        layers: list[nn.Module] = [nn.Flatten()]
        for size in sizes:
            layers += [nn.Linear(in_dim, int(size)), nn.ReLU()]
            in_dim = int(size)
        self.net = nn.Sequential(*layers)
        self.output_dim = in_dim

    def forward(self, obs: Tensor) -> Tensor:
        return self.net(frames_to_float(obs))
