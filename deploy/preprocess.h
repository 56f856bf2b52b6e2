// Image -> model input, as binary_models.transforms.validation_transform does it in Python, with the same
// MXNet operators called through the C API (so the input equals Python's bit for bit):
//   colour: _cvimdecode (RGB) -> _image_resize of the shorter side to round(size / crop_ratio) ->
//           centre crop size x size (mx.image.center_crop) -> _image_to_tensor (/255, CHW) -> _image_normalize
//   gray (models trained on the embedded digits): _cvimdecode (grayscale) -> _image_resize to size x size ->
//           _image_to_tensor -> _image_normalize (one mean/std) -> the channel repeated 3 times
#pragma once

#include <string>
#include <vector>

#include "io.h"
#include "run_file.h"

namespace deploy {

// The float32 (3, input_size, input_size) input for the encoded image (JPEG, PNG, ... file contents).
// Throws Error when the bytes are not an image MXNet's decoder reads.
std::vector<float> preprocess(const std::string& encoded_image, const Preprocessing& preprocessing);

}  // namespace deploy
