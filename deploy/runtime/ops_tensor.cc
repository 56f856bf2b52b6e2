// Operators that move or combine tensors: Flatten, Reshape, Concat, the element-wise sums and products of
// residual shortcuts and channel gates, the identities of inference (Dropout, _copy) and softmax.
#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>

#include "../error.h"
#include "ops.h"

namespace binary_models::runtime {

using deploy::Error;

namespace {

class Copy : public Op {  // Flatten, Dropout, _copy, identity, BlockGrad, Reshape: the same floats
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

 protected:
  Copy() = default;

 private:
  bool flatten_ = false;
};

// Reshape (MXNet's ReshapeParam): `shape` of positive sizes, 0 (the input's size at the same position) and
// one -1 (what the others leave). MXNet's -2, -3, -4 and `reverse` are refused.
class Reshape : public Copy {
 public:
  explicit Reshape(const Attrs& attrs) {
    AttrReader r(attrs, {"shape", "reverse", "target_shape", "keep_highest"});
    shape_ = r.list("shape", 32, INT_MIN, INT_MAX);
    text_ = attrs.at("shape");
    std::string codes;
    for (int d : shape_)
      if (d < -1 && codes.find(" " + std::to_string(d) + ",") == std::string::npos) codes += " " + std::to_string(d) + ",";
    if (!codes.empty())
      throw Error("shape " + text_ + ": Reshape's codes" + codes.substr(0, codes.size() - 1) +
                  " are not supported (only 0, -1 and sizes)");
    if (std::count(shape_.begin(), shape_.end(), -1) > 1) throw Error("shape " + text_ + " has two -1");
    if (r.boolean("reverse", false)) throw Error("reverse=True is not supported");
    if (r.has("target_shape") && attrs.at("target_shape") != "()") throw Error("target_shape is not supported");
    if (r.boolean("keep_highest", false)) throw Error("keep_highest is not supported");
  }

  Shape infer(const std::vector<Value>& in) const override {
    const Shape& d = in[0].shape;
    Shape out;
    int64_t known = 1;
    for (size_t i = 0; i < shape_.size(); ++i) {
      if (shape_[i] == 0 && i >= d.size())
        throw Error("shape code 0 at position " + std::to_string(i) + " copies no dimension of " + shape_text(d));
      int64_t size = shape_[i] == -1 ? 1 : shape_[i] == 0 ? d[i] : shape_[i];
      if (__builtin_mul_overflow(known, size, &known)) throw Error("shape " + text_ + " is too large");
      out.push_back(size);
    }
    const int64_t count = element_count(d);
    auto infer = std::find(shape_.begin(), shape_.end(), -1);
    if (infer != shape_.end() && known > 0) out[infer - shape_.begin()] = count / known;
    if (element_count(out) != count)
      throw Error("cannot reshape " + shape_text(d) + " to " + shape_text(out) + " (the sizes differ)");
    return out;
  }

 private:
  std::vector<int> shape_;
  std::string text_;
};

// +, - or * of two tensors. elemwise_* need equal shapes, as in MXNet; broadcast_* broadcast as NumPy does
// (shapes aligned at the last axis, axes of size 1 repeated), as MXNet's BinaryBroadcastShape.
class Elementwise : public Op {
 public:
  Elementwise(const Attrs& attrs, char kind, bool broadcast) : kind_(kind), broadcast_(broadcast) {
    AttrReader r(attrs, {});
  }
  std::pair<size_t, size_t> arity() const override { return {2, 2}; }

  Shape infer(const std::vector<Value>& in) const override {
    const Shape &a = in[0].shape, &b = in[1].shape;
    if (a == b) return a;
    if (!broadcast_)
      throw Error("operands of shapes " + shape_text(a) + " and " + shape_text(b) +
                  " (only the broadcast_ operators broadcast)");
    Shape out(std::max(a.size(), b.size()));
    for (size_t i = 0; i < out.size(); ++i) {
      const int64_t x = dim(a, i, out.size()), y = dim(b, i, out.size());
      if (x != y && x != 1 && y != 1)
        throw Error("operands of shapes " + shape_text(a) + " and " + shape_text(b) + " do not broadcast");
      out[i] = x == 1 ? y : x;
    }
    return out;
  }

