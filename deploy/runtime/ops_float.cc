// MXNet's full-precision operators that a converted classifier keeps: Convolution (the stems, transitions
// and shortcuts), FullyConnected (the head), BatchNorm, Activation (and the standalone relu, sigmoid, tanh,
// softsign), LeakyReLU (leaky, prelu) and Pooling, with MXNet's attributes and defaults. Convolution and
// FullyConnected multiply matrices (Convolution with native/kernels/float_conv.h, FullyConnected with Eigen;
// docs/runtime.md says why), the others are plain loops; all split their work over the OpenMP team of the caller.
#include <Eigen/Core>
#include <algorithm>
#include <cfloat>
#include <climits>
#include <cmath>

#include "../error.h"
#include "../../native/kernels/float_conv.h"
#include "ops.h"

namespace binary_models::runtime {

using deploy::Error;

namespace {

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ConstMap = Eigen::Map<const RowMatrix>;
using Map = Eigen::Map<RowMatrix>;

constexpr int kMaxSide = 1 << 16;

// Parallel loops only where there is enough work for a second thread to pay off.
constexpr int64_t kMinParallelWork = 1 << 15;

struct Window {
  int kernel_h = 1, kernel_w = 1, stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dilate_h = 1, dilate_w = 1;
  void read(AttrReader& r, bool kernel_required) {
    read_window(r, this, kernel_required ? std::vector<int>{} : std::vector<int>{1}, kMaxSide, kMaxSide);
  }
  int extent_h() const { return dilate_h * (kernel_h - 1) + 1; }
  int extent_w() const { return dilate_w * (kernel_w - 1) + 1; }
};

// ---- Convolution, and the MXNet extension's float_conv2d with its attributes: native/kernels/float_conv.h
// (the same code, so float_conv2d gives the bits it gives in MXNet) ----

class Convolution : public Op {
 public:
  Convolution(const Attrs& attrs, bool mxnet_operator) {
    std::set<std::string> known{"kernel", "stride", "dilate", "pad", "num_filter", "num_group", "no_bias"};
    if (mxnet_operator) known.insert({"layout", "workspace", "cudnn_tune", "cudnn_off"});
    AttrReader r(attrs, known);
    Window window;
    window.read(r, true);
    auto dilate = r.ints("dilate", 2, {1}, 1, kMaxSide);
    shape_.kernel_h = window.kernel_h, shape_.kernel_w = window.kernel_w;
    shape_.stride_h = window.stride_h, shape_.stride_w = window.stride_w;
    shape_.pad_h = window.pad_h, shape_.pad_w = window.pad_w;
    shape_.dilate_h = dilate[0], shape_.dilate_w = dilate[1];
    shape_.filters = r.integer("num_filter", 0, 1, 1 << 24, true);
    shape_.groups = r.integer("num_group", 1, 1, 1 << 24);
    no_bias_ = r.boolean("no_bias", false);
    if (mxnet_operator) r.text("layout", "NCHW", {"NCHW", "None"});
    if (shape_.filters % shape_.groups) throw Error("num_filter must be a multiple of num_group");
  }
  std::pair<size_t, size_t> arity() const override { return {no_bias_ ? 2 : 3, no_bias_ ? 2 : 3}; }

  Shape infer(const std::vector<Value>& in) const override {
    expect_nchw(in[0]);
    const FloatConvShape s = shape(in[0].shape);
    if (std::string problem = s.check(); !problem.empty()) throw Error(problem);
    expect_shape("weight", in[1], {s.filters, s.channels / s.groups, s.kernel_h, s.kernel_w});
    if (!no_bias_) expect_shape("bias", in[2], {s.filters});
    return {s.batch, s.filters, s.out_height(), s.out_width()};
  }

  size_t workspace(const std::vector<Value>& in) const override { return shape(in[0].shape).workspace_bytes(); }

  void run(const std::vector<Value>& in, float* output, const RunContext& context) const override {
    float_conv(shape(in[0].shape), in[0].floats(), in[1].floats(), no_bias_ ? nullptr : in[2].floats(), output,
               context.workspace);
  }

 private:
  FloatConvShape shape(const Shape& data) const {
    FloatConvShape s = shape_;
    s.batch = data[0], s.channels = data[1], s.height = data[2], s.width = data[3];
    return s;
  }

  FloatConvShape shape_;
  bool no_bias_ = false;
};

// ---- FullyConnected: data (N, ...) flattened to (N, K) (or, flatten=False, (..., K)) times weight^T ----

class FullyConnected : public Op {
 public:
  explicit FullyConnected(const Attrs& attrs) {
    AttrReader r(attrs, {"num_hidden", "no_bias", "flatten"});
    hidden_ = r.integer("num_hidden", 0, 1, 1 << 24, true);
    no_bias_ = r.boolean("no_bias", false);
    flatten_ = r.boolean("flatten", true);
  }
  std::pair<size_t, size_t> arity() const override { return {no_bias_ ? 2 : 3, no_bias_ ? 2 : 3}; }

