"""A user's own small network, written in plain PyTorch: a residual CNN for 32x32 images.

`reds import-model model.py:TinyResNet --out tiny-resnet.json` traces it into an
architecture file; the residual `+` ties the stem's channels and the block's second conv
into one unit group, so every submodel keeps them at one width.
"""
import torch
from torch import nn


class TinyResNet(nn.Module):
    def __init__(self, classes: int = 4, width: int = 16):
        super().__init__()
        self.stem = nn.Conv2d(1, width, 3, stride=2, padding=1, bias=False)
        self.bn0 = nn.BatchNorm2d(width)
        self.conv1 = nn.Conv2d(width, 2 * width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(2 * width)
        self.conv2 = nn.Conv2d(2 * width, width, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.pool = nn.MaxPool2d(2)
        self.head = nn.Linear(width, classes)

    def forward(self, x):
        x = torch.relu(self.bn0(self.stem(x)))
        y = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(y)) + x)  # the residual connection
        x = self.pool(x)
        x = nn.functional.adaptive_avg_pool2d(x, 1)
        return self.head(torch.flatten(x, 1))
