"""optnet's GoogLeNet (the BN-Inception-style variant of soumith's imagenet-multiGPU, without
batch normalization), with the auxiliary classifier joined to the main one by Concat(2)."""
from pynn import nn

from ._common import check_batch, rand_input


def inception(input_size, config):
    """Concat(2) of: 1x1 conv (if config[0][0] != 0); 1x1 -> 3x3; 1x1 -> 3x3 -> 3x3;
    SpatialZeroPadding(1) + 3x3 stride-1 ceil pooling ('max' or 'avg') [+ 1x1 conv if
    config[3][1] != 0]. Every convolution is followed by ReLU(true)."""
    concat = nn.Concat(2)
    if config[0][0] != 0:
        conv1 = nn.Sequential()
        conv1.add(nn.SpatialConvolution(input_size, config[0][0], 1, 1, 1, 1)).add(nn.ReLU(True))
        concat.add(conv1)

    conv3 = nn.Sequential()
    conv3.add(nn.SpatialConvolution(input_size, config[1][0], 1, 1, 1, 1)).add(nn.ReLU(True))
    conv3.add(nn.SpatialConvolution(config[1][0], config[1][1], 3, 3, 1, 1, 1, 1)).add(nn.ReLU(True))
    concat.add(conv3)

    conv3xx = nn.Sequential()
    conv3xx.add(nn.SpatialConvolution(input_size, config[2][0], 1, 1, 1, 1)).add(nn.ReLU(True))
    conv3xx.add(nn.SpatialConvolution(config[2][0], config[2][1], 3, 3, 1, 1, 1, 1)).add(nn.ReLU(True))
    conv3xx.add(nn.SpatialConvolution(config[2][1], config[2][1], 3, 3, 1, 1, 1, 1)).add(nn.ReLU(True))
    concat.add(conv3xx)

    pool = nn.Sequential()
    pool.add(nn.SpatialZeroPadding(1, 1, 1, 1))
    if config[3][0] == 'max':
        pool.add(nn.SpatialMaxPooling(3, 3, 1, 1).ceil())
    elif config[3][0] == 'avg':
        pool.add(nn.SpatialAveragePooling(3, 3, 1, 1).ceil())
    else:
        raise ValueError('Unknown pooling %r' % (config[3][0],))
    if config[3][1] != 0:
        pool.add(nn.SpatialConvolution(input_size, config[3][1], 1, 1, 1, 1)).add(nn.ReLU(True))
    concat.add(pool)
    return concat


def googlenet(opt=None, batch=1):
    """Stem 7x7/2 conv 64, ceil max-pool, 1x1 conv 64, 3x3 conv 192, ceil max-pool; inceptions
    3a 3b 3c, 2x2/2 conv 576->576, 4a-4d; then Concat(2) of the main branch (4e, 2x2/2 conv
    1024->1024, 5a 5b, 7x7 avg-pool, View(1024), Linear(1024,1000), LogSoftMax) and the auxiliary
    classifier (5x5/3 ceil avg-pool, 1x1 conv 576->128, View(2048), Linear(2048,768), ReLU,
    Linear(768,1000), LogSoftMax). Input rand(batch,3,224,224); output batch x 2000."""
    batch = check_batch(batch, 'googlenet')
    nClasses = 1000

    features = nn.Sequential()
    features.add(nn.SpatialConvolution(3, 64, 7, 7, 2, 2, 3, 3)).add(nn.ReLU(True))
    features.add(nn.SpatialMaxPooling(3, 3, 2, 2).ceil())
    features.add(nn.SpatialConvolution(64, 64, 1, 1)).add(nn.ReLU(True))
    features.add(nn.SpatialConvolution(64, 192, 3, 3, 1, 1, 1, 1)).add(nn.ReLU(True))
    features.add(nn.SpatialMaxPooling(3, 3, 2, 2).ceil())
    features.add(inception(192, [[64], [64, 64], [64, 96], ['avg', 32]]))       # 3(a)
    features.add(inception(256, [[64], [64, 96], [64, 96], ['avg', 64]]))       # 3(b)
    features.add(inception(320, [[0], [128, 160], [64, 96], ['max', 0]]))       # 3(c)
    features.add(nn.SpatialConvolution(576, 576, 2, 2, 2, 2))
    features.add(inception(576, [[224], [64, 96], [96, 128], ['avg', 128]]))    # 4(a)
    features.add(inception(576, [[192], [96, 128], [96, 128], ['avg', 128]]))   # 4(b)
    features.add(inception(576, [[160], [128, 160], [128, 160], ['avg', 96]]))  # 4(c)
    features.add(inception(576, [[96], [128, 192], [160, 192], ['avg', 96]]))   # 4(d)

    main_branch = nn.Sequential()
    main_branch.add(inception(576, [[0], [128, 192], [192, 256], ['max', 0]]))  # 4(e)
    main_branch.add(nn.SpatialConvolution(1024, 1024, 2, 2, 2, 2))
    main_branch.add(inception(1024, [[352], [192, 320], [160, 224], ['avg', 128]]))  # 5(a)
    main_branch.add(inception(1024, [[352], [192, 320], [192, 224], ['max', 128]]))  # 5(b)
    main_branch.add(nn.SpatialAveragePooling(7, 7, 1, 1))
    main_branch.add(nn.View(1024).setNumInputDims(3))
    main_branch.add(nn.Linear(1024, nClasses))
    main_branch.add(nn.LogSoftMax())

    aux_classifier = nn.Sequential()
    aux_classifier.add(nn.SpatialAveragePooling(5, 5, 3, 3).ceil())
    aux_classifier.add(nn.SpatialConvolution(576, 128, 1, 1, 1, 1))
    aux_classifier.add(nn.View(128 * 4 * 4).setNumInputDims(3))
    aux_classifier.add(nn.Linear(128 * 4 * 4, 768))
    aux_classifier.add(nn.ReLU())
    aux_classifier.add(nn.Linear(768, nClasses))
    aux_classifier.add(nn.LogSoftMax())

    splitter = nn.Concat(2)
    splitter.add(main_branch).add(aux_classifier)
    model = nn.Sequential().add(features).add(splitter)
    model.imageSize = 256
    model.imageCrop = 224
    return model, rand_input(batch, 3, model.imageCrop, model.imageCrop)
