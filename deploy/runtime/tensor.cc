#include "tensor.h"

#include <cstdlib>
#include <cstring>
#include <new>

namespace binary_models::runtime {

const char* dtype_name(DType dtype) { return dtype == DType::kInt64 ? "int64" : "float32"; }

size_t dtype_size(DType dtype) { return dtype == DType::kInt64 ? 8 : 4; }

int64_t element_count(const Shape& shape) {
  int64_t count = 1;
  for (int64_t d : shape) count *= d;
  return count;
}

std::string shape_text(const Shape& shape) {
  std::string text = "(";
  for (size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + (shape.size() == 1 ? ",)" : ")");
}

Buffer::Buffer(size_t bytes) : size_(bytes) {
  constexpr size_t kAlign = 64;
  size_t rounded = (bytes + kAlign - 1) / kAlign * kAlign;
  void* p = std::aligned_alloc(kAlign, rounded ? rounded : kAlign);
  if (!p) throw std::bad_alloc();
  std::memset(p, 0, rounded ? rounded : kAlign);
  data_.reset(p);
}

void Buffer::Free::operator()(void* p) const { std::free(p); }

}  // namespace binary_models::runtime
