// Image -> model input, as binary_models.transforms.validation_transform does it in Python, with the same
// MXNet operators called through the C API (so the input equals Python's bit for bit):
//   colour: _cvimdecode (RGB) -> _image_resize of the shorter side to round(size / crop_ratio) ->
//           centre crop size x size (mx.image.center_crop) -> _image_to_tensor (/255, CHW) -> _image_normalize
//   gray (models trained on the embedded digits): _cvimdecode (grayscale) -> _image_resize to size x size ->
//           _image_to_tensor -> _image_normalize (one mean/std) -> the channel repeated 3 times
#pragma once

#include <string>
#include <vector>

#include "json.h"

namespace deploy {

struct Preprocessing {
  int input_size = 224;
  double crop_ratio = 0.875;  // <= 0: no crop, the image is stretched to input_size x input_size
  bool grayscale = false;
  std::vector<double> mean = {0.485, 0.456, 0.406};  // ImageNet's (GluonCV's train_imagenet.py), RGB
  std::vector<double> std = {0.229, 0.224, 0.225};
};

// The "preprocessing" object of a run file (binary_models.transforms.Preprocessing.as_dict()); members
// it lacks keep their value in base. Throws Error naming a bad member.
Preprocessing preprocessing_from_json(const Value& object, Preprocessing base);

// Shortest decimal that reads back as the same double (what Python's str(float) writes).
std::string decimal(double x);

// The float32 (3, input_size, input_size) input for the encoded image (JPEG, PNG, ... file contents).
// Throws Error when the bytes are not an image MXNet's decoder reads.
std::vector<float> preprocess(const std::string& encoded_image, const Preprocessing& preprocessing);

}  // namespace deploy
