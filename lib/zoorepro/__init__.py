"""zoorepro: the Ascend ModelZoo SqueezeNet 1.1 recipe as a rerunnable reproducibility report."""
__version__ = "0.1.0"
