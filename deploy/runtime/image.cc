#include "image.h"

#include <jpeglib.h>
#include <png.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <csetjmp>
#include <cstring>

#include "../error.h"

namespace binary_models::runtime {

using deploy::Error;

namespace {

constexpr int kMaxSide = 1 << 15;
constexpr int64_t kMaxPixels = int64_t(1) << 28;

void check_size(int64_t width, int64_t height) {
  if (width < 1 || height < 1 || width > kMaxSide || height > kMaxSide || width * height > kMaxPixels)
    throw Error("an image of " + std::to_string(width) + "x" + std::to_string(height) + " pixels is not supported");
}

// ---- PNG, set up as OpenCV's PngDecoder does ----

struct PngSource {
  const unsigned char* data;
  size_t size, at;
};

void png_read(png_structp png, png_bytep out, png_size_t n) {
  auto* source = static_cast<PngSource*>(png_get_io_ptr(png));
  if (n > source->size - source->at) png_error(png, "the file is truncated");
  std::memcpy(out, source->data + source->at, n);
  source->at += n;
}

void png_fail(png_structp png, png_const_charp message) {
  *static_cast<std::string*>(png_get_error_ptr(png)) = message;
  png_longjmp(png, 1);
}

void png_quiet(png_structp, png_const_charp) {}

Image decode_png(const std::string& bytes, bool grayscale) {
  std::string problem;
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &problem, png_fail, png_quiet);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  if (!info) {
    png_destroy_read_struct(&png, nullptr, nullptr);
    throw std::bad_alloc();
  }
  PngSource source{reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), 0};
  Image image;
  std::vector<png_bytep> rows;
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    throw Error("not a PNG libpng reads: " + problem);
  }
  png_set_read_fn(png, &source, png_read);
  png_set_user_limits(png, kMaxSide, kMaxSide);
  png_read_info(png, info);
  const int type = png_get_color_type(png, info), depth = png_get_bit_depth(png, info);
  if (depth == 16) png_set_strip_16(png);
  png_set_strip_alpha(png);
  if (type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (!(type & PNG_COLOR_MASK_COLOR) && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (grayscale) png_set_rgb_to_gray(png, 1, 0.299, 0.587);
  else if (!(type & PNG_COLOR_MASK_COLOR)) png_set_gray_to_rgb(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  image.width = int(png_get_image_width(png, info));
  image.height = int(png_get_image_height(png, info));
  image.channels = grayscale ? 1 : 3;
  check_size(image.width, image.height);
  if (png_get_rowbytes(png, info) != size_t(image.width) * image.channels) png_error(png, "unexpected row size");
  image.pixels.resize(size_t(image.width) * image.height * image.channels);
  for (int y = 0; y < image.height; ++y) rows.push_back(image.pixels.data() + size_t(y) * image.width * image.channels);
  png_read_image(png, rows.data());
  png_destroy_read_struct(&png, &info, nullptr);
  return image;
}

// ---- JPEG ----

struct JpegError {
  jpeg_error_mgr manager;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

void jpeg_fail(j_common_ptr cinfo) {
  auto* error = reinterpret_cast<JpegError*>(cinfo->err);
  error->manager.format_message(cinfo, error->message);
  std::longjmp(error->jump, 1);
}

Image decode_jpeg(const std::string& bytes, bool grayscale) {
  jpeg_decompress_struct cinfo;
  JpegError error;
  cinfo.err = jpeg_std_error(&error.manager);
  error.manager.error_exit = jpeg_fail;
  error.manager.output_message = [](j_common_ptr) {};
  Image image;
  if (setjmp(error.jump)) {
    jpeg_destroy_decompress(&cinfo);
    throw Error(std::string("not a JPEG libjpeg reads: ") + error.message);
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<unsigned long>(bytes.size()));
  jpeg_read_header(&cinfo, TRUE);
  if (cinfo.num_components == 4) {
    std::strcpy(error.message, "CMYK JPEG images are not supported");
    std::longjmp(error.jump, 1);
  }
  cinfo.out_color_space = grayscale ? JCS_GRAYSCALE : JCS_RGB;
  check_size(cinfo.image_width, cinfo.image_height);
  jpeg_start_decompress(&cinfo);
  image.width = int(cinfo.output_width);
  image.height = int(cinfo.output_height);
  image.channels = int(cinfo.output_components);
  image.pixels.resize(size_t(image.width) * image.height * image.channels);
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = image.pixels.data() + size_t(cinfo.output_scanline) * image.width * image.channels;
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return image;
}

// ---- OpenCV's INTER_LINEAR on 8 bits ----

constexpr int kCoefBits = 11, kCoefScale = 1 << kCoefBits;

// Source index and the two 11-bit weights of each destination coordinate (OpenCV's resize's tables).
void linear_table(int src, int dst, std::vector<int>* index, std::vector<short>* weights, int* first_edge) {
  const double scale = 1.0 / (double(dst) / src);
  *first_edge = dst;
  for (int d = 0; d < dst; ++d) {
    float f = float((d + 0.5) * scale - 0.5);
    int s = int(std::floor(f));
    f -= float(s);
    if (s < 0) f = 0, s = 0;
    if (s + 1 >= src) {
      *first_edge = std::min(*first_edge, d);
      if (s >= src - 1) f = 0, s = src - 1;
    }
    index->push_back(s);
    weights->push_back(short(std::lrint((1.f - f) * kCoefScale)));
    weights->push_back(short(std::lrint(f * kCoefScale)));
  }
}

// OpenCV's vertical pass: vector lanes (all but a tail of 1-4 values of the row) use 16-bit arithmetic on
// the sums shifted right by 4, the tail the exact 22-bit rounding.
int vector_prefix(int width) {
  int x = 0;
  for (; x <= width - 16; x += 16) {}
  for (; x < width - 4; x += 4) {}
  return x;
}

Image resize_area_half(const Image& in) {
  Image out{in.height / 2, in.width / 2, in.channels, {}};
  out.pixels.resize(size_t(out.width) * out.height * out.channels);
  const int c = in.channels;
  for (int y = 0; y < out.height; ++y)
    for (int x = 0; x < out.width; ++x)
      for (int k = 0; k < c; ++k) {
        auto at = [&](int yy, int xx) { return int(in.pixels[(size_t(yy) * in.width + xx) * c + k]); };
        int sum = at(2 * y, 2 * x) + at(2 * y, 2 * x + 1) + at(2 * y + 1, 2 * x) + at(2 * y + 1, 2 * x + 1);
        out.pixels[(size_t(y) * out.width + x) * c + k] = (unsigned char)((sum + 2) >> 2);
      }
  return out;
}

}  // namespace

Image decode_image(const std::string& bytes, bool grayscale) {
  if (bytes.size() >= 8 && png_sig_cmp(reinterpret_cast<png_const_bytep>(bytes.data()), 0, 8) == 0)
    return decode_png(bytes, grayscale);
  if (bytes.size() >= 3 && static_cast<unsigned char>(bytes[0]) == 0xFF && static_cast<unsigned char>(bytes[1]) == 0xD8)
    return decode_jpeg(bytes, grayscale);
  throw Error("not a PNG or JPEG image (the runtime reads those two)");
}

Image resize_linear(const Image& in, int width, int height) {
  if (width == in.width && height == in.height) return in;
  if (in.width == 2 * width && in.height == 2 * height) return resize_area_half(in);
  const int c = in.channels;
  std::vector<int> xs, ys;
  std::vector<short> alpha, beta;
  int x_edge = 0, y_edge = 0;
  linear_table(in.width, width, &xs, &alpha, &x_edge);
  linear_table(in.height, height, &ys, &beta, &y_edge);
  // Horizontal pass of one source row: 11-bit weighted sums (past the right edge: the edge pixel times 2048).
  auto horizontal = [&](int sy, std::vector<int>* row) {
    const unsigned char* s = in.pixels.data() + size_t(sy) * in.width * c;
    for (int x = 0; x < width; ++x)
      for (int k = 0; k < c; ++k) {
        const int sx = xs[x] * c + k;
        (*row)[size_t(x) * c + k] = x < x_edge ? s[sx] * alpha[2 * x] + s[sx + c] * alpha[2 * x + 1] : s[sx] * kCoefScale;
      }
  };
  Image out{height, width, c, {}};
  out.pixels.resize(size_t(width) * height * c);
  const int row_width = width * c, vectorized = vector_prefix(row_width);
  std::vector<int> row0(row_width), row1(row_width);
  for (int y = 0; y < height; ++y) {
    const int sy = ys[y];
    const int sy1 = std::min(sy + 1, in.height - 1);
    horizontal(sy, &row0);
    horizontal(sy1, &row1);
    const short b0 = beta[2 * y], b1 = beta[2 * y + 1];
    unsigned char* d = out.pixels.data() + size_t(y) * row_width;
    for (int x = 0; x < row_width; ++x) {
      int value;
      if (x < vectorized) {
        auto mulhi = [](int a, int b) { return (a * b) >> 16; };
        int s0 = std::clamp(row0[x] >> 4, -32768, 32767), s1 = std::clamp(row1[x] >> 4, -32768, 32767);
        value = std::clamp(mulhi(s0, b0) + mulhi(s1, b1), -32768, 32767);
        value = (std::min(value + 2, 32767)) >> 2;
      } else {
        value = (b0 * row0[x] + b1 * row1[x] + (1 << (2 * kCoefBits - 1))) >> (2 * kCoefBits);
      }
      d[x] = (unsigned char)std::clamp(value, 0, 255);
    }
  }
  return out;
}

std::vector<float> preprocess_image(const std::string& bytes, const deploy::Preprocessing& p) {
  Image image = decode_image(bytes, p.grayscale);
  const int size = p.input_size;
  if (p.crop_ratio > 0) {
    // _image_resize with keep_ratio: the shorter side to round(size / crop_ratio), the other in proportion.
    const int shorter = int(std::nearbyint(size / p.crop_ratio));
    int w = shorter, h = shorter;
    if (image.height > image.width) h = int(int64_t(image.height) * shorter / image.width);
    else w = int(int64_t(image.width) * shorter / image.height);
    check_size(w, h);
    image = resize_linear(image, w, h);
    // mx.image.center_crop: the largest square that fits, resized to size x size when it is smaller.
    double crop_w = size, crop_h = size;
    if (image.height < crop_h) crop_w = crop_w * image.height / crop_h, crop_h = image.height;
    if (image.width < crop_w) crop_h = crop_h * image.width / crop_w, crop_w = image.width;
    const int new_w = int(crop_w), new_h = int(crop_h);
    const int x0 = int((image.width - new_w) / 2.0), y0 = int((image.height - new_h) / 2.0);
    Image crop{new_h, new_w, image.channels, {}};
    for (int y = 0; y < new_h; ++y) {
      const unsigned char* row = image.pixels.data() + (size_t(y0 + y) * image.width + x0) * image.channels;
      crop.pixels.insert(crop.pixels.end(), row, row + size_t(new_w) * image.channels);
    }
    image = resize_linear(crop, size, size);
  } else {
    image = resize_linear(image, size, size);
  }
  const size_t plane = size_t(size) * size;
  std::vector<float> input(3 * plane);
  for (int k = 0; k < 3; ++k) {
    const int source = image.channels == 1 ? 0 : k;
    const float mean = float(p.mean[p.mean.size() == 1 ? 0 : k]), std = float(p.std[p.std.size() == 1 ? 0 : k]);
    for (size_t i = 0; i < plane; ++i)
      input[k * plane + i] = (float(image.pixels[i * image.channels + source]) / 255.0f - mean) / std;
  }
  return input;
}

}  // namespace binary_models::runtime
