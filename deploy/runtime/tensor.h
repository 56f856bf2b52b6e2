// What the runtime's parts share: shapes, 64-byte aligned buffers, the values an operator reads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace binary_models::runtime {

using Shape = std::vector<int64_t>;

enum class DType { kFloat32 = 0, kInt64 = 6 };  // MXNet's type flags: the two a packed model holds

const char* dtype_name(DType dtype);
size_t dtype_size(DType dtype);
int64_t element_count(const Shape& shape);  // the product of the dimensions (1 for a scalar)
std::string shape_text(const Shape& shape);  // "(1, 3, 224, 224)"

// Zero-filled memory aligned for every ISA's vector loads.
class Buffer {
 public:
  Buffer() = default;
  explicit Buffer(size_t bytes);
  void* data() const { return data_.get(); }
  size_t size() const { return size_; }

 private:
  struct Free {
    void operator()(void* p) const;
  };
  std::unique_ptr<void, Free> data_;
  size_t size_ = 0;
};

// A tensor an operator reads: a parameter of the model file or the output of an earlier node.
struct Value {
  Shape shape;
  DType dtype = DType::kFloat32;
  const void* data = nullptr;
  const float* floats() const { return static_cast<const float*>(data); }
};

}  // namespace binary_models::runtime
