"""optnet's AlexNet: the two-branch ("One weird trick") variant from soumith's imagenet-multiGPU."""
from pynn import nn

from ._common import check_batch, rand_input


def _branch():
    fb = nn.Sequential()
    fb.add(nn.SpatialConvolution(3, 48, 11, 11, 4, 4, 2, 2))      # 224 -> 55
    fb.add(nn.ReLU(True))
    fb.add(nn.SpatialMaxPooling(3, 3, 2, 2))                    # 55 -> 27
    fb.add(nn.SpatialConvolution(48, 128, 5, 5, 1, 1, 2, 2))     # 27 -> 27
    fb.add(nn.ReLU(True))
    fb.add(nn.SpatialMaxPooling(3, 3, 2, 2))                    # 27 -> 13
    fb.add(nn.SpatialConvolution(128, 192, 3, 3, 1, 1, 1, 1))    # 13 -> 13
    fb.add(nn.ReLU(True))
    fb.add(nn.SpatialConvolution(192, 192, 3, 3, 1, 1, 1, 1))    # 13 -> 13
    fb.add(nn.ReLU(True))
    fb.add(nn.SpatialConvolution(192, 128, 3, 3, 1, 1, 1, 1))    # 13 -> 13
    fb.add(nn.ReLU(True))
    fb.add(nn.SpatialMaxPooling(3, 3, 2, 2))                    # 13 -> 6
    return fb


def alexnet(opt=None, batch=1):
    """Features: Concat(2) of two identical conv branches (48-128-192-192-128 channels), the
    second a clone whose convolutions are reset (fresh weights). Classifier: View(9216),
    Linear(9216,4096), Threshold(0,1e-6), Linear(4096,4096), Threshold(0,1e-6),
    Linear(4096,1000), LogSoftMax (no Dropout, as in optnet). imageSize 256, imageCrop 224;
    input rand(batch,3,224,224). View(9216) has no numInputDims, so with batch 1 the
    classifier runs on a 1-D 9216 vector and the output is 1000 (Lua's View semantics)."""
    batch = check_batch(batch, 'alexnet')
    features = nn.Concat(2)
    fb1 = _branch()
    fb2 = fb1.clone()
    for v in fb2.findModules('nn.SpatialConvolution'):
        v.reset()  # branch 2 gets its own fresh weights
    features.add(fb1)
    features.add(fb2)

    classifier = nn.Sequential()
    classifier.add(nn.View(256 * 6 * 6))
    classifier.add(nn.Linear(256 * 6 * 6, 4096))
    classifier.add(nn.Threshold(0, 1e-6))
    classifier.add(nn.Linear(4096, 4096))
    classifier.add(nn.Threshold(0, 1e-6))
    classifier.add(nn.Linear(4096, 1000))
    classifier.add(nn.LogSoftMax())

    model = nn.Sequential().add(features).add(classifier)
    model.imageSize = 256
    model.imageCrop = 224
    return model, rand_input(batch, 3, model.imageCrop, model.imageCrop)
