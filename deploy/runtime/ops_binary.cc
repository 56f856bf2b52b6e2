// The native library's operators (native/ops/ registers them in MXNet) on the same kernels: binary_conv2d,
// binary_dense, binary_dense_stage and norm_pool, with the attributes native/mxnet_ops.cc documents.
#include <type_traits>

#include "../../native/kernels/dense_stage.h"
#include "../../native/kernels/norm_pool.h"
#include "../../native/kernels/rprelu.h"
#include "../error.h"
#include "ops.h"

namespace binary_models::runtime {

using deploy::Error;

namespace {

PadMode pad_mode(AttrReader& r) {
  const std::string mode = r.text("pad_mode", "minus_one", {"minus_one", "zero", "one"});
  return mode == "zero" ? PadMode::kZero : mode == "one" ? PadMode::kOne : PadMode::kMinusOne;
}

void check(const std::string& problem) {
  if (!problem.empty()) throw Error(problem);
}

Shape packed_shape(const ConvShape& s) {
  return {int64_t(s.groups) * s.blocks(), s.kernel_h, s.kernel_w, s.words(), kLanes};
}

// A kernel shape (ConvShape, DenseStageShape, NormPoolShape) with the batch and size of NCHW `data`, checked
// (its channels against `*channels`, the attributes', where there are such).
template <typename KernelShape>
KernelShape with_data(KernelShape s, const Value& data, int* channels) {
  expect_nchw(data);
  if (channels && data.shape[1] != *channels)
    throw Error("data has " + std::to_string(data.shape[1]) + " channels but in_channels is " + std::to_string(*channels));
  if constexpr (std::is_same_v<KernelShape, NormPoolShape>) s.channels = int(data.shape[1]);
  s.batch = int(data.shape[0]);
  s.height = int(data.shape[2]);
  s.width = int(data.shape[3]);
  check(s.check());
  return s;
}

// binary_conv2d and binary_dense: inputs data, packed weight, [threshold, direction], [scale].
class BinaryConv : public Op {
 public:
  BinaryConv(const Attrs& attrs, bool dense) : dense_(dense) {
    if (dense) {
      AttrReader r(attrs, {"num_hidden", "in_units", "scaled"});
      int units = r.integer("num_hidden", 0, 1, kMaxChannels, true);
      int in_units = r.integer("in_units", 0, 1, kMaxChannels, true);
      scaled_ = r.boolean("scaled", false);
      shape_ = dense_shape(1, in_units, units);
    } else {
      AttrReader r(attrs, {"kernel", "stride", "dilate", "pad", "num_filter", "num_group", "in_channels", "pad_mode",
                           "scaled", "folded_bn"});
      read_window(r, &shape_, {}, kMaxKernel, kMaxStride);
      auto dilate = r.ints("dilate", 2, {1}, 1, kMaxDilation);
      shape_.dilate_h = dilate[0], shape_.dilate_w = dilate[1];
      shape_.out_channels = r.integer("num_filter", 0, 1, kMaxChannels, true);
      shape_.groups = r.integer("num_group", 1, 1, kMaxChannels);
      shape_.in_channels = r.integer("in_channels", 0, 1, kMaxChannels, true);
      shape_.pad_mode = pad_mode(r);
      scaled_ = r.boolean("scaled", false);
      folded_bn_ = r.boolean("folded_bn", false);
      check(shape_.check_geometry());
    }
  }

  std::pair<size_t, size_t> arity() const override {
    size_t n = 2 + (folded_bn_ ? 2 : 0) + (scaled_ ? 1 : 0);
    return {n, n};
  }
  DType input_dtype(size_t i) const override { return i == 1 ? DType::kInt64 : DType::kFloat32; }

  ConvShape shape_of(const Value& data) const {
    ConvShape s = shape_;
    if (dense_) {
      if (data.shape.size() < 2) throw Error("data must have a batch axis and features, got " + shape_text(data.shape));
      int64_t features = element_count(data.shape) / data.shape[0];
      if (features != s.in_channels)
        throw Error("data has " + std::to_string(features) + " features per sample but in_units is " +
                    std::to_string(s.in_channels));
      if (data.shape[0] > kMaxSize) throw Error("a batch of " + std::to_string(data.shape[0]) + " is too large");
      s.batch = int(data.shape[0]);
      return s;
    }
    return with_data(s, data, &s.in_channels);
  }

  Shape infer(const std::vector<Value>& in) const override {
    ConvShape s = shape_of(in[0]);
    expect_shape("packed weight", in[1], packed_shape(s));
    size_t next = 2;
    if (folded_bn_) {
      expect_shape("threshold", in[next++], {s.in_channels});
      expect_shape("direction", in[next++], {s.in_channels});
    }
    if (scaled_) expect_shape("scale", in[next], {s.out_channels});
    if (dense_) return {s.batch, s.out_channels};
    return {s.batch, s.out_channels, s.out_height(), s.out_width()};
  }

  size_t workspace(const std::vector<Value>& in) const override { return workspace_bytes(shape_of(in[0])); }

  void run(const std::vector<Value>& in, float* output, const RunContext& context) const override {
    ConvShape s = shape_of(in[0]);
    ConvOptions options;
    if (folded_bn_) options.threshold = in[2].floats(), options.direction = in[3].floats();
    const float* scale = scaled_ ? in[folded_bn_ ? 4 : 2].floats() : nullptr;
    binary_conv2d(s, in[0].floats(), static_cast<const uint64_t*>(in[1].data), scale, output, context.workspace,
                  Isa::kAuto, options);
  }

