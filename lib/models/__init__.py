"""Networks, one module per paper.

The per-image networks (``kanezaki2018``, ``s3net``) each hold a *batch of independent models*:
parameters are stacked along the output-channel axis and run as grouped convolutions, so B
images are optimised by B separate networks in one forward pass with no statistic shared.
The dataset-level networks (``jigsawgan``: a DCGAN generator, a discriminator with a jigsaw
head, and the segmentation network built on its trunk; ``seggan``: torchvision's DeepLabV3, a
mask-to-image generator and an image discriminator) are ordinary single networks."""

from .jigsawgan import Discriminator, Generator, SegmentationNet
from .kanezaki2018 import Kanezaki2018Net
from .s3net import S3NetNetwork
from .seggan import DeepLab, ImageDiscriminator, MaskToImage, segmentation_net

__all__ = ["DeepLab", "Discriminator", "Generator", "ImageDiscriminator", "Kanezaki2018Net", "MaskToImage",
           "S3NetNetwork", "SegmentationNet", "segmentation_net"]