  // (rows, features) of the data as a matrix.
  std::pair<int64_t, int64_t> matrix(const Shape& d) const {
    if (d.empty() || (flatten_ && d.size() < 2)) throw Error("data of shape " + shape_text(d) + " has no features");
    int64_t features = flatten_ ? element_count(d) / std::max<int64_t>(d[0], 1) : d.back();
    return {element_count(d) / std::max<int64_t>(features, 1), features};
  }

  Shape infer(const std::vector<Value>& in) const override {
    auto [rows, features] = matrix(in[0].shape);
    expect_shape("weight", in[1], {hidden_, features});
    if (!no_bias_) expect_shape("bias", in[2], {hidden_});
    if (flatten_) return {in[0].shape[0], hidden_};
    Shape out = in[0].shape;
    out.back() = hidden_;
    (void)rows;
    return out;
  }

  void run(const std::vector<Value>& in, float* output, const RunContext&) const override {
    auto [rows, features] = matrix(in[0].shape);
    Map result(output, rows, hidden_);
    result.noalias() = ConstMap(in[0].floats(), rows, features) * ConstMap(in[1].floats(), hidden_, features).transpose();
    if (!no_bias_)
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t h = 0; h < hidden_; ++h) output[r * hidden_ + h] += in[2].floats()[h];
  }

 private:
  int64_t hidden_ = 0;
  bool no_bias_ = false, flatten_ = true;
};

// ---- BatchNorm at inference: (x - mean) * (gamma / sqrt(var + eps)) + beta, in float32 as MXNet rounds it ----

class BatchNorm : public Op {
 public:
  explicit BatchNorm(const Attrs& attrs) {
    AttrReader r(attrs, {"eps", "momentum", "fix_gamma", "use_global_stats", "output_mean_var", "axis", "cudnn_off",
                         "min_calib_range", "max_calib_range"});
    eps_ = float(r.number("eps", 1e-3));
    fix_gamma_ = r.boolean("fix_gamma", true);
    if (r.integer("axis", 1, -8, 8) != 1) throw Error("only axis 1 (channels) is supported");
    if (r.boolean("output_mean_var", false)) throw Error("output_mean_var is not supported");
  }
  std::pair<size_t, size_t> arity() const override { return {5, 5}; }

  Shape infer(const std::vector<Value>& in) const override {
    if (in[0].shape.size() < 2) throw Error("data must have a channel axis, got shape " + shape_text(in[0].shape));
    const char* names[] = {"gamma", "beta", "moving_mean", "moving_var"};
    for (size_t i = 1; i < 5; ++i) expect_shape(names[i - 1], in[i], {in[0].shape[1]});
    return in[0].shape;
  }

  void run(const std::vector<Value>& in, float* output, const RunContext&) const override {
    const Shape& d = in[0].shape;
    const int64_t channels = d[1], inner = element_count(d) / d[0] / channels;
    const float *gamma = in[1].floats(), *beta = in[2].floats(), *mean = in[3].floats(), *var = in[4].floats();
#pragma omp parallel for collapse(2) if (element_count(d) > kMinParallelWork)
    for (int64_t n = 0; n < d[0]; ++n)
      for (int64_t c = 0; c < channels; ++c) {
        const float scale = (fix_gamma_ ? 1.0f : gamma[c]) / std::sqrt(var[c] + eps_);
        const float* x = in[0].floats() + (n * channels + c) * inner;
        float* y = output + (n * channels + c) * inner;
        for (int64_t i = 0; i < inner; ++i) y[i] = (x[i] - mean[c]) * scale + beta[c];
      }
  }