 private:
  ConvShape shape_;
  bool dense_, scaled_ = false, folded_bn_ = false;
};

// binary_dense_stage: data, packed weights, thresholds, directions, [scales].
class DenseStage : public Op {
 public:
  explicit DenseStage(const Attrs& attrs) {
    AttrReader r(attrs, {"units", "in_channels", "growth", "kernel", "dilate", "pad_mode", "scaled"});
    shape_.units = r.text("units", "", {});
    shape_.in_channels = r.integer("in_channels", 0, 1, kMaxChannels, true);
    shape_.growth = r.integer("growth", 64, 1, kMaxChannels);
    shape_.kernel = r.integer("kernel", 3, 1, kMaxKernel);
    shape_.dilation = r.integer("dilate", 1, 1, kMaxDilation);
    shape_.pad_mode = pad_mode(r);
    scaled_ = r.boolean("scaled", false);
  }
  std::pair<size_t, size_t> arity() const override { return {scaled_ ? 5 : 4, scaled_ ? 5 : 4}; }
  DType input_dtype(size_t i) const override { return i == 1 ? DType::kInt64 : DType::kFloat32; }

  DenseStageShape shape_of(const Value& data) const {
    int channels = shape_.in_channels;
    return with_data(shape_, data, &channels);
  }

  Shape infer(const std::vector<Value>& in) const override {
    DenseStageShape s = shape_of(in[0]);
    expect_shape("packed weights", in[1], {s.weight_words()});
    expect_shape("thresholds", in[2], {s.threshold_count()});
    expect_shape("directions", in[3], {s.threshold_count()});
    if (scaled_) expect_shape("scales", in[4], {int64_t(s.growth) * int64_t(s.units.size())});
    return {s.batch, s.out_channels(), s.height, s.width};
  }

  size_t workspace(const std::vector<Value>& in) const override {
    return dense_stage_workspace_bytes(shape_of(in[0]));
  }

  void run(const std::vector<Value>& in, float* output, const RunContext& context) const override {
    dense_stage(shape_of(in[0]), in[0].floats(), static_cast<const uint64_t*>(in[1].data), in[2].floats(),
                in[3].floats(), scaled_ ? in[4].floats() : nullptr, output, context.workspace);
  }

 private:
  DenseStageShape shape_;
  bool scaled_ = false;
};

// norm_pool: data, mean, scale, shift.
class NormPool : public Op {
 public:
  explicit NormPool(const Attrs& attrs) {
    AttrReader r(attrs, {"kernel", "stride", "pad", "relu", "shuffle_groups"});
    read_window(r, &shape_, {1}, kMaxSize, kMaxSize);
    shape_.relu = r.boolean("relu", false);
    shape_.shuffle_groups = r.integer("shuffle_groups", 1, 1, kMaxChannels);
  }
  std::pair<size_t, size_t> arity() const override { return {4, 4}; }

  NormPoolShape shape_of(const Value& data) const { return with_data(shape_, data, nullptr); }

  Shape infer(const std::vector<Value>& in) const override {
    NormPoolShape s = shape_of(in[0]);
    for (size_t i = 1; i < 4; ++i) expect_shape(i == 1 ? "mean" : i == 2 ? "scale" : "shift", in[i], {s.channels});
    return {s.batch, s.channels, s.out_height(), s.out_width()};
  }

  void run(const std::vector<Value>& in, float* output, const RunContext&) const override {
    norm_pool(shape_of(in[0]), in[0].floats(), in[1].floats(), in[2].floats(), in[3].floats(), output);
  }

 private:
  NormPoolShape shape_;
};

// rprelu: data, shift_in, slope, shift_out (ReActNet's RPReLU, kernels/rprelu.h).
class RPReLU : public Op {
 public:
  explicit RPReLU(const Attrs& attrs) { AttrReader(attrs, {}); }  // refuses any attribute
  std::pair<size_t, size_t> arity() const override { return {4, 4}; }

  Shape infer(const std::vector<Value>& in) const override {
    if (in[0].shape.size() != 4) throw Error("rprelu: data must be NCHW (4 dimensions)");
    for (size_t i = 1; i < 4; ++i)
      expect_shape(i == 1 ? "shift_in" : i == 2 ? "slope" : "shift_out", in[i], {in[0].shape[1]});
    return in[0].shape;
  }

  void run(const std::vector<Value>& in, float* output, const RunContext&) const override {
    const Shape& s = in[0].shape;
    rprelu(s[0], s[1], s[2] * s[3], in[0].floats(), in[1].floats(), in[2].floats(), in[3].floats(), output);
  }
};

}  // namespace

std::unique_ptr<Op> make_binary_op(const std::string& op, const Attrs& attrs) {
  if (op == "binary_conv2d") return std::make_unique<BinaryConv>(attrs, false);
  if (op == "binary_dense") return std::make_unique<BinaryConv>(attrs, true);
  if (op == "binary_dense_stage") return std::make_unique<DenseStage>(attrs);
  if (op == "norm_pool") return std::make_unique<NormPool>(attrs);
  if (op == "rprelu") return std::make_unique<RPReLU>(attrs);
  return nullptr;
}

}  // namespace binary_models::runtime
