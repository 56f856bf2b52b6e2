// Operators that move or combine tensors: Flatten, Concat, the element-wise sums and products of residual
// shortcuts, the identities of inference (Dropout, _copy) and softmax.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "../error.h"
#include "ops.h"

namespace binary_models::runtime {

using deploy::Error;

namespace {

class Copy : public Op {  // Flatten, Dropout, _copy, identity, BlockGrad: the same floats
 public:
  Copy(const Attrs& attrs, bool flatten) : flatten_(flatten) {
    AttrReader r(attrs, {"p", "mode", "axes", "cudnn_off"});
  }
  std::pair<size_t, size_t> arity() const override { return {1, 1}; }
  Shape infer(const std::vector<Value>& in) const override {
    if (!flatten_) return in[0].shape;
    if (in[0].shape.empty()) throw Error("Flatten needs a batch axis");
    return {in[0].shape[0], in[0].shape[0] ? element_count(in[0].shape) / in[0].shape[0] : 0};
  }
  void run(const std::vector<Value>& in, float* output, const RunContext&) const override {
    std::memcpy(output, in[0].data, size_t(element_count(in[0].shape)) * sizeof(float));
  }

 private:
  bool flatten_;
};

class Elementwise : public Op {
 public:
  Elementwise(const Attrs& attrs, char kind) : kind_(kind) { AttrReader r(attrs, {}); }
  std::pair<size_t, size_t> arity() const override { return {2, 2}; }
  Shape infer(const std::vector<Value>& in) const override {
    if (in[0].shape != in[1].shape)
      throw Error("operands of shapes " + shape_text(in[0].shape) + " and " + shape_text(in[1].shape) +
                  " (broadcasting is not supported)");
    return in[0].shape;
  }
  void run(const std::vector<Value>& in, float* output, const RunContext&) const override {
    const int64_t count = element_count(in[0].shape);
    const float *a = in[0].floats(), *b = in[1].floats();
#pragma omp parallel for if (count > (1 << 15))
    for (int64_t i = 0; i < count; ++i)
      output[i] = kind_ == '+' ? a[i] + b[i] : kind_ == '-' ? a[i] - b[i] : a[i] * b[i];
  }

 private:
  char kind_;
};

class Concat : public Op {
 public:
  explicit Concat(const Attrs& attrs) {
    AttrReader r(attrs, {"dim", "num_args"});
    dim_ = r.integer("dim", 1, -8, 7);
    args_ = r.integer("num_args", 0, 1, 1 << 16, true);
  }
  std::pair<size_t, size_t> arity() const override { return {size_t(args_), size_t(args_)}; }
  size_t axis(const Shape& shape) const {
    int64_t d = dim_ < 0 ? dim_ + int64_t(shape.size()) : dim_;
    if (d < 0 || d >= int64_t(shape.size())) throw Error("dim " + std::to_string(dim_) + " is not an axis of the data");
    return size_t(d);
  }
  Shape infer(const std::vector<Value>& in) const override {
    Shape out = in[0].shape;
    size_t a = axis(out);
    for (size_t i = 1; i < in.size(); ++i) {
      Shape s = in[i].shape;
      if (s.size() != out.size()) throw Error("inputs of different ranks");
      s[a] = out[a];
      if (s != out) throw Error("inputs of shapes " + shape_text(out) + " and " + shape_text(in[i].shape));
      out[a] += in[i].shape[a];
    }
    return out;
  }
  void run(const std::vector<Value>& in, float* output, const RunContext&) const override {
    const Shape out = infer(in);
    const size_t a = axis(out);
    int64_t outer = 1, inner = 1;
    for (size_t i = 0; i < a; ++i) outer *= out[i];
    for (size_t i = a + 1; i < out.size(); ++i) inner *= out[i];
    int64_t offset = 0;
    for (const Value& v : in) {
      const int64_t chunk = v.shape[a] * inner;
      for (int64_t o = 0; o < outer; ++o)
        std::memcpy(output + o * out[a] * inner + offset, v.floats() + o * chunk, size_t(chunk) * sizeof(float));
      offset += chunk;
    }
  }

 private:
  int dim_ = 1, args_ = 0;
};

class Softmax : public Op {  // over the last axis
 public:
  explicit Softmax(const Attrs& attrs) {
    AttrReader r(attrs, {"axis", "temperature", "grad_scale", "ignore_label", "multi_output", "use_ignore",
                         "preserve_shape", "normalization", "out_grad", "smooth_alpha", "mode", "use_length"});
    if (r.integer("axis", -1, -8, 7) != -1) throw Error("only axis -1 is supported");
  }
  std::pair<size_t, size_t> arity() const override { return {1, 2}; }  // SoftmaxOutput has a label input
  Shape infer(const std::vector<Value>& in) const override { return in[0].shape; }
  void run(const std::vector<Value>& in, float* output, const RunContext&) const override {
    const int64_t n = in[0].shape.empty() ? 1 : in[0].shape.back(), rows = element_count(in[0].shape) / std::max<int64_t>(n, 1);
    for (int64_t r = 0; r < rows; ++r) {
      const float* x = in[0].floats() + r * n;
      float* y = output + r * n;
      const float largest = *std::max_element(x, x + n);
      float sum = 0;
      for (int64_t i = 0; i < n; ++i) sum += y[i] = std::exp(x[i] - largest);
      for (int64_t i = 0; i < n; ++i) y[i] /= sum;
    }
  }
};

}  // namespace

std::unique_ptr<Op> make_tensor_op(const std::string& op, const Attrs& attrs) {
  if (op == "Flatten" || op == "flatten") return std::make_unique<Copy>(attrs, true);
  if (op == "Dropout" || op == "_copy" || op == "identity" || op == "BlockGrad") return std::make_unique<Copy>(attrs, false);
  if (op == "elemwise_add" || op == "_plus" || op == "_Plus" || op == "broadcast_add")
    return std::make_unique<Elementwise>(attrs, '+');
  if (op == "elemwise_sub" || op == "_minus" || op == "broadcast_sub") return std::make_unique<Elementwise>(attrs, '-');
  if (op == "elemwise_mul" || op == "_mul" || op == "broadcast_mul") return std::make_unique<Elementwise>(attrs, '*');
  if (op == "Concat" || op == "concat") return std::make_unique<Concat>(attrs);
  if (op == "softmax" || op == "SoftmaxActivation" || op == "SoftmaxOutput") return std::make_unique<Softmax>(attrs);
  return nullptr;
}

std::vector<std::string> operator_names() {
  return {"binary_conv2d", "binary_dense", "binary_dense_stage", "norm_pool", "rprelu", "Convolution", "FullyConnected",
          "BatchNorm", "Activation", "Pooling", "Flatten", "Dropout", "_copy", "identity", "BlockGrad",
          "elemwise_add", "_plus", "_Plus", "broadcast_add", "elemwise_sub", "_minus", "broadcast_sub",
          "elemwise_mul", "_mul", "broadcast_mul", "Concat", "softmax", "SoftmaxActivation", "SoftmaxOutput"};
}

}  // namespace binary_models::runtime
