#include "ops.h"

#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdlib>

#include "../error.h"

namespace binary_models::runtime {

using deploy::Error;

namespace {

// "(3, 3)", "(3,)", "[1, 2]", "3" -> numbers; false when the text is none of these.
bool parse_int_list(const std::string& text, std::vector<long long>* values) {
  std::string body = text;
  if (!body.empty() && (body.front() == '(' || body.front() == '[')) {
    char close = body.front() == '(' ? ')' : ']';
    if (body.size() < 2 || body.back() != close) return false;
    body = body.substr(1, body.size() - 2);
  }
  size_t start = 0;
  while (start < body.size()) {
    size_t comma = body.find(',', start);
    std::string item = body.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    size_t first = item.find_first_not_of(' '), last = item.find_last_not_of(' ');
    if (first == std::string::npos) {
      if (comma == std::string::npos && !values->empty()) break;  // "(3,)"
      return false;
    }
    item = item.substr(first, last - first + 1);
    errno = 0;
    char* end = nullptr;
    long long v = std::strtoll(item.c_str(), &end, 10);
    if (*end != '\0' || errno == ERANGE) return false;
    values->push_back(v);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return !values->empty();
}

}  // namespace

AttrReader::AttrReader(const Attrs& attrs, std::set<std::string> known) : attrs_(attrs) {
  for (const auto& [key, value] : attrs)
    if (!known.count(key) && key.rfind("__", 0) != 0) throw Error("unknown attribute " + key);
}

const std::string* AttrReader::find(const char* key) const {
  auto it = attrs_.find(key);
  return it == attrs_.end() ? nullptr : &it->second;
}

std::vector<int> AttrReader::ints(const char* key, size_t count, std::vector<int> fallback, int low, int high) {
  const std::string* text = find(key);
  if (!text) {
    if (fallback.empty()) throw Error(std::string("attribute ") + key + " is missing");
    fallback.resize(count, fallback[0]);  // {1}: (1, 1)
    return fallback;
  }
  std::vector<long long> values;
  if (!parse_int_list(*text, &values) || (values.size() != 1 && values.size() != count))
    throw Error(std::string("attribute ") + key + " '" + *text + "' is not " + std::to_string(count) + " integers");
  std::vector<int> out;
  for (size_t i = 0; i < count; ++i) {
    long long v = values[values.size() == 1 ? 0 : i];
    if (v < low || v > high)
      throw Error(std::string("attribute ") + key + " '" + *text + "' is out of range (" + std::to_string(low) + ".." +
                  std::to_string(high) + ")");
    out.push_back(int(v));
  }
  return out;
}

int AttrReader::integer(const char* key, int fallback, int low, int high, bool required) {
  if (required && !find(key)) throw Error(std::string("attribute ") + key + " is missing");
  return ints(key, 1, {fallback}, low, high)[0];
}

bool AttrReader::boolean(const char* key, bool fallback) {
  const std::string* text = find(key);
  if (!text) return fallback;
  if (*text == "True" || *text == "true" || *text == "1") return true;
  if (*text == "False" || *text == "false" || *text == "0") return false;
  throw Error(std::string("attribute ") + key + " '" + *text + "' is not a boolean");
}

double AttrReader::number(const char* key, double fallback) {
  const std::string* text = find(key);
  if (!text) return fallback;
  char* end = nullptr;
  double v = std::strtod(text->c_str(), &end);
  if (text->empty() || *end != '\0' || !std::isfinite(v))
    throw Error(std::string("attribute ") + key + " '" + *text + "' is not a finite number");
  return v;
}

std::string AttrReader::text(const char* key, const std::string& fallback, const std::set<std::string>& allowed) {
  const std::string* text = find(key);
  std::string value = text ? *text : fallback;
  if (!allowed.empty() && !allowed.count(value)) {
    std::string list;
    for (const std::string& a : allowed) list += (list.empty() ? "" : ", ") + a;
    throw Error(std::string("attribute ") + key + " '" + value + "' is not supported (supported: " + list + ")");
  }
  return value;
}

std::unique_ptr<Op> make_op(const std::string& op, const Attrs& attrs) {
  if (auto made = make_binary_op(op, attrs)) return made;
  if (auto made = make_float_op(op, attrs)) return made;
  return make_tensor_op(op, attrs);
}

void expect_shape(const char* what, const Value& value, const Shape& shape) {
  if (value.shape != shape)
    throw Error(std::string(what) + " has shape " + shape_text(value.shape) + ", the attributes need " +
                shape_text(shape));
}

void expect_nchw(const Value& value) {
  if (value.shape.size() != 4) throw Error("data must be 4-D NCHW, got shape " + shape_text(value.shape));
  for (int64_t d : value.shape)
    if (d < 1 || d > INT_MAX / 4) throw Error("data shape " + shape_text(value.shape) + " is not supported");
}

}  // namespace binary_models::runtime
