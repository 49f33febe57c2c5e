"""optnet's VGG (configurations A, B, D, E) from soumith's imagenet-multiGPU."""
from pynn import nn

from ._common import check_batch, rand_input

CFG = {
    'A': [64, 'M', 128, 'M', 256, 256, 'M', 512, 512, 'M', 512, 512, 'M'],
    'B': [64, 64, 'M', 128, 128, 'M', 256, 256, 'M', 512, 512, 'M', 512, 512, 'M'],
    'D': [64, 64, 'M', 128, 128, 'M', 256, 256, 256, 'M', 512, 512, 512, 'M', 512, 512, 512, 'M'],
    'E': [64, 64, 'M', 128, 128, 'M', 256, 256, 256, 256, 'M', 512, 512, 512, 512, 'M',
          512, 512, 512, 512, 'M'],
}


def vgg(modelType='A', batch=1):
    """Features: for each cfg entry a 3x3 pad-1 SpatialConvolution + ReLU(true), or 'M' a
    SpatialMaxPooling(2,2,2,2). Classifier: View(25088), Linear(25088,4096), Threshold(0,1e-6),
    Linear(4096,4096), Threshold(0,1e-6), Linear(4096,1000), LogSoftMax (no Dropout, as in
    optnet). imageSize 256, imageCrop 224; input rand(batch,3,224,224). modelType None -> 'A'."""
    batch = check_batch(batch, 'vgg')
    if modelType is None:
        modelType = 'A'
    if modelType not in CFG:
        raise ValueError('Unknown model type: %s | Please specify a modelType A or B or D or E' % (modelType,))
    nClasses = 1000

    features = nn.Sequential()
    iChannels = 3
    for v in CFG[modelType]:
        if v == 'M':
            features.add(nn.SpatialMaxPooling(2, 2, 2, 2))
        else:
            features.add(nn.SpatialConvolution(iChannels, v, 3, 3, 1, 1, 1, 1))
            features.add(nn.ReLU(True))
            iChannels = v

    classifier = nn.Sequential()
    classifier.add(nn.View(512 * 7 * 7))
    classifier.add(nn.Linear(512 * 7 * 7, 4096))
    classifier.add(nn.Threshold(0, 1e-6))
    classifier.add(nn.Linear(4096, 4096))
    classifier.add(nn.Threshold(0, 1e-6))
    classifier.add(nn.Linear(4096, nClasses))
    classifier.add(nn.LogSoftMax())

    model = nn.Sequential()
    model.add(features).add(classifier)
    model.imageSize = 256
    model.imageCrop = 224
    return model, rand_input(batch, 3, model.imageCrop, model.imageCrop)
