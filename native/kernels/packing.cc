#include "packing.h"

#include <algorithm>
#include <cstring>

namespace binary_models {

void pack_weights(const ConvShape& s, const float* weights, uint64_t* packed) {
  const int group_in = s.group_in_channels(), group_out = s.group_out_channels();
  const int taps = s.taps(), words = s.words(), blocks = s.blocks();
  std::fill(packed, packed + s.packed_weight_words(), uint64_t(0));  // lanes past the group's output channels
  // Each output channel writes its own lane of every word (training packs the weights at every step).
#pragma omp parallel for schedule(static) if (s.packed_weight_words() > (1 << 14))
  for (int o = 0; o < s.out_channels; ++o) {
    const int g = o / group_out, local = o % group_out;
    uint64_t* block = packed + (int64_t(g) * blocks + local / kLanes) * taps * words * kLanes + local % kLanes;
    const float* filter = weights + int64_t(o) * group_in * taps;
    for (int t = 0; t < taps; ++t)
      for (int w = 0; w < words; ++w) {
        uint64_t bits = 0;
        const int end = std::min(group_in, (w + 1) * kWordBits);
        for (int c = w * kWordBits; c < end; ++c)
          bits |= uint64_t(filter[int64_t(c) * taps + t] >= 0.0f) << (c % kWordBits);
        block[(int64_t(t) * words + w) * kLanes] = bits;
      }
  }
}

namespace {

// Writes the plan's +1 padding pixel into the padding of padded rows [begin, end) of one image: whole rows
// above and below the image, the pad_w columns either side of it.
void fill_one_padding(const ConvShape& s, const ConvPlan& p, int begin, int end, uint64_t* image) {
  const int64_t words = p.pixel_words;
  for (int y = begin; y < end; ++y) {
    uint64_t* row = image + y * p.row_words;
    const bool border_row = y < s.pad_h || y >= s.pad_h + s.height;
    for (int x = 0; x < p.padded_w; ++x)
      if (border_row || x < s.pad_w || x >= s.pad_w + s.width)
        std::copy(p.one_pixel.begin(), p.one_pixel.end(), row + x * words);
  }
}

}  // namespace

void pack_activations(const ConvShape& s, const ConvPlan& p, const KernelSet& kernels, const float* input,
                      const ConvOptions& options, uint64_t* packed) {
  const int64_t image_floats = p.input_image_floats;
#pragma omp for schedule(static)
  for (int64_t item = 0; item < p.pack_items; ++item) {
    const int64_t n = item / p.row_ranges;
    const int range = int(item % p.row_ranges);
    const int begin = int(int64_t(p.padded_h) * range / p.row_ranges);
    const int end = int(int64_t(p.padded_h) * (range + 1) / p.row_ranges);
    uint64_t* image = packed + n * p.image_words;
    std::memset(image + begin * p.row_words, 0, (end - begin) * p.row_words * sizeof(uint64_t));  // padding: -1
    if (!p.one_pixel.empty()) fill_one_padding(s, p, begin, end, image);  // or +1
    const int y0 = std::max(begin - s.pad_h, 0), y1 = std::min(end - s.pad_h, s.height);
    if (y0 < y1)
      kernels.pack_rows(input + n * image_floats + int64_t(y0) * s.width, int64_t(s.height) * s.width, s.in_channels,
                        s.groups, s.words(), y1 - y0, s.width,
                        image + (y0 + s.pad_h) * p.row_words + s.pad_w * p.pixel_words, p.row_words,
                        options.threshold, options.direction);
  }
}

}  // namespace binary_models
