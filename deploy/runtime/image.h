// Image -> model input without MXNet, as binary_models.transforms.validation_transform does it: PNG or JPEG
// decoded with libpng / libjpeg as OpenCV decodes them (RGB, or gray with libpng's 0.299/0.587 weights),
// the shorter side resized to round(size / crop_ratio) with OpenCV's INTER_LINEAR arithmetic (11-bit fixed
// point; an exact halving averages 2x2 as INTER_AREA), the centre cropped, /255, normalised.
#pragma once

#include <string>
#include <vector>

#include "../run_file.h"

namespace binary_models::runtime {

struct Image {
  int height = 0, width = 0, channels = 0;
  std::vector<unsigned char> pixels;  // HWC
};

// Throws deploy::Error when the bytes are no PNG or JPEG these libraries read.
Image decode_image(const std::string& bytes, bool grayscale);
// OpenCV's cv::resize(src, dst, Size(width, height), 0, 0, INTER_LINEAR) on 8-bit pixels.
Image resize_linear(const Image& image, int width, int height);
// The float32 (3, size, size) input.
std::vector<float> preprocess_image(const std::string& bytes, const deploy::Preprocessing& preprocessing);

}  // namespace binary_models::runtime
