#include "glue.h"

#include <cmath>
#include <limits>
#include <sstream>
#include <type_traits>

namespace binary_models::ops {

// MXNet keeps every extension error message for the life of the process and reports all of them with
// each new error; the stale ones are dropped here so an error names only its own problem. MXerrorMsgs is
// a standard-layout class whose only member is its vector of messages, so the cast below is well defined.
MXReturnValue fail(const char* op, const std::string& problem) {
  using Messages = std::vector<std::stringstream*>;
  static_assert(std::is_standard_layout<mxnet::ext::MXerrorMsgs>::value &&
                    sizeof(mxnet::ext::MXerrorMsgs) == sizeof(Messages),
                "MXerrorMsgs is no longer a plain vector of messages");
  Messages* messages = reinterpret_cast<Messages*>(mxnet::ext::MXerrorMsgs::get());
  for (std::stringstream* message : *messages) delete message;
  messages->clear();
  MX_ERROR_MSG << op << ": " << problem;
  return mxnet::ext::MX_FAIL;
}

std::string dtype_name(int code) {
  static const char* names[] = {"float32", "float64", "float16", "uint8", "int32", "int8", "int64"};
  return code >= 0 && code < 7 ? names[code] : "dtype code " + std::to_string(code);
}

AttrReader::AttrReader(const Attrs& attrs, std::set<std::string> known) : attrs_(attrs) {
  for (const auto& kv : attrs)
    if (kv.first.compare(0, 2, "__") != 0 && !known.count(kv.first)) {
      std::string names;
      for (const std::string& name : known) names += (names.empty() ? "" : ", ") + name;
      problem_ = "unknown attribute '" + kv.first + "' (known: " + names + ")";
    }
}

void AttrReader::pair(const char* key, int fallback, int* first, int* second) {
  std::vector<int> values;
  if (!read(key, fallback, &values)) {
    *first = *second = fallback;
    return;
  }
  if (values.size() == 1) values.push_back(values[0]);
  if (values.size() != 2) return note(key, "expected one or two integers");
  *first = values[0];
  *second = values[1];
}

void AttrReader::integer(const char* key, int fallback, int* value) {
  std::vector<int> values;
  if (!read(key, fallback, &values)) {
    *value = fallback;
    return;
  }
  if (values.size() != 1) return note(key, "expected an integer");
  *value = values[0];
}

void AttrReader::boolean(const char* key, bool* value) {
  *value = false;
  auto it = attrs_.find(key);
  if (it == attrs_.end()) return;
  const std::string& v = it->second;
  if (v == "True" || v == "true" || v == "1") *value = true;
  else if (!(v == "False" || v == "false" || v == "0")) note(key, "expected True or False");
}

namespace {

std::string unquoted(std::string v) {
  if (v.size() >= 2 && (v.front() == '\'' || v.front() == '"')) v = v.substr(1, v.size() - 2);
  return v;
}

}  // namespace

void AttrReader::text(const char* key, std::string* value) {
  auto it = attrs_.find(key);
  if (it == attrs_.end()) return note(key, "required attribute missing");
  *value = unquoted(it->second);
}

void AttrReader::number(const char* key, double fallback, double* value) {
  *value = fallback;
  auto it = attrs_.find(key);
  if (it == attrs_.end()) {
    if (std::isnan(fallback)) note(key, "required attribute missing");
    return;
  }
  char* end = nullptr;
  const double v = std::strtod(it->second.c_str(), &end);
  if (it->second.empty() || *end != '\0' || std::isnan(v)) return note(key, "'" + it->second + "' is not a number");
  *value = v;
}

void AttrReader::pad_mode(PadMode* mode) {
  *mode = PadMode::kMinusOne;
  auto it = attrs_.find("pad_mode");
  if (it == attrs_.end()) return;
  const std::string v = unquoted(it->second);
  if (v == "zero") *mode = PadMode::kZero;
  else if (v == "one") *mode = PadMode::kOne;
  else if (v != "minus_one") note("pad_mode", "expected 'minus_one', 'zero' or 'one'");
}

// False when the attribute is absent and has a fallback. Values outside the range of int are refused
// (the kernels take int; a silent cast would turn 2**32 + 1 into 1).
bool AttrReader::read(const char* key, int fallback, std::vector<int>* values) {
  auto it = attrs_.find(key);
  if (it == attrs_.end()) {
    if (fallback < 0) note(key, "required attribute missing");
    return false;
  }
  std::string text = it->second;
  for (char& c : text)
    if (c == '(' || c == ')' || c == '[' || c == ']' || c == ',') c = ' ';
  std::istringstream in(text);
  std::string token;
  while (in >> token) {
    size_t used = 0;
    long long v = 0;
    bool in_range = true;
    try {
      v = std::stoll(token, &used);
    } catch (const std::out_of_range&) {
      in_range = false;
    } catch (const std::exception&) {
      used = 0;
    }
    in_range = in_range && v >= std::numeric_limits<int>::min() && v <= std::numeric_limits<int>::max();
    if (!in_range) {
      note(key, token + " is out of range (" + std::to_string(std::numeric_limits<int>::min()) + ".." +
                    std::to_string(std::numeric_limits<int>::max()) + ")");
      return true;
    }
    if (used != token.size() || token.empty()) {
      note(key, "'" + it->second + "' is not a list of integers");
      return true;
    }
    values->push_back(int(v));
  }
  return true;
}

void AttrReader::note(const char* key, const std::string& what) {
  if (problem_.empty()) problem_ = std::string("attribute ") + key + ": " + what;
}

MXReturnValue check_cpu(const char* op, const std::vector<MXTensor>& tensors) {
  for (const MXTensor& t : tensors)
    if (t.ctx.dev_type != "cpu") return fail(op, "runs on the CPU only, got a tensor on " + t.ctx.dev_type);
  return mxnet::ext::MX_SUCCESS;
}

std::string dims_fit_int(const char* tensor, const std::vector<int64_t>& shape) {
  for (int64_t dim : shape)
    if (dim > std::numeric_limits<int>::max())
      return std::string(tensor) + " shape " + shape_text(shape) + " has a dimension over " +
             std::to_string(std::numeric_limits<int>::max());
  return "";
}

std::string check_nchw(const std::vector<int64_t>& data) {
  if (data.size() != 4) return "data must be 4-D NCHW, got shape " + shape_text(data);
  return dims_fit_int("data", data);
}

MXReturnValue check_types(const char* op, const std::vector<InputSpec>& specs, std::vector<int>* in,
                          std::vector<int>* out) {
  for (size_t i = 0; i < in->size() && i < specs.size(); ++i) {
    if ((*in)[i] == -1) (*in)[i] = specs[i].dtype;
    if ((*in)[i] != specs[i].dtype)
      return fail(op, std::string(specs[i].name) + " must be " + specs[i].wanted + ", got " + dtype_name((*in)[i]));
  }
  (*out)[0] = mxnet::ext::kFloat32;
  return mxnet::ext::MX_SUCCESS;
}

MXReturnValue check_shape(const char* op, const char* name, const std::vector<int64_t>& size,
                          std::vector<unsigned int>* shape) {
  std::vector<unsigned int> expected;
  for (int64_t dim : size) {
    if (dim < 0 || dim > int64_t(std::numeric_limits<unsigned int>::max()))
      return fail(op, std::string(name) + " would have " + std::to_string(dim) + " elements, more than an "
                      "MXNet dimension holds (" + std::to_string(std::numeric_limits<unsigned int>::max()) + ")");
    expected.push_back(unsigned(dim));
  }
  // Unknown (a deferred parameter's shape, e.g. (64, -1, 3, 3): MXNet passes -1 as the largest unsigned): filled in.
  const auto unknown_or_equal = [&] {
    if (shape->size() != expected.size()) return false;
    for (size_t i = 0; i < expected.size(); ++i)
      if ((*shape)[i] != expected[i] && (*shape)[i] != std::numeric_limits<unsigned int>::max()) return false;
    return true;
  };
  if (shape->empty() || unknown_or_equal()) *shape = expected;
  if (*shape != expected) return fail(op, std::string(name) + " shape " + shape_text(*shape) + " must be " + shape_text(expected));
  return mxnet::ext::MX_SUCCESS;
}

MXReturnValue check_vector(const char* op, const char* name, int64_t size, std::vector<unsigned int>* shape) {
  return check_shape(op, name, {size}, shape);
}

void* scratch(const OpResource& res, size_t bytes) {
  const bool from_mxnet = bytes > 0 && bytes <= size_t(std::numeric_limits<int>::max());
  return from_mxnet ? res.alloc_cpu(int(bytes)) : nullptr;
}

void* scratch_or_heap(const OpResource& res, size_t bytes, HeapBlock* heap) {
  if (void* space = scratch(res, bytes)) return space;
  heap->reset(std::malloc(bytes));
  return heap->get();
}

MXReturnValue no_backward(const Attrs&, std::vector<MXTensor>*, std::vector<MXTensor>*, const OpResource&) {
  return fail("binary operators", "have no gradient: they are for inference (train the float-emulated layers)");
}

}  // namespace binary_models::ops
