/** The data pipeline: batch sources (Fashion-MNIST, image folders), the paper's augmentation, a seedable PRNG. */
export type { Batch, BatchOptions, BatchSource } from './types.js';
export { Rng, permutation } from './rng.js';
export { AUGMENT_STREAM, SHUFFLE_STREAM, batchCount, epochOrder } from './batching.js';
export {
  IMAGENET_MEAN, IMAGENET_STD, IMAGENET_PCA_EIGVAL, IMAGENET_PCA_EIGVEC, PCA_ALPHA_STD,
  hwcToChw, crop, centerCrop, centerCropOrigin, randomCrop, randomCropOrigin, offsetFromUniform, hflip, tenCrop,
  pcaAlphas, pcaShift, addChannelShift, pcaJitter, normalize,
  bilinearAxis, resizePlanesInto, resizeBilinear, resizeBilinearBatch,
  drawTrainParams, augmentTrain, augmentEval,
  type CHW, type RGB, type BilinearAxis, type TrainDraws, type TrainAugmentOptions,
} from './augment.js';
export {
  FASHION_MNIST_CLASSES, FASHION_MNIST_SIDE, FASHION_MNIST_IMAGES_PER_CLASS, FASHION_MNIST_TRAIN_PER_CLASS,
  FASHION_MNIST_TRAIN_SIZE, FASHION_MNIST_TEST_PER_CLASS, FASHION_MNIST_TEST_SIZE, FASHION_MNIST_MEAN, FASHION_MNIST_STD,
  FashionMnistSource, loadFashionMnist, loadFashionMnistRaw, fashionMnistDataDir, parseClothesJson,
  writeFashionMnistPack, readFashionMnistPack,
  type FashionMnistOptions, type FashionMnistRaw, type FashionMnistSplit,
} from './fashion-mnist.js';
export { ImageFolder, type ImageFolderOptions, type SkippedFile } from './image-folder.js';
export { listImageFolder, FolderError, type FolderListing, type FolderProblem } from './list-folder.js';
export { IMAGENET_CLASSES, IMAGENET_PREPROCESS, TORCHVISION_ALEXNET_ACCURACY } from './imagenet-classes.js';
export { pack, type PackOptions, type PackResult, type PackProgress, type PackSettings } from './pack.js';
export { PackedDataset, type PackedDatasetOptions } from './packed.js';
