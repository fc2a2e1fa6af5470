"""Networks, one module per paper. Each network holds a *batch of independent models*:
parameters are stacked along the output-channel axis and run as grouped convolutions, so B
images are optimised by B separate networks in one forward pass with no statistic shared."""

from .kanezaki2018 import Kanezaki2018Net
from .s3net import S3NetNetwork

__all__ = ["Kanezaki2018Net", "S3NetNetwork"]
