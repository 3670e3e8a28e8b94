"""Today's Python builders of the eight built-in architectures, kept as the reference that
the shipped architecture files (reds/ir/builtin/*.json) must reproduce exactly."""
from __future__ import annotations

from reds.ir.spec import AvgPool, BatchNorm, Conv2d, Dense, DepthwiseConv2d, Flatten, Group, LeakyReLU, Op, ReLU, Spec

MIN_UNITS = 2


def _dnn(name: str, hidden: int):
    def build(input_shape, num_classes) -> Spec:
        groups = tuple(Group(f"fc{i}", hidden, MIN_UNITS) for i in (1, 2, 3))
        ops: list[Op] = [Flatten("flatten")]
        for i in (1, 2, 3):
            ops += [Dense(f"fc{i}", f"fc{i}"), ReLU(f"relu{i}")]
        ops.append(Dense("logits", num_classes))
        return Spec(name, tuple(input_shape), num_classes, groups, tuple(ops))
    return build


def _cnn(name: str, c1: int, c2: int, linear: int, dense: int):
    def build(input_shape, num_classes) -> Spec:
        groups = (Group("conv1", c1, MIN_UNITS), Group("conv2", c2, MIN_UNITS),
                  Group("linear", linear, MIN_UNITS), Group("fc", dense, MIN_UNITS))
        ops = (
            Conv2d("conv1", "conv1", (10, 4)), BatchNorm("bn1"), ReLU("relu1"),
            Conv2d("conv2", "conv2", (10, 4), (2, 1)), BatchNorm("bn2"), ReLU("relu2"),
            Flatten("flatten"),
            Dense("linear", "linear", bias=False),  # low-rank bottleneck: no bias, no activation
            Dense("fc", "fc"), BatchNorm("bn3"), ReLU("relu3"),
            Dense("logits", num_classes),
        )
        return Spec(name, tuple(input_shape), num_classes, groups, ops)
    return build


def _ds_cnn(name: str, filters: int, strides: list[tuple[int, int]], first_kernel, act=None, pool=None,
            eps: float = 1e-5):
    """Conv + BN + act, then one depthwise-separable block per entry of strides[1:], then an
    average pool (global, or `pool` = (kernel, stride)) and the classifier.

    Each block's depthwise conv runs on the channels of the group before it; its pointwise
    conv produces the next group. That ties the depthwise channels to the pointwise outputs
    that feed them (REDS permutes them apart and must retrain to recover)."""
    act = act or (lambda n: ReLU(n))

    def build(input_shape, num_classes) -> Spec:
        blocks = len(strides) - 1
        groups = tuple(Group(f"g{i}", filters, MIN_UNITS) for i in range(blocks + 1))
        ops: list[Op] = [Conv2d("conv0", "g0", first_kernel, strides[0], "same"),
                         BatchNorm("bn0", eps), act("act0")]
        for b in range(1, blocks + 1):
            ops += [DepthwiseConv2d(f"dw{b}", (3, 3), strides[b], "same"), BatchNorm(f"bn_dw{b}", eps),
                    act(f"act_dw{b}"),
                    Conv2d(f"pw{b}", f"g{b}", (1, 1)), BatchNorm(f"bn_pw{b}", eps), act(f"act_pw{b}")]
        ops += [AvgPool("pool", *(pool or ())), Flatten("flatten"), Dense("logits", num_classes)]
        return Spec(name, tuple(input_shape), num_classes, groups, tuple(ops))
    return build


def _mobilenet_v1(name: str, alpha: float):
    # (output channels at alpha 1, stride of the depthwise conv) for the 13 blocks
    blocks = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
              (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1)]

    def build(input_shape, num_classes) -> Spec:
        chans = [int(32 * alpha)] + [int(c * alpha) for c, _ in blocks]
        groups = tuple(Group(f"g{i}", c, MIN_UNITS) for i, c in enumerate(chans))
        ops: list[Op] = [Conv2d("conv0", "g0", (3, 3), (2, 2), "same"), BatchNorm("bn0"), ReLU("relu0")]
        for b, (_, s) in enumerate(blocks, start=1):
            ops += [DepthwiseConv2d(f"dw{b}", (3, 3), (s, s), "same"), BatchNorm(f"bn_dw{b}"), ReLU(f"relu_dw{b}"),
                    Conv2d(f"pw{b}", f"g{b}", (1, 1)), BatchNorm(f"bn_pw{b}"), ReLU(f"relu_pw{b}")]
        ops += [AvgPool("pool"), Flatten("flatten"), Dense("logits", num_classes)]
        return Spec(name, tuple(input_shape), num_classes, groups, tuple(ops))
    return build


BUILDERS = {name: build for name, build, *_ in [
    ("dnn-s", _dnn("dnn-s", 144), "synth-kws", "REDS DNN-S: 3 dense layers of 144 (KWS, 25x10 MFCC)", 40),
    ("dnn-l", _dnn("dnn-l", 436), "synth-kws", "REDS DNN-L: 3 dense layers of 436 (KWS, 25x10 MFCC)", 40),
    ("cnn-s", _cnn("cnn-s", 28, 30, 16, 128), "synth-kws", "REDS CNN-S: conv 28, conv 30, linear 16, dense 128"),
    ("cnn-l", _cnn("cnn-l", 60, 76, 58, 128), "synth-kws", "REDS CNN-L: conv 60, conv 76, linear 58, dense 128"),
    ("dscnn-s", _ds_cnn("dscnn-s", 64, [(2, 2)] + [(1, 1)] * 4, (10, 4)), "synth-kws",
         "REDS DS-CNN-S: conv 64 (10x4, stride 2x2) + 4 depthwise-separable blocks of 64"),
    ("dscnn-l", _ds_cnn("dscnn-l", 276, [(2, 1), (2, 2)] + [(1, 1)] * 4, (10, 4)), "synth-kws",
         "REDS DS-CNN-L: conv 276 (10x4, stride 2x1) + 5 depthwise-separable blocks of 276"),
    # REDS's released Fashion-MNIST network: the pool keeps a 2x10 map (1,280 features at
    # 28x28), batch norms with Keras's eps
    ("dscnn-s-img", _ds_cnn("dscnn-s-img", 64, [(2, 2)] + [(1, 1)] * 4, (3, 3),
                                act=lambda n: LeakyReLU(n, 0.3), pool=((13, 5), (1, 1)), eps=1e-3), "fmnist",
         "REDS vision DS-CNN-S: conv 64 (3x3, stride 2) + 4 DS blocks of 64, LeakyReLU(0.3), "
         "avg pool 13x5 stride 1, dense"),
    ("mobilenetv1-025", _mobilenet_v1("mobilenetv1-025", 0.25), "cifar10",
         "MobileNetV1 at width 0.25 (Visual Wake Words size; any image data set)"),
]}