 private:
  float eps_ = 1e-3f;
  bool fix_gamma_ = true;
};

// ---- Activation, and the standalone relu, sigmoid, tanh and softsign: one function per element ----

// MXNet's CPU build runs Activation and LeakyReLU(leaky) on tensors of 1 to 5 dimensions through oneDNN, more
// through mshadow_op. oneDNN's relu (and leaky relu of slope 0) is max(x, 0): NaN gives 0; mshadow_op::relu
// (also the standalone relu, at every rank) keeps NaN. Both give +0.0 for -0.0. sigmoid is mshadow_op's
// 1 / (1 + expf(-x)), tanh tanhf, softsign x / (1 + |x|), softrelu x above 20, else log1p(expf(x));
// oneDNN's sigmoid, tanh and softrelu (Activation's, up to 5 dimensions) differ from these in the last bits.
constexpr size_t kOneDnnMaxRank = 5;

enum class Act { kRelu, kReluKeepNan, kSigmoid, kTanh, kSoftrelu, kSoftsign };

inline float activate(Act kind, float v) {
  switch (kind) {
    case Act::kRelu: return v > 0.0f ? v : 0.0f;
    case Act::kReluKeepNan: return std::isnan(v) ? v : v > 0.0f ? v : 0.0f;
    case Act::kSigmoid: return 1.0f / (1.0f + std::exp(-v));
    case Act::kTanh: return std::tanh(v);
    case Act::kSoftrelu: return v > 20.0f ? v : std::log1p(std::exp(v));
    case Act::kSoftsign: return v / (1.0f + std::fabs(v));
  }
  return v;
}

class Activation : public Op {
 public:
  explicit Activation(const Attrs& attrs) {  // Activation(act_type=...)
    AttrReader r(attrs, {"act_type"});
    const std::string type = r.text("act_type", "", {"relu", "sigmoid", "tanh", "softrelu", "softsign"});
    kind_ = type == "relu" ? Act::kRelu : type == "sigmoid" ? Act::kSigmoid : type == "tanh" ? Act::kTanh
            : type == "softrelu" ? Act::kSoftrelu : Act::kSoftsign;
  }
  Activation(const Attrs& attrs, Act kind) : kind_(kind) { AttrReader(attrs, {}); }  // relu, sigmoid, ...: none
  std::pair<size_t, size_t> arity() const override { return {1, 1}; }
  Shape infer(const std::vector<Value>& in) const override { return in[0].shape; }

  void run(const std::vector<Value>& in, float* output, const RunContext&) const override {
    const int64_t count = element_count(in[0].shape);
    const float* x = in[0].floats();
    const Act kind = kind_ == Act::kRelu && in[0].shape.size() > kOneDnnMaxRank ? Act::kReluKeepNan : kind_;
#pragma omp parallel for if (count > kMinParallelWork)
    for (int64_t i = 0; i < count; ++i) output[i] = activate(kind, x[i]);
  }

 private:
  Act kind_ = Act::kRelu;
};

// ---- LeakyReLU: x > 0 ? x : x * slope, slope the attribute (leaky) or gamma per channel or one (prelu) ----

// mshadow_op::xelu, in float32: NaN and -0.0 go through the product (NaN stays NaN, -0.0 * 0.25 is -0.0);
// oneDNN's (leaky, up to 5 dimensions) the same, except that slope 0 is its relu, max(x, 0).
class LeakyReLU : public Op {
 public:
  explicit LeakyReLU(const Attrs& attrs) {
    AttrReader r(attrs, {"act_type", "slope", "lower_bound", "upper_bound"});
    prelu_ = r.text("act_type", "leaky", {"leaky", "prelu"}) == "prelu";
    slope_ = float(r.number("slope", 0.25));
  }
  std::pair<size_t, size_t> arity() const override { return {prelu_ ? 2 : 1, prelu_ ? 2 : 1}; }

  Shape infer(const std::vector<Value>& in) const override {
    if (!prelu_) return in[0].shape;
    const Shape& d = in[0].shape;
    if (d.size() < 2) throw Error("prelu: data must have a channel axis, got shape " + shape_text(d));
    if (in[1].shape != Shape{1}) expect_shape("gamma", in[1], {d[1]});
    return d;
  }

  void run(const std::vector<Value>& in, float* output, const RunContext&) const override {
    const Shape& d = in[0].shape;
    const int64_t count = element_count(d);
    if (count == 0) return;
    const int64_t channels = prelu_ ? d[1] : 1, inner = prelu_ ? count / d[0] / channels : count;
    const bool one = !prelu_ || in[1].shape[0] == 1 || channels == 1;
    const bool max = !prelu_ && slope_ == 0.0f && d.size() <= kOneDnnMaxRank;
#pragma omp parallel for if (count > kMinParallelWork)
    for (int64_t plane = 0; plane < count / inner; ++plane) {
      const float slope = !prelu_ ? slope_ : in[1].floats()[one ? 0 : plane % channels];
      const float* x = in[0].floats() + plane * inner;
      float* y = output + plane * inner;
      if (max)
        for (int64_t i = 0; i < inner; ++i) y[i] = activate(Act::kRelu, x[i]);
      else
        for (int64_t i = 0; i < inner; ++i) y[i] = x[i] > 0.0f ? x[i] : x[i] * slope;
    }
  }