  void run(const std::vector<Value>& in, float* output, const RunContext&) const override {
    const Shape out = infer(in);
    if (element_count(out) == 0) return;
    // The output's axes of size > 1, neighbours merged where both operands broadcast alike: (N, C, H, W) *
    // (N, C, 1, 1) is (N*C, H*W) * (N*C, 1). An operand's step along an axis it broadcasts is 0.
    Shape sizes;
    std::vector<bool> a_bc, b_bc;
    for (size_t i = 0; i < out.size(); ++i) {
      const bool x = dim(in[0].shape, i, out.size()) == 1, y = dim(in[1].shape, i, out.size()) == 1;
      if (out[i] == 1) continue;
      if (!sizes.empty() && a_bc.back() == x && b_bc.back() == y) {
        sizes.back() *= out[i];
      } else {
        sizes.push_back(out[i]), a_bc.push_back(x), b_bc.push_back(y);
      }
    }
    if (sizes.empty()) sizes = {1}, a_bc = {false}, b_bc = {false};
    std::vector<int64_t> a_step(sizes.size()), b_step(sizes.size());
    for (int64_t i = int64_t(sizes.size()) - 1, a_stride = 1, b_stride = 1; i >= 0; --i) {
      a_step[i] = a_bc[i] ? 0 : a_stride, b_step[i] = b_bc[i] ? 0 : b_stride;
      a_stride *= a_bc[i] ? 1 : sizes[i], b_stride *= b_bc[i] ? 1 : sizes[i];
    }
    const int64_t inner = sizes.back(), rows = element_count(out) / inner, rank = int64_t(sizes.size());
    const int64_t a_inner = a_step.back(), b_inner = b_step.back();
    const float *a = in[0].floats(), *b = in[1].floats();
#pragma omp parallel for if (element_count(out) > (1 << 15))
    for (int64_t row = 0; row < rows; ++row) {
      int64_t a_at = 0, b_at = 0;
      for (int64_t axis = rank - 2, rest = row; axis >= 0; --axis) {
        const int64_t index = rest % sizes[axis];
        rest /= sizes[axis];
        a_at += index * a_step[axis], b_at += index * b_step[axis];
      }
      const float *x = a + a_at, *y = b + b_at;
      float* z = output + row * inner;
      for (int64_t i = 0; i < inner; ++i) z[i] = apply(x[i * a_inner], y[i * b_inner]);
    }
  }

 private:
  // Size of axis i (of an output of rank `rank`) in `shape`, aligned at the last axis; 1 before its first.
  static int64_t dim(const Shape& shape, size_t i, size_t rank) {
    return i + shape.size() < rank ? 1 : shape[i + shape.size() - rank];
  }
  float apply(float x, float y) const { return kind_ == '+' ? x + y : kind_ == '-' ? x - y : x * y; }

  char kind_;
  bool broadcast_;
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
  if (op == "Reshape" || op == "reshape") return std::make_unique<Reshape>(attrs);
  if (op == "elemwise_add" || op == "_plus" || op == "_Plus") return std::make_unique<Elementwise>(attrs, '+', false);
  if (op == "elemwise_sub" || op == "_minus") return std::make_unique<Elementwise>(attrs, '-', false);
  if (op == "elemwise_mul" || op == "_mul") return std::make_unique<Elementwise>(attrs, '*', false);
  if (op == "broadcast_add" || op == "broadcast_plus") return std::make_unique<Elementwise>(attrs, '+', true);
  if (op == "broadcast_sub" || op == "broadcast_minus") return std::make_unique<Elementwise>(attrs, '-', true);
  if (op == "broadcast_mul") return std::make_unique<Elementwise>(attrs, '*', true);
  if (op == "Concat" || op == "concat") return std::make_unique<Concat>(attrs);
  if (op == "softmax" || op == "SoftmaxActivation" || op == "SoftmaxOutput") return std::make_unique<Softmax>(attrs);
  return nullptr;
}

std::vector<std::string> operator_names() {
  return {"binary_conv2d", "binary_dense", "binary_dense_stage", "norm_pool", "rprelu", "float_conv2d", "Convolution",
          "FullyConnected", "BatchNorm", "Activation", "relu", "sigmoid", "tanh", "softsign", "LeakyReLU", "Pooling",
          "Flatten", "Reshape", "Dropout", "_copy", "identity", "BlockGrad", "elemwise_add", "_plus", "_Plus", "broadcast_add",
          "elemwise_sub", "_minus", "broadcast_sub", "elemwise_mul", "_mul", "broadcast_mul", "Concat", "softmax",
          "SoftmaxActivation", "SoftmaxOutput"};
}

}  // namespace binary_models::runtime
