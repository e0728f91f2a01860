#!/usr/bin/env python3
"""The CIFAR ResNet training step in PyTorch, for side-by-side timing with `reslab bench resnet20`.

Same math as ResidualLab's CifarResNet with the 'residual' connection (He et al. 2016, sec. 4.2):
a 3x3 convolution with `width` filters, BatchNorm, ReLU; three stages of n = (depth - 2) / 6 basic
blocks (conv3x3 - BN - ReLU - conv3x3 - BN, then ReLU(x + F(x))) with width, 2 width and 4 width
filters; the first block of stages 2 and 3 has stride 2 and the parameter-free option-A shortcut
(subsample by 2, zero-pad the new channels); global average pooling and a linear classifier.
Convolutions without bias, He normal init (fan in, ReLU gain); BatchNorm and Linear keep PyTorch's
defaults. SGD with momentum, weight decay on the convolution and linear weights only, constant lr.
Each step draws a batch from a pool of synthetic byte images (N(127.5, 64^2), rounded and clamped)
with random labels, reshuffled every epoch, and normalises it with the pool's mean and std, as the
ResidualLab trainer does with an image set. ResidualLab's step also reads the gradient norm of
every weight layer and of all parameters and the batch error (its trainer's diagnostics); this one
does not. Prints one JSON object: per-step milliseconds, images per second, peak and final RSS.
"""
import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F

from bench_timing import report, time_steps


def conv3x3(c_in, c_out, stride):
    conv = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
    nn.init.kaiming_normal_(conv.weight, mode="fan_in", nonlinearity="relu")
    return conv


class BasicBlock(nn.Module):
    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv1 = conv3x3(c_in, c_out, stride)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = conv3x3(c_out, c_out, 1)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.extra_channels = c_out - c_in
        self.stride = stride

    def forward(self, x):
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        shortcut = x
        if self.stride != 1 or self.extra_channels:  # option A: subsample, zero-pad the new channels
            shortcut = F.pad(x[:, :, ::self.stride, ::self.stride], (0, 0, 0, 0, 0, self.extra_channels))
        return F.relu(shortcut + y)


class CifarResNet(nn.Module):
    def __init__(self, depth, width, channels, classes):
        super().__init__()
        n = (depth - 2) // 6
        self.conv1 = conv3x3(channels, width, 1)
        self.bn1 = nn.BatchNorm2d(width)
        blocks = []
        for c_in, c_out in ((width, width), (width, 2 * width), (2 * width, 4 * width)):
            blocks.append(BasicBlock(c_in, c_out, 1 if c_in == c_out else 2))
            blocks.extend(BasicBlock(c_out, c_out, 1) for _ in range(n - 1))
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(4 * width, classes)

    def forward(self, x):
        h = self.blocks(F.relu(self.bn1(self.conv1(x))))
        return self.fc(h.mean((2, 3)))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--depth", type=int, default=20)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--image-size", type=int, default=28)
    p.add_argument("--channels", type=int, default=1)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--pool", type=int, default=1024, help="synthetic training images the batches are drawn from")
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    if a.depth < 8 or (a.depth - 2) % 6 != 0:
        p.error(f"--depth must be 6n+2 with n >= 1 (8, 14, 20, ...), got {a.depth}")
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    model = CifarResNet(a.depth, a.width, a.channels, a.classes)
    model.train()
    decay = [w for w in model.parameters() if w.dim() >= 2]
    no_decay = [w for w in model.parameters() if w.dim() < 2]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": a.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
                          lr=a.lr, momentum=a.momentum)

    g = torch.Generator().manual_seed(a.seed)
    pixels = (torch.randn(a.pool, a.channels, a.image_size, a.image_size, generator=g) * 64 + 127.5).round().clamp(0, 255).to(torch.uint8)
    labels = torch.randint(a.classes, (a.pool,), generator=g)
    scaled = pixels.double() / 255
    mean, std = scaled.mean().item(), scaled.std().item()
    batch = min(a.batch_size, a.pool)
    order, next_index = None, a.pool

    def step():
        nonlocal order, next_index
        if next_index + batch > a.pool:
            order, next_index = torch.randperm(a.pool, generator=g), 0
        index = order[next_index:next_index + batch]
        next_index += batch
        x = pixels.index_select(0, index).float().div_(255).sub_(mean).div_(std)
        y = labels.index_select(0, index)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=False)
        loss.backward()
        opt.step()
        loss.item()

    times, rss_after_warmup = time_steps(step, a.steps, a.warmup)
    report(times, rss_after_warmup, batch, "image", model)

if __name__ == "__main__":
    main()
