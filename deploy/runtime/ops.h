// The operators of a packed model's graph: each parses its node's attributes when the model loads, checks
// and infers shapes, and runs on float32 NCHW tensors. The binary ones call native/kernels/; the float ones
// are in ops_float.cc, the shape-only ones in ops_tensor.cc. Every problem throws deploy::Error naming it.
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "tensor.h"

namespace binary_models::runtime {

using Attrs = std::map<std::string, std::string>;

// Reads attributes as MXNet writes them into a symbol file (Python's str(): "3", "(3, 3)", "True", "1e-05").
// An attribute the operator does not know is refused (MXNet refuses it too); "__...__" ones are ignored.
class AttrReader {
 public:
  AttrReader(const Attrs& attrs, std::set<std::string> known);
  // "3" means (3, 3); absent: fallback (required when fallback is empty). Values must lie in [low, high].
  std::vector<int> ints(const char* key, size_t count, std::vector<int> fallback, int low, int high);
  int integer(const char* key, int fallback, int low, int high, bool required = false);
  bool boolean(const char* key, bool fallback);
  double number(const char* key, double fallback);
  std::string text(const char* key, const std::string& fallback, const std::set<std::string>& allowed);
  bool has(const char* key) const { return attrs_.count(key) > 0; }

 private:
  const std::string* find(const char* key) const;
  const Attrs& attrs_;
};

// The attributes kernel, stride and pad ("3" or "(3, 3)") into a shape's kernel_h/_w, stride_h/_w, pad_h/_w.
template <typename Window>
void read_window(AttrReader& r, Window* w, std::vector<int> kernel_fallback, int max_kernel, int max_stride) {
  auto kernel = r.ints("kernel", 2, kernel_fallback, 1, max_kernel);
  auto stride = r.ints("stride", 2, {1}, 1, max_stride);
  auto pad = r.ints("pad", 2, {0}, 0, 1 << 16);
  w->kernel_h = kernel[0], w->kernel_w = kernel[1], w->stride_h = stride[0], w->stride_w = stride[1];
  w->pad_h = pad[0], w->pad_w = pad[1];
}

struct RunContext {
  void* workspace = nullptr;  // workspace() bytes
};

class Op {
 public:
  virtual ~Op() = default;
  // The output shape for these inputs (float32 activations, then the parameters), or Error naming the
  // problem (a parameter of the wrong shape, a size the kernels do not support).
  virtual Shape infer(const std::vector<Value>& inputs) const = 0;
  // The dtype input i must have (the packed weights are int64).
  virtual DType input_dtype(size_t) const { return DType::kFloat32; }
  // Scratch bytes run() needs for these inputs.
  virtual size_t workspace(const std::vector<Value>&) const { return 0; }
  // Inputs as infer() accepted them; output holds element_count(infer(inputs)) floats.
  virtual void run(const std::vector<Value>& inputs, float* output, const RunContext& context) const = 0;
  // Inputs the operator takes: [min, max].
  virtual std::pair<size_t, size_t> arity() const = 0;
};

// The operator `op` of a node with these attributes; nullptr when the runtime has no such operator.
// Throws Error for attributes it refuses.
std::unique_ptr<Op> make_op(const std::string& op, const Attrs& attrs);
std::unique_ptr<Op> make_binary_op(const std::string& op, const Attrs& attrs);  // ops_binary.cc
std::unique_ptr<Op> make_float_op(const std::string& op, const Attrs& attrs);   // ops_float.cc
std::unique_ptr<Op> make_tensor_op(const std::string& op, const Attrs& attrs);  // ops_tensor.cc
std::vector<std::string> operator_names();  // every operator the runtime has (docs, errors)

// Checks that `value` has `shape` (a parameter's shape as the attributes need it).
void expect_shape(const char* what, const Value& value, const Shape& shape);
// A 4-D NCHW activation whose dimensions fit the kernels' int sizes.
void expect_nchw(const Value& value);

}  // namespace binary_models::runtime
