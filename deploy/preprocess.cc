#include "preprocess.h"

#include <cmath>

#include "mxnet_api.h"

namespace deploy {

namespace {

std::string tuple(const std::vector<double>& values) {
  std::string text = "(";
  for (size_t i = 0; i < values.size(); ++i) text += (i ? ", " : "") + decimal(values[i]);
  return text + ")";
}

// mx.image.scale_down: the largest (w, h) of the crop's aspect ratio that fits in the image.
void scale_down(int src_w, int src_h, double* w, double* h) {
  if (src_h < *h) { *w = *w * src_h / *h; *h = src_h; }
  if (src_w < *w) { *h = *h * src_w / *w; *w = src_w; }
}

// mx.image.center_crop(image, (size, size), interp=1), for an HWC image.
NDArray center_crop(const NDArray& image, int size) {
  std::vector<int> shape = image.shape();
  int h = shape[0], w = shape[1], channels = shape[2];
  double crop_w = size, crop_h = size;
  scale_down(w, h, &crop_w, &crop_h);
  int new_w = static_cast<int>(crop_w), new_h = static_cast<int>(crop_h);
  int x0 = static_cast<int>((w - new_w) / 2.0), y0 = static_cast<int>((h - new_h) / 2.0);
  NDArray crop = invoke("slice", {&image},
                        {{"begin", tuple({double(y0), double(x0), 0.0})},
                         {"end", tuple({double(y0 + new_h), double(x0 + new_w), double(channels)})}});
  if (new_w == size && new_h == size) return crop;
  return invoke("_cvimresize", {&crop}, {{"w", std::to_string(size)}, {"h", std::to_string(size)}, {"interp", "1"}});
}

}  // namespace


std::vector<float> preprocess(const std::string& encoded_image, const Preprocessing& p) {
  NDArray bytes = NDArray::from_bytes(encoded_image);
  NDArray image;
  try {
    image = invoke("_cvimdecode", {&bytes}, {{"flag", p.grayscale ? "0" : "1"}, {"to_rgb", "1"}});
  } catch (const Error&) {
    throw Error("not an image MXNet's decoder (OpenCV) can read: " + last_error());
  }
  std::string size = std::to_string(p.input_size);
  if (p.crop_ratio > 0) {
    std::string shorter = std::to_string(static_cast<int>(std::nearbyint(p.input_size / p.crop_ratio)));
    NDArray resized = invoke("_image_resize", {&image}, {{"size", shorter}, {"keep_ratio", "1"}, {"interp", "1"}});
    image = center_crop(resized, p.input_size);
  } else {
    image = invoke("_image_resize", {&image}, {{"size", "(" + size + ", " + size + ")"}, {"keep_ratio", "0"},
                                               {"interp", "1"}});
  }
  NDArray tensor = invoke("_image_to_tensor", {&image});
  NDArray normalized = invoke("_image_normalize", {&tensor}, {{"mean", tuple(p.mean)}, {"std", tuple(p.std)}});
  if (p.grayscale) normalized = invoke("repeat", {&normalized}, {{"repeats", "3"}, {"axis", "0"}});
  return normalized.to_floats();
}

}  // namespace deploy