 private:
  bool prelu_ = false;
  float slope_ = 0.25f;
};

// ---- Pooling (2-D): MXNet's output sizes (valid: floor, full: ceil) and average divisors ----

class Pooling : public Op {
 public:
  explicit Pooling(const Attrs& attrs) {
    AttrReader r(attrs, {"kernel", "pool_type", "global_pool", "pooling_convention", "stride", "pad", "layout",
                         "count_include_pad", "cudnn_off", "p_value"});
    global_ = r.boolean("global_pool", false);
    window_.read(r, !global_);
    max_ = r.text("pool_type", "max", {"max", "avg"}) == "max";
    full_ = r.text("pooling_convention", "valid", {"valid", "full"}) == "full";
    include_pad_ = r.boolean("count_include_pad", true);
    r.text("layout", "NCHW", {"NCHW", "None"});
  }
  std::pair<size_t, size_t> arity() const override { return {1, 1}; }

  Window window(const Shape& d) const {
    if (!global_) return window_;
    Window w;
    w.kernel_h = int(d[2]), w.kernel_w = int(d[3]);
    return w;
  }

  Shape infer(const std::vector<Value>& in) const override {
    expect_nchw(in[0]);
    const Shape& d = in[0].shape;
    Window w = window(d);
    if (d[2] + 2 * w.pad_h < w.kernel_h || d[3] + 2 * w.pad_w < w.kernel_w)
      throw Error("the pooling window is larger than the padded input");
    auto side = [&](int64_t size, int kernel, int stride, int pad) {
      int64_t span = size + 2 * pad - kernel;
      return (full_ ? (span + stride - 1) / stride : span / stride) + 1;
    };
    return {d[0], d[1], side(d[2], w.kernel_h, w.stride_h, w.pad_h), side(d[3], w.kernel_w, w.stride_w, w.pad_w)};
  }

  void run(const std::vector<Value>& in, float* output, const RunContext&) const override {
    const Shape& d = in[0].shape;
    const Shape out = infer(in);
    const Window w = window(d);
    const int64_t height = d[2], width = d[3], out_h = out[2], out_w = out[3];
#pragma omp parallel for if (element_count(d) > kMinParallelWork)
    for (int64_t plane = 0; plane < d[0] * d[1]; ++plane) {
      const float* x = in[0].floats() + plane * height * width;
      float* y = output + plane * out_h * out_w;
      for (int64_t oy = 0; oy < out_h; ++oy)
        for (int64_t ox = 0; ox < out_w; ++ox) {
          int64_t y0 = oy * w.stride_h - w.pad_h, x0 = ox * w.stride_w - w.pad_w;
          int64_t y1 = std::min<int64_t>(y0 + w.kernel_h, height + w.pad_h);
          int64_t x1 = std::min<int64_t>(x0 + w.kernel_w, width + w.pad_w);
          int64_t divisor = (y1 - y0) * (x1 - x0);
          y0 = std::max<int64_t>(y0, 0), x0 = std::max<int64_t>(x0, 0);
          y1 = std::min(y1, height), x1 = std::min(x1, width);
          if (!include_pad_) divisor = (y1 - y0) * (x1 - x0);
          float result = max_ ? -FLT_MAX : 0.0f;
          for (int64_t yy = y0; yy < y1; ++yy)
            for (int64_t xx = x0; xx < x1; ++xx) {
              const float v = x[yy * width + xx];
              if (max_) result = v > result ? v : result;
              else result += v;
            }
          y[oy * out_w + ox] = max_ ? result : result / float(std::max<int64_t>(divisor, 1));
        }
    }
  }

 private:
  Window window_;
  bool global_ = false, max_ = true, full_ = false, include_pad_ = true;
};

}  // namespace

std::unique_ptr<Op> make_float_op(const std::string& op, const Attrs& attrs) {
  if (op == "Convolution") return std::make_unique<Convolution>(attrs, true);
  if (op == "float_conv2d") return std::make_unique<Convolution>(attrs, false);
  if (op == "FullyConnected") return std::make_unique<FullyConnected>(attrs);
  if (op == "BatchNorm") return std::make_unique<BatchNorm>(attrs);
  if (op == "Activation") return std::make_unique<Activation>(attrs);
  if (op == "relu") return std::make_unique<Activation>(attrs, Act::kReluKeepNan);
  if (op == "sigmoid") return std::make_unique<Activation>(attrs, Act::kSigmoid);
  if (op == "tanh") return std::make_unique<Activation>(attrs, Act::kTanh);
  if (op == "softsign") return std::make_unique<Activation>(attrs, Act::kSoftsign);
  if (op == "LeakyReLU") return std::make_unique<LeakyReLU>(attrs);
  if (op == "Pooling") return std::make_unique<Pooling>(attrs);
  return nullptr;
}

}  // namespace binary_models::runtime
